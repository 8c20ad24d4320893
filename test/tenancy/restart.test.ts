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
import type { PredictionEntry } from '../../src/stores/types.ts'
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


/** The only prediction in a state file, once the gateway has recorded it. */
async function onlyPrediction (file: string): Promise<PredictionEntry> {
  return withStore(file, (store) => until(async () => (await store.listUnfinalized())[0], 'the accepted prediction'))
}

const finalizedIn = (file: string, id: string) => withStore(file, (store) => until(async () => {
  const e = await store.getPrediction(id)
  return e?.finalized ? e : undefined
}, `${id} to be finalized`))

const postsFor = (prompt: string) => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions') && (r.body as { input?: { prompt?: string } })?.input?.prompt === prompt).length

describe('restart recovery', () => {
  it('after kill -9 while an async create is held upstream, the next process finds the prediction: the images are kept and the ledger settles', async () => {
    const file = path.join(dir, 'state.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const prompt = 'survives a crash'
    const created = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    const id = created.body.id as string
    // Sent after the 202 and held by Replicate (sync mode) while the process dies: its id never came back.
    const upstream = await until(() => upstreamByPrompt(prompt), 'the create upstream')
    await first.kill9()
    expect(emulator.getPrediction(upstream.id)?.status).toBe('starting')
    expect(await withStore(file, (store) => store.getPrediction(id))).toMatchObject({ finalized: false, create: { sentAt: expect.any(Number) } })

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    // No caller asks: the resumed tracker alone finds it by its input and finalizes it.
    const entry = await finalizedIn(file, id)
    expect(entry).toMatchObject({ owner: seed.ids.k, upstreamId: upstream.id, kept: [{ key: `${id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 1, images: 1 })
    expect(second.logs.some((l) => l.includes('resumed tracking unfinished predictions'))).toBe(true)
    expect(second.logs.some((l) => l.includes('found the prediction of an interrupted create'))).toBe(true)
    const read = await call(second.url, 'GET', `/v1/predictions/${id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ id, status: 'succeeded', output: [signedImageUrl(second.url, id, 0)] })
    const image = await request(read.body.output[0], { headers: { authorization: `Bearer ${seed.keys.k}` } })
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    await image.body.dump()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 1, reserved_credits: 0, remaining_credits: 9 })
    // One create upstream in all.
    expect(postsFor(prompt)).toBe(1)
  }, 40_000)

  it('after kill -9 during a sync create, the next process adopts the prediction: the images are kept and the ledger settles once', async () => {
    const file = path.join(dir, 'sync.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const prompt = 'interrupted while Replicate holds the create'
    const pending = call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-dev' } }).catch(() => undefined)
    const upstream = await until(() => upstreamByPrompt(prompt), 'the create upstream')
    await first.kill9()
    await pending
    expect(emulator.getPrediction(upstream.id)?.status).not.toBe('succeeded')
    const left = await onlyPrediction(file)
    expect(left).toMatchObject({ owner: seed.ids.k, model: 'flux-dev', numImages: 1, creditsPerImage: 2, create: { replicateModel: 'black-forest-labs/flux-dev' } })
    expect(left.upstreamId).toBeUndefined()

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    const entry = await finalizedIn(file, left.id)
    expect(entry).toMatchObject({ owner: seed.ids.k, model: 'flux-dev', upstreamId: upstream.id, ledgerId: left.ledgerId, kept: [{ key: `${left.id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 2, images: 1 })

    const read = await call(second.url, 'GET', `/v1/predictions/${left.id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ status: 'succeeded', model: 'flux-dev', output: [signedImageUrl(second.url, left.id, 0)] })
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 2, reserved_credits: 0, remaining_credits: 8 })
    expect(usage.body.by_model).toMatchObject([{ model: 'flux-dev', predictions: 1, credits: 2 }])
    expect(postsFor(prompt)).toBe(1)
  }, 40_000)

  it('after kill -9 before the create reached Replicate, the next process fails the prediction and releases the reservation', async () => {
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
    const left = await onlyPrediction(file)

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    const entry = await finalizedIn(file, left.id)
    expect(entry.last).toMatchObject({ status: 'failed', cost_credits: 0, error: { code: 'upstream_error' } })
    expect(await withStore(file, (store) => store.getLedgerEntry(left.ledgerId))).toMatchObject({ state: 'released', credits: 0 })
    expect(await upstreamByPrompt(prompt)).toBeUndefined()
    const usage = await call(second.url, 'GET', '/v1/usage', { key: seed.keys.k })
    expect(usage.body.balance).toMatchObject({ used_credits: 0, reserved_credits: 0, remaining_credits: 10 })
  }, 40_000)

  it('accepted creates still queued for an upstream slot when the process dies are sent by the next process, once', async () => {
    const file = path.join(dir, 'queued.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    // One create every 10 s (the slots live in the shared store): the second accepted create waits in the queue.
    const rate = { REPLICATE_CREATE_RATE: '6', REPLICATE_CREATE_BURST: '1' }
    const first = await spawnGateway(envFor(file, rate))
    running.push(first)
    const sent = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt: 'first in line', model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    await finalizedIn(file, sent.body.id as string)
    const prompt = 'waits its turn across a crash'
    const queued = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    expect(queued.status).toBe(202)
    const id = queued.body.id as string
    await sleep(300)
    expect(await withStore(file, (store) => store.getPrediction(id))).toMatchObject({ finalized: false, create: { sentAt: null } })
    await first.kill9()
    expect(postsFor(prompt)).toBe(0)

    const second = await spawnGateway(envFor(file, rate))
    running.push(second)
    const entry = await finalizedIn(file, id)
    expect(entry).toMatchObject({ kept: [{ key: `${id}/0.webp` }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 1 })
    expect(postsFor(prompt)).toBe(1)
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
    const left = await onlyPrediction(file)

    const second = await spawnGateway(envFor(file, { CREATE_RECONCILE_AFTER_MS: '1000' }))
    running.push(second)
    const entry = await finalizedIn(file, left.id)
    expect(entry).toMatchObject({ owner: seed.ids.k, upstreamId: upstream.id, kept: [{ key: `${left.id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry.ledgerId))).toMatchObject({ state: 'settled', credits: 2, images: 1 })
    const read = await call(second.url, 'GET', `/v1/predictions/${left.id}`, { key: seed.keys.k })
    expect(read.body).toMatchObject({ status: 'succeeded', output: [signedImageUrl(second.url, left.id, 0)] })
  }, 40_000)

  it('on SIGTERM with an async create held upstream, the process lets it answer and finishes the prediction before it exits', async () => {
    const file = path.join(dir, 'graceful-async.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const first = await spawnGateway(envFor(file))
    running.push(first)
    const exitCode = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)))
    const prompt = 'outlives a graceful stop'
    const created = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt, model: 'flux-dev' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    const id = created.body.id as string
    await until(() => upstreamByPrompt(prompt), 'the create upstream')
    first.child.kill('SIGTERM')
    expect(await exitCode).toBe(0)
    const entry = await withStore(file, (store) => store.getPrediction(id))
    expect(entry).toMatchObject({ finalized: true, kept: [{ key: `${id}/0.webp`, contentType: 'image/webp' }] })
    expect(await withStore(file, (store) => store.getLedgerEntry(entry!.ledgerId))).toMatchObject({ state: 'settled', credits: 2, images: 1 })
    expect(postsFor(prompt)).toBe(1)
  }, 40_000)
})
