import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { createRedisStore } from '../../src/stores/redis.ts'
import { spawnGateway } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { redisUnavailable, startTestRedis } from '../helpers/redis.ts'
import type { TestRedis } from '../helpers/redis.ts'
import { call, signedImageUrl, sleep, storeWithKeys } from './helpers.ts'

if (redisUnavailable) {
  describe('two gateway processes sharing one Redis', () => {
    it.skip(`skipped: ${redisUnavailable}`, () => {})
  })
} else {
  let redis: TestRedis
  let emulator: Emulator
  let dir: string
  let a: GatewayProcess
  let b: GatewayProcess
  let keys: Record<'main' | 'limited' | 'budget', string>

  beforeAll(async () => {
    redis = await startTestRedis()
    emulator = await startEmulator({ timeScale: 0.05 })
    dir = mkdtempSync(path.join(tmpdir(), 'fgw-redis-'))
    const prefix = redis.prefix()
    const seeded = await storeWithKeys({
      main: { plan: 'premium' },
      limited: { plan: 'free', rateLimitPerMinute: 4 },
      budget: { plan: 'basic', budgetCredits: 5, budgetPeriod: 'total' }
    }, createRedisStore({ url: redis.url, prefix }))
    await seeded.store.close()
    keys = seeded.keys
    const env = {
      REPLICATE_API_TOKEN: emulator.token,
      REPLICATE_BASE_URL: emulator.baseUrl,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      // Two instances on one machine stand in for two hosts with shared storage.
      IMAGE_STORAGE_DIR: path.join(dir, 'images')
    }
    ;[a, b] = await Promise.all([spawnGateway(env), spawnGateway(env)])
  }, 30_000)
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await emulator?.close()
    await redis?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const creates = () => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

  describe('two gateway processes sharing one Redis', () => {
    it('idempotency holds across instances: concurrent identical requests on both make one prediction', async () => {
      const before = creates().length
      const body = { prompt: 'one lighthouse, two doors', model: 'flux-schnell' }
      const headers = { 'idempotency-key': 'cross-instance-1', prefer: 'respond-async' }
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? a.url : b.url, 'POST', '/v1/text-to-image', { key: keys.main, body, headers })))
      // The accepted create goes upstream after the answers: once.
      await expect.poll(() => creates().length - before, { timeout: 5_000 }).toBe(1)
      await sleep(200)
      expect(creates().length - before).toBe(1)
      const originals = answers.filter((r) => r.status === 202 && r.headers['idempotent-replayed'] === undefined)
      expect(originals).toHaveLength(1)
      expect(answers.every((r) => r.status === 409 || r.body.id === originals[0]!.body.id)).toBe(true)
      const replay = await call(b.url, 'POST', '/v1/text-to-image', { key: keys.main, body, headers })
      expect(replay.headers['idempotent-replayed']).toBe('true')
      expect(replay.body.id).toBe(originals[0]!.body.id)
    })

    it('a key\'s rate limit counts requests on both instances', async () => {
      const statuses = []
      for (let i = 0; i < 5; i++) statuses.push((await call(i % 2 ? a.url : b.url, 'GET', '/v1/models', { key: keys.limited })).status)
      expect(statuses).toEqual([200, 200, 200, 200, 429])
    })

    it('a budget holds across instances under concurrency', async () => {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) =>
        call(i % 2 ? a.url : b.url, 'POST', '/v1/text-to-image', { key: keys.budget, body: { prompt: `budget ${i}`, model: 'flux-dev' }, headers: { prefer: 'respond-async' } })))
      expect(answers.filter((r) => r.status === 202)).toHaveLength(2)
      expect(answers.filter((r) => r.status === 402)).toHaveLength(8)
    })

    it('a prediction made on one instance is followed, finished and served by the other', async () => {
      const created = await call(a.url, 'POST', '/v1/text-to-image', { key: keys.main, body: { prompt: 'seen from elsewhere', model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
      expect(created.status).toBe(202)
      const id = created.body.id as string
      let read = await call(b.url, 'GET', `/v1/predictions/${id}?wait=10`, { key: keys.main })
      for (let i = 0; i < 50 && read.body.status !== 'succeeded'; i++) {
        await sleep(50)
        read = await call(b.url, 'GET', `/v1/predictions/${id}`, { key: keys.main })
      }
      expect(read.status).toBe(200)
      expect(read.body).toMatchObject({ id, status: 'succeeded', output: [signedImageUrl(b.url, id, 0)] })
      const image = await call(b.url, 'GET', `/v1/predictions/${id}/images/0`, { key: keys.main })
      expect(image.status).toBe(200)
      expect(image.headers['content-type']).toBe('image/webp')
      const usageA = await call(a.url, 'GET', '/v1/usage', { key: keys.main })
      const usageB = await call(b.url, 'GET', '/v1/usage', { key: keys.main })
      expect(usageA.body.balance).toEqual(usageB.body.balance)
    })
  })
}
