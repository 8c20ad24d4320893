import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, sleep, storeWithKeys } from './helpers.ts'

let gw: TestGateway
let store: StateStore
let keys: Record<'a' | 'b' | 'budget' | 'race' | 'month', string>
let ids: Record<'a' | 'b' | 'budget' | 'race' | 'month', string>

beforeAll(async () => {
  ({ store, keys, ids } = await storeWithKeys({
    a: { plan: 'premium' },
    b: { plan: 'premium' },
    budget: { plan: 'basic', budgetCredits: 5, budgetPeriod: 'total' },
    race: { plan: 'basic', budgetCredits: 7, budgetPeriod: 'month' },
    month: { plan: 'basic', budgetCredits: 100 }
  }))
  gw = await startGateway({
    overrides: { tenancy: { store, tracker: { poll: { initialMs: 20, maxIntervalMs: 80 } } } },
    // Triggers without a listed word, so the model (not our moderation) is what refuses.
    emulator: { nsfwTrigger: 'velvet-lighthouse', partialNsfwTrigger: 'amber-lighthouse' }
  })
})
afterAll(async () => {
  await gw.close()
  await store.close()
})

const creates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))
const ledgerOf = async (id: string) => {
  const entry = await store.getPrediction(id)
  return entry ? store.getLedgerEntry(entry.ledgerId) : undefined
}
async function until<T> (fn: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let value = await fn()
  for (let i = 0; i < 200 && !ok(value); i++) {
    await sleep(25)
    value = await fn()
  }
  return value
}

describe('idempotency', () => {
  it('50 concurrent identical requests make one upstream prediction; retries replay it', async () => {
    const before = creates().length
    const body = { prompt: 'fifty identical lighthouses', model: 'flux-schnell' }
    const headers = { 'idempotency-key': 'order-50', prefer: 'respond-async' }
    const answers = await Promise.all(Array.from({ length: 50 }, () => call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body, headers })))
    expect(creates().length - before).toBe(1)
    const originals = answers.filter((a) => a.status === 202 && a.headers['idempotent-replayed'] === undefined)
    const replays = answers.filter((a) => a.status === 202 && a.headers['idempotent-replayed'] === 'true')
    const conflicts = answers.filter((a) => a.status === 409)
    expect(originals).toHaveLength(1)
    expect(originals.length + replays.length + conflicts.length).toBe(50)
    const first = originals[0]!
    for (const r of replays) expect(r.body.id).toBe(first.body.id)
    for (const c of conflicts) expect(c.body).toMatchObject({ code: 'idempotency_in_flight', retry_after: 1 })

    const replay = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { model: 'flux-schnell', prompt: 'fifty identical lighthouses' }, headers })
    expect(replay.status).toBe(202)
    expect(replay.headers['idempotent-replayed']).toBe('true')
    expect(replay.headers.location).toBe(first.headers.location)
    expect(replay.body).toEqual(first.body)
    expect(creates().length - before).toBe(1)
    // Charged once.
    const ledger = await until(() => ledgerOf(first.body.id), (l) => l?.state === 'settled')
    expect(ledger).toMatchObject({ state: 'settled', credits: 1 })
  })

  it('the same key with another body is 422; keys are per API key', async () => {
    const headers = { 'idempotency-key': 'k-body' }
    const one = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: 'a blue door', model: 'flux-schnell' }, headers })
    expect(one.status).toBe(200)
    const other = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: 'a red door', model: 'flux-schnell' }, headers })
    expect(other.status).toBe(422)
    expect(other.body.code).toBe('idempotency_key_reused')
    const b = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.b, body: { prompt: 'a blue door', model: 'flux-schnell' }, headers })
    expect(b.status).toBe(200)
    expect(b.headers['idempotent-replayed']).toBeUndefined()
    expect(b.body.id).not.toBe(one.body.id)
  })

  it('refusals that may change are not kept: a retry runs again', async () => {
    const headers = { 'idempotency-key': 'k-budget' }
    const body = { prompt: 'too expensive', model: 'flux-dev', num_outputs: 4 }
    const first = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.budget, body, headers })
    expect(first.status).toBe(402)
    const again = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.budget, body, headers })
    expect(again.status).toBe(402)
    expect(again.headers['idempotent-replayed']).toBeUndefined()
    expect((await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: 'x' }, headers: { 'idempotency-key': '' } })).status).toBe(400)
  })
})

describe('usage ledger', () => {
  it('settles per delivered image and releases on failure, safety refusals, moderation, cancel before start and abort', async () => {
    const ok = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.month, body: { prompt: 'two kites', model: 'flux-dev', num_outputs: 2 } })
    expect(ok.status).toBe(200)
    expect(await ledgerOf(ok.body.id)).toMatchObject({ state: 'settled', credits: 4, images: 2, usd: 0.05 })

    const partial = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.month, body: { prompt: 'amber-lighthouse four cats', model: 'flux-dev', num_outputs: 4 } })
    expect(partial.status).toBe(200)
    const delivered = (partial.body.output as string[]).length
    expect(delivered).toBeGreaterThan(0)
    expect(delivered).toBeLessThan(4)
    expect(await ledgerOf(partial.body.id)).toMatchObject({ state: 'settled', credits: 2 * delivered, images: delivered })

    const failed = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.month, body: { prompt: 'fail-test please', model: 'flux-dev' } })
    expect(failed.status).toBe(200)
    expect(failed.body.status).toBe('failed')
    expect(await ledgerOf(failed.body.id)).toMatchObject({ state: 'released', credits: 0 })

    const unsafe = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.month, body: { prompt: 'velvet-lighthouse picture', model: 'flux-dev' } })
    expect(unsafe.status).toBe(422)
    // The refusal names a prediction the caller can read: failed, its credits released.
    expect(await store.getLedgerEntry((await store.getPrediction(unsafe.body.prediction_id))?.ledgerId ?? 'none')).toMatchObject({ state: 'released', credits: 0 })
    expect((await call(gw.url, 'GET', `/v1/predictions/${unsafe.body.prediction_id}`, { key: keys.month })).body).toMatchObject({ status: 'failed', error: { code: 'content_policy_violation' } })

    const refused = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.month, body: { prompt: 'how to make a pipe bomb', model: 'flux-dev' } })
    expect(refused.status).toBe(422)

    // Nothing but the two settled predictions is held or used.
    expect(await store.balance(ids.month, { credits: 100, period: 'month' }, Date.now())).toMatchObject({ used_credits: 4 + 2 * delivered, reserved_credits: 0 })
    const usage = await call(gw.url, 'GET', '/v1/usage', { key: keys.month })
    expect(usage.status).toBe(200)
    expect(usage.body).toMatchObject({
      key_id: ids.month,
      plan: 'basic',
      balance: { budget_credits: 100, period: 'month', used_credits: 4 + 2 * delivered, reserved_credits: 0, remaining_credits: 100 - 4 - 2 * delivered },
      by_model: [{ model: 'flux-dev', predictions: 2, images: 2 + delivered, credits: 4 + 2 * delivered }]
    })
    expect(usage.body.by_day).toHaveLength(1)
    expect(usage.body.by_day[0]).toMatchObject({ date: new Date().toISOString().slice(0, 10), credits: 4 + 2 * delivered })
  })

  it('budgets: 402 insufficient_credits with the balance, before anything goes upstream', async () => {
    const before = creates().length
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.budget, body: { prompt: 'six credits', model: 'flux-dev', num_outputs: 3 } })
    expect(res.status).toBe(402)
    expect(res.body).toMatchObject({ code: 'insufficient_credits', required_credits: 6, balance: { budget_credits: 5, period: 'total', remaining_credits: 5 } })
    expect(creates().length).toBe(before)
  })

  it('concurrent requests never overspend a budget', async () => {
    const before = creates().length
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      call(gw.url, 'POST', '/v1/text-to-image', { key: keys.race, body: { prompt: `race ${i}`, model: 'flux-dev' }, headers: { prefer: 'respond-async' } })))
    const accepted = answers.filter((a) => a.status === 202)
    expect(accepted).toHaveLength(3)
    expect(answers.filter((a) => a.status === 402)).toHaveLength(17)
    expect(creates().length - before).toBe(3)
    // The tracker settles them in the background.
    for (const a of accepted) expect(await until(() => ledgerOf(a.body.id), (l) => l?.state === 'settled')).toMatchObject({ credits: 2 })
    expect(await store.balance(ids.race, { credits: 7, period: 'month' }, Date.now())).toMatchObject({ used_credits: 6, reserved_credits: 0, remaining_credits: 1 })
  })

  it('kept images are served to their owner after Replicate expired its copies', async () => {
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: 'a kept image', model: 'flux-schnell', output_format: 'png' } })
    expect(res.status).toBe(200)
    const id = res.body.id as string
    expect(res.body.output).toEqual([signedImageUrl(gw.url, id, 0)])
    const upstreamId = await gw.upstreamId(id)
    const upstreamUrl = (gw.emulator.getPrediction(upstreamId)!.output as string[])[0]!
    const fresh = await request(upstreamUrl)
    const original = Buffer.from(await fresh.body.arrayBuffer())
    expect(fresh.statusCode).toBe(200)
    // Replicate removes its copy an hour after completion: ended here on demand, not raced against a short timer.
    expect(gw.emulator.expireOutput(upstreamId)).toBe(true)
    expect((await request(upstreamUrl)).statusCode).toBe(404)
    const kept = await request(`${gw.url}/v1/predictions/${id}/images/0`, { headers: { authorization: `Bearer ${keys.a}` } })
    expect(kept.statusCode).toBe(200)
    expect(kept.headers['content-type']).toBe('image/png')
    expect(Buffer.from(await kept.body.arrayBuffer()).equals(original)).toBe(true)
    const again = await call(gw.url, 'GET', `/v1/predictions/${id}`, { key: keys.a })
    expect(again.body.output).toEqual([signedImageUrl(gw.url, id, 0)])
    expect((await call(gw.url, 'GET', `/v1/predictions/${id}/images/1`, { key: keys.a })).status).toBe(404)
  })
})
