import { afterEach, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, sleep, storeWithKeys } from './helpers.ts'

let gw: TestGateway | undefined
let store: StateStore | undefined
afterEach(async () => {
  await gw?.close()
  await store?.close()
  gw = undefined
  store = undefined
})

async function setUp (emulator: Parameters<typeof startGateway>[0] extends infer O ? O extends { emulator?: infer E } ? E : never : never, env: Record<string, string> = {}) {
  const made = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 50 } })
  store = made.store
  gw = await startGateway({ env, emulator, overrides: { tenancy: { store, service: { background: true, poll: { initialMs: 20, intervalMs: 40, maxIntervalMs: 80 } } } } })
  return { gw, key: made.keys.k, id: made.ids.k, store }
}

async function ledgerState (s: StateStore, predictionId: string): Promise<string | undefined> {
  for (let i = 0; i < 200; i++) {
    const entry = await s.getPrediction(predictionId)
    const ledger = entry ? await s.getLedgerEntry(entry.ledgerId) : undefined
    if (ledger && ledger.state !== 'reserved') return ledger.state
    await sleep(25)
  }
  return 'reserved'
}

describe('ledger release paths', () => {
  it('a cancel before the model starts releases the credits', async () => {
    const { gw, key, id, store } = await setUp({ slowStart: true })
    const created = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'never started', model: 'flux-dev' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    expect(await store.balance(id, { credits: 50, period: 'month' }, Date.now())).toMatchObject({ reserved_credits: 2 })
    const canceled = await call(gw.url, 'POST', `/v1/predictions/${created.body.id}/cancel`, { key })
    expect(canceled.body).toMatchObject({ status: 'canceled', started_at: null })
    expect(await ledgerState(store, created.body.id)).toBe('released')
    expect(await store.balance(id, { credits: 50, period: 'month' }, Date.now())).toMatchObject({ used_credits: 0, reserved_credits: 0, remaining_credits: 50 })
  })

  it('an aborted prediction releases the credits', async () => {
    const { gw, key, store } = await setUp({ pitfalls: { abortAll: true } })
    const created = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'past its deadline', model: 'flux-dev' }, headers: { prefer: 'respond-async' } })
    expect(created.status).toBe(202)
    expect(await ledgerState(store, created.body.id)).toBe('released')
    const read = await call(gw.url, 'GET', `/v1/predictions/${created.body.id}`, { key })
    expect(read.body).toMatchObject({ status: 'aborted', cost_credits: 0 })
  })
})

describe('upstream create shaping', () => {
  it('beyond REPLICATE_CREATE_RATE a create is refused with 429 and Retry-After, never sent to Replicate', async () => {
    const { gw, key, store, id } = await setUp({}, { REPLICATE_CREATE_RATE: '6', REPLICATE_CREATE_BURST: '1', REPLICATE_CREATE_QUEUE_MS: '0' })
    const first = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'first in line', model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    expect(first.status).toBe(202)
    const second = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'second in line', model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
    expect(second.status).toBe(429)
    expect(second.body).toMatchObject({ code: 'upstream_rate_limited' })
    expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(9)
    expect(Number(second.headers['retry-after'])).toBeLessThanOrEqual(10)
    expect(gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))).toHaveLength(1)
    // The refused request held no credits.
    await ledgerState(store, first.body.id)
    expect(await store.balance(id, { credits: 50, period: 'month' }, Date.now())).toMatchObject({ used_credits: 1, reserved_credits: 0 })
  })

  it('a create within the queue wait is delayed, not refused', async () => {
    const { gw, key } = await setUp({}, { REPLICATE_CREATE_RATE: '600', REPLICATE_CREATE_BURST: '1', REPLICATE_CREATE_QUEUE_MS: '5000' })
    const answers = await Promise.all([0, 1, 2].map((i) => call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: `queued ${i}`, model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })))
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202])
    const times = gw.emulator.requests.filter((r) => r.method === 'POST').map((r) => r.receivedAt).sort((a, b) => a - b)
    // 600/min with a burst of 1 is one create per 100 ms.
    expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(180)
  })
})
