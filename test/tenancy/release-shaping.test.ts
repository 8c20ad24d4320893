import { afterEach, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { UPSTREAM_CREATE_BUCKET } from '../../src/tenancy/upstream-shaper.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, expectShaped, recordRateTakes, sleep, storeWithKeys, upstreamTakes } from './helpers.ts'

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
  gw = await startGateway({ env, emulator, overrides: { tenancy: { store, tracker: { poll: { initialMs: 20, maxIntervalMs: 80 } } } } })
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
  it('beyond REPLICATE_CREATE_RATE a sync create is refused with 429 and Retry-After, never sent to Replicate', async () => {
    const { gw, key, store, id } = await setUp({}, { REPLICATE_CREATE_RATE: '6', REPLICATE_CREATE_BURST: '1', REPLICATE_CREATE_QUEUE_MS: '0' })
    const takes = recordRateTakes(store)
    const first = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'first in line', model: 'flux-schnell' }, })
    expect(first.status).toBe(200)
    const second = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'second in line', model: 'flux-schnell' }, })
    expect(second.status).toBe(429)
    expect(second.body).toMatchObject({ code: 'upstream_rate_limited' })
    // 6/min with a burst of 1: the next slot is 10 s after the first create, less the time between the two asks
    // (whatever load made it), and Retry-After is that in whole seconds.
    const [granted, refused] = upstreamTakes(takes)
    expect(upstreamTakes(takes).map((t) => t.take.allowed)).toEqual([true, false])
    expect(refused!.take.retryAfterMs).toBe(10_000 - (refused!.now - granted!.now))
    expect(second.headers['retry-after']).toBe(String(Math.max(1, Math.ceil(refused!.take.retryAfterMs / 1000))))
    expect(second.body.retry_after).toBe(Number(second.headers['retry-after']))
    expect(gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))).toHaveLength(1)
    // The refused request held no credits.
    await ledgerState(store, first.body.id)
    expect(await store.balance(id, { credits: 50, period: 'month' }, Date.now())).toMatchObject({ used_credits: 1, reserved_credits: 0 })
  })

  it('a create within the queue wait is delayed, not refused', async () => {
    const { gw, key, store } = await setUp({}, { REPLICATE_CREATE_RATE: '120', REPLICATE_CREATE_BURST: '1', REPLICATE_CREATE_QUEUE_MS: '5000' })
    // The first create is held up after its slot is granted, as on a busy machine: its arrival then falls between
    // the others', which a measure of arrival gaps would misread as the shaping failing.
    const takes = recordRateTakes(store, { stall: (bucket, nth) => bucket === UPSTREAM_CREATE_BUCKET && nth === 0 ? 600 : 0 })
    const answers = await Promise.all([0, 1, 2].map((i) => call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: `queued ${i}`, model: 'flux-schnell' }, })))
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200])
    expect(upstreamTakes(takes).map((t) => t.take.allowed)).toEqual([true, true, true])
    // Concurrent asks: the later ones were given a wait rather than a refusal.
    expect(upstreamTakes(takes).filter((t) => t.take.waitMs > 0).length).toBeGreaterThanOrEqual(1)
    // 120/min with a burst of 1 is one create per 500 ms.
    expectShaped(takes, gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')).map((r) => r.receivedAt), 500)
  })
})
