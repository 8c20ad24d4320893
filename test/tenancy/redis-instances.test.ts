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
import { request } from 'undici'
import { readEvents } from '../helpers/sse.ts'
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
  /**
   * Two more instances against an emulator of their own, under a prefix of their own: the suite's two instances must
   * not take over these predictions (they would ask their own emulator for them).
   */
  async function pairOn (slow: Emulator, extra: Record<string, string> = {}): Promise<{ c: GatewayProcess, d: GatewayProcess, key: string }> {
    const prefix = redis.prefix()
    const seeded = await storeWithKeys({ k: { plan: 'premium' } }, createRedisStore({ url: redis.url, prefix }))
    await seeded.store.close()
    const env = { REPLICATE_API_TOKEN: slow.token, REPLICATE_BASE_URL: slow.baseUrl, REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix, IMAGE_STORAGE_DIR: path.join(dir, 'images'), ...extra }
    const [c, d] = await Promise.all([spawnGateway(env), spawnGateway(env)])
    return { c, d, key: seeded.keys.k }
  }

  /** The emulator's id of the prediction made for a prompt, from its list as Replicate's API would answer it. */
  const emulatorIdByPrompt = async (prompt: string): Promise<string> => {
    const res = await request(`${emulator.baseUrl}/predictions`, { headers: { authorization: `Bearer ${emulator.token}` } })
    const found = (await res.body.json() as { results: Array<{ id: string, input: { prompt?: string } }> }).results.find((p) => p.input.prompt === prompt)
    if (!found) throw new Error(`no upstream prediction for ${prompt}`)
    return found.id
  }

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

    it('a prediction created on A and watched on B, by long-poll and by event stream, costs Replicate one request', async () => {
      const prompt = `watched across instances ${Date.now()}`
      const created = await request(`${a.url}/v1/text-to-image`, { method: 'POST', headers: { authorization: `Bearer ${keys.main}`, 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt, model: 'flux-dev' }) })
      expect(created.statusCode).toBe(202)
      const { id } = await created.body.json() as { id: string }
      const [polled, streamed] = await Promise.all([
        call(b.url, 'GET', `/v1/predictions/${id}?wait=30`, { key: keys.main }),
        readEvents(`${b.url}/v1/predictions/${id}/events`, { authorization: `Bearer ${keys.main}` })
      ])
      expect(polled.body).toMatchObject({ id, status: 'succeeded' })
      expect(streamed.events.map((e) => e.event)).toContain('output')
      expect(streamed.events.at(-1)).toMatchObject({ event: 'completed', data: { id, status: 'succeeded' } })
      // The listing below is the test's own request; before it, the prediction's only API request was its create.
      const calls = emulator.requests.filter((r) => !r.path.startsWith('/delivery/'))
      const upstreamId = await emulatorIdByPrompt(prompt)
      const ours = calls.filter((r) => (r.body as { input?: { prompt?: string } } | undefined)?.input?.prompt === prompt || r.path.includes(upstreamId))
      expect(ours.map((r) => r.method)).toEqual(['POST'])
    })

    it('a cancel asked on one instance stops a create held on the other: found upstream by its input and canceled', async () => {
      // Real time, and long enough that the create is still held by Replicate when the cancel comes, however busy
      // the machine (it is canceled long before it would start).
      const slow = await startEmulator({ timeScale: 1, startingMs: [15_000, 15_000], predictSeconds: { 'black-forest-labs/flux-schnell': 5 } })
      const { c, d, key } = await pairOn(slow)
      try {
        const created = await request(`${c.url}/v1/text-to-image`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt: 'canceled from elsewhere', model: 'flux-schnell' }) })
        const { id } = await created.body.json() as { id: string }
        for (let i = 0; i < 200 && !slow.requests.some((r) => r.method === 'POST'); i++) await sleep(10)
        const canceled = await call(d.url, 'POST', `/v1/predictions/${id}/cancel`, { key })
        expect(canceled.status).toBe(200)
        expect(canceled.body).toMatchObject({ id, status: 'canceled', cost_credits: 0 })
        // c, which holds the create, heard of it on the change feed: Replicate's prediction is canceled too.
        const cancels = () => slow.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/cancel'))
        await expect.poll(() => cancels().length, { timeout: 5_000 }).toBe(1)
        const upstreamId = cancels()[0]!.path.split('/')[3]!
        expect(slow.getPrediction(upstreamId)).toMatchObject({ status: 'canceled', input: { prompt: 'canceled from elsewhere' } })
        expect((await call(c.url, 'GET', `/v1/predictions/${id}`, { key })).body).toMatchObject({ status: 'canceled' })
      } finally {
        await c.stop()
        await d.stop()
        await slow.close()
      }
    }, 40_000)

    it('kill -9 the instance holding a create: the other takes the prediction over and finishes it, charged once', async () => {
      // Real time, so the create is still held by Replicate when its instance dies.
      const slow = await startEmulator({ timeScale: 1, startingMs: [1_000, 1_000], predictSeconds: { 'black-forest-labs/flux-schnell': 1 } })
      const { c, d, key } = await pairOn(slow, { TRACKER_LEASE_MS: '1000', CREATE_RECONCILE_AFTER_MS: '1000' })
      try {
        const prompt = 'held when its instance dies'
        const created = await request(`${c.url}/v1/text-to-image`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt, model: 'flux-schnell' }) })
        const { id } = await created.body.json() as { id: string }
        for (let i = 0; i < 1000 && !slow.requests.some((r) => r.method === 'POST'); i++) await sleep(10)
        await c.kill9()
        // d hears of the end on the change feed: a long-poll there answers once d has finished what c started.
        const read = await call(d.url, 'GET', `/v1/predictions/${id}?wait=30`, { key })
        expect(read.body).toMatchObject({ id, status: 'succeeded', output: [signedImageUrl(d.url, id, 0)] })
        expect(slow.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))).toHaveLength(1)
        expect(d.logs.some((l) => l.includes('found the prediction of an interrupted create'))).toBe(true)
        const usage = await call(d.url, 'GET', '/v1/usage', { key })
        expect(usage.body.by_model).toEqual(expect.arrayContaining([expect.objectContaining({ model: 'flux-schnell', predictions: 1, credits: 1 })]))
      } finally {
        await c.stop()
        await d.stop()
        await slow.close()
      }
    }, 40_000)
  })
}
