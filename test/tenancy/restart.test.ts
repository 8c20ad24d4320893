import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { spawnGateway } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { call, sleep, storeWithKeys } from './helpers.ts'

let emulator: Emulator
let dir: string
const running: GatewayProcess[] = []

beforeAll(async () => {
  // Slow enough that the first gateway dies mid-generation.
  emulator = await startEmulator({ timeScale: 1, startingMs: [1_500, 1_500], predictSeconds: { 'black-forest-labs/flux-schnell': 0.5 }, deliveryTtlMs: 60_000 })
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-restart-'))
})
afterAll(async () => {
  for (const g of running) await g.stop()
  await emulator.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('restart recovery', () => {
  it('after kill -9 mid-generation, the next process resumes tracking: the images are kept and the ledger settles', async () => {
    const file = path.join(dir, 'state.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const env = {
      REPLICATE_API_TOKEN: emulator.token,
      REPLICATE_BASE_URL: emulator.baseUrl,
      STATE_SQLITE_PATH: file,
      IMAGE_STORAGE_DIR: path.join(dir, 'images'),
      TRACKER_LEASE_MS: '1000'
    }
    const first = await spawnGateway(env)
    running.push(first)
    const created = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt: 'survives a crash', model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    const id = created.body.id as string
    await first.kill9()
    expect(emulator.getPrediction(id)?.status).toBe('starting')

    const second = await spawnGateway(env)
    running.push(second)
    // No caller asks: the resumed tracker alone finalizes it.
    const store = createSqliteStore({ path: file })
    try {
      let entry = await store.getPrediction(id)
      for (let i = 0; i < 200 && !entry?.finalized; i++) {
        await sleep(50)
        entry = await store.getPrediction(id)
      }
      expect(entry).toMatchObject({ finalized: true, owner: seed.ids.k, kept: [{ key: `${id}/0.webp`, contentType: 'image/webp' }] })
      expect(await store.getLedgerEntry(entry!.ledgerId)).toMatchObject({ state: 'settled', credits: 1, images: 1 })
    } finally {
      await store.close()
    }
    expect(second.logs.some((l) => l.includes('resumed tracking unfinished predictions'))).toBe(true)
    const read = await call(second.url, 'GET', `/v1/predictions/${id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ status: 'succeeded', output: [`${second.url}/v1/predictions/${id}/images/0`] })
    const image = await request(read.body.output[0], { headers: { authorization: `Bearer ${seed.keys.k}` } })
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    await image.body.dump()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 1, reserved_credits: 0, remaining_credits: 9 })
    // One create upstream in all.
    expect(emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))).toHaveLength(1)
  })
})
