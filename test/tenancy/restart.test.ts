import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { spawnGateway, until, withStore } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import type { Prediction } from '../../src/replicate/types.ts'
import { call, signedImageUrl, sleep, storeWithKeys } from './helpers.ts'

let emulator: Emulator
let dir: string
const running: GatewayProcess[] = []

beforeAll(async () => {
  // Slow enough that the first gateway dies mid-generation.
  emulator = await startEmulator({ timeScale: 1, startingMs: [1_500, 1_500], predictSeconds: { 'black-forest-labs/flux-schnell': 0.5, 'black-forest-labs/flux-dev': 3 }, deliveryTtlMs: 60_000 })
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-restart-'))
})
afterAll(async () => {
  for (const g of running) await g.stop()
  await emulator.close()
  rmSync(dir, { recursive: true, force: true })
})

function envFor (file: string, over: Record<string, string> = {}): Record<string, string> {
  return {
    REPLICATE_API_TOKEN: emulator.token,
    REPLICATE_BASE_URL: emulator.baseUrl,
    STATE_SQLITE_PATH: file,
    IMAGE_STORAGE_DIR: path.join(dir, 'images'),
    TRACKER_LEASE_MS: '1000',
    ...over
  }
}


/** The emulator's own list, as Replicate's API would answer it. */
async function upstreamByPrompt (prompt: string): Promise<Prediction | undefined> {
  const res = await request(`${emulator.baseUrl}/predictions`, { headers: { authorization: `Bearer ${emulator.token}` } })
  const body = await res.body.json() as { results: Prediction[] }
  return body.results.find((p) => p.input.prompt === prompt)
}


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
    expect(read.body).toMatchObject({ status: 'succeeded', output: [signedImageUrl(second.url, id, 0)] })
    const image = await request(read.body.output[0], { headers: { authorization: `Bearer ${seed.keys.k}` } })
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    await image.body.dump()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 1, reserved_credits: 0, remaining_credits: 9 })
    // One create upstream in all.
    expect(emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))).toHaveLength(1)
  })
  it('after kill -9 during a sync create, the next process adopts the prediction: the images are kept and the ledger settles once', async () => {
    const file = path.join(dir, 'sync.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const prompt = 'interrupted while Replicate holds the create'
    // The default sync create: the id would only be known when it returns.
    const pending = call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-dev' } }).catch(() => undefined)
    const upstream = await until(() => upstreamByPrompt(prompt), 'the create upstream')
    await first.kill9()
    await pending
    const id = upstream.id
    expect(emulator.getPrediction(id)?.status).not.toBe('succeeded')
    const left = await withStore(file, (store) => store.listPendingCreates(Number.MAX_SAFE_INTEGER))
    expect(left).toMatchObject([{ owner: seed.ids.k, model: 'flux-dev', replicateModel: 'black-forest-labs/flux-dev', numImages: 1, creditsPerImage: 2 }])
    expect(await withStore(file, (store) => store.getPrediction(id))).toBeUndefined()

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    const entry = await withStore(file, (store) => until(async () => {
      const e = await store.getPrediction(id)
      return e?.finalized ? e : undefined
    }, 'the adopted prediction to be finalized'))
    expect(entry).toMatchObject({ owner: seed.ids.k, model: 'flux-dev', ledgerId: left[0]!.ledgerId, kept: [{ key: `${id}/0.webp`, contentType: 'image/webp' }] })
    await withStore(file, async (store) => {
      expect(await store.getLedgerEntry(entry.ledgerId)).toMatchObject({ state: 'settled', credits: 2, images: 1 })
      expect(await store.listPendingCreates(Number.MAX_SAFE_INTEGER)).toEqual([])
    })
    expect(second.logs.some((l) => l.includes('adopted a prediction whose create was interrupted'))).toBe(true)

    const read = await call(second.url, 'GET', `/v1/predictions/${id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ status: 'succeeded', model: 'flux-dev', output: [signedImageUrl(second.url, id, 0)] })
    const image = await request(read.body.output[0], { headers: { authorization: `Bearer ${seed.keys.k}` } })
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    await image.body.dump()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 2, reserved_credits: 0, remaining_credits: 8 })
    expect(usage.body.by_model).toMatchObject([{ model: 'flux-dev', predictions: 1, credits: 2 }])
  }, 40_000)

  it('after kill -9 before the create reached Replicate, the next process releases the reservation', async () => {
    const file = path.join(dir, 'unsent.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const posts = () => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')).length
    const before = posts()
    // Held at the door: the create is not made while the process dies.
    emulator.inject({ kind: 'delay', delayMs: 20_000, method: 'POST', path: /\/predictions$/ })
    const prompt = 'never reached the model'
    const pending = call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-schnell' } }).catch(() => undefined)
    await until(async () => posts() > before ? true : undefined, 'the create to arrive')
    await first.kill9()
    await pending
    emulator.clearFaults()
    const [left] = await withStore(file, (store) => store.listPendingCreates(Number.MAX_SAFE_INTEGER))
    expect(left).toMatchObject({ owner: seed.ids.k, model: 'flux-schnell' })

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    await withStore(file, async (store) => {
      const ledger = await until(async () => {
        const l = await store.getLedgerEntry(left!.ledgerId)
        return l?.state === 'reserved' ? undefined : l
      }, 'the reservation to be released')
      expect(ledger).toMatchObject({ state: 'released', credits: 0 })
      expect(await store.listPendingCreates(Number.MAX_SAFE_INTEGER)).toEqual([])
      expect(await store.listUnfinalized()).toEqual([])
    })
    expect(await upstreamByPrompt(prompt)).toBeUndefined()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 0, reserved_credits: 0, remaining_credits: 10 })
  }, 40_000)

  it('after SIGTERM whose grace ends during a sync create, the next process finishes the prediction', async () => {
    const file = path.join(dir, 'grace.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    // A grace far shorter than the prediction: the process gives up on it.
    const first = await spawnGateway(envFor(file, { SHUTDOWN_GRACE_MS: '300' }))
    running.push(first)
    const exitCode = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)))
    const prompt = 'still running when the grace ends'
    const pending = call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-dev' } }).catch(() => undefined)
    const upstream = await until(() => upstreamByPrompt(prompt), 'the create upstream')
    first.child.kill('SIGTERM')
    expect(await exitCode).toBe(1)
    await pending
    expect(first.logs.some((l) => l.includes('killed by timeout'))).toBe(true)
    expect(emulator.getPrediction(upstream.id)?.status).not.toBe('succeeded')

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    const entry = await withStore(file, (store) => until(async () => {
      const e = await store.getPrediction(upstream.id)
      return e?.finalized ? e : undefined
    }, 'the prediction to be finalized by the next process'))
    expect(entry).toMatchObject({ owner: seed.ids.k, kept: [{ key: `${upstream.id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 2, images: 1 })
    const read = await call(second.url, 'GET', `/v1/predictions/${upstream.id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ status: 'succeeded', output: [signedImageUrl(second.url, upstream.id, 0)] })
  }, 40_000)

  it('after SIGTERM with an async prediction still running, the next process finishes it', async () => {
    const file = path.join(dir, 'graceful-async.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const exitCode = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)))
    const created = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt: 'outlives a graceful stop', model: 'flux-dev' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    const id = created.body.id as string
    first.child.kill('SIGTERM')
    // Nothing is in flight: the process stops its tracker and leaves at once, the prediction unfinished in the store.
    expect(await exitCode).toBe(0)
    expect(emulator.getPrediction(id)?.status).not.toBe('succeeded')
    expect(await withStore(file, (store) => store.getPrediction(id))).toMatchObject({ finalized: false })

    const second = await spawnGateway(envFor(file))
    running.push(second)
    const entry = await withStore(file, (store) => until(async () => {
      const e = await store.getPrediction(id)
      return e?.finalized ? e : undefined
    }, 'the prediction to be finalized by the next process'))
    expect(entry).toMatchObject({ kept: [{ key: `${id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 2, images: 1 })
  }, 40_000)
})
