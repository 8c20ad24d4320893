import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { sleep } from '../tenancy/helpers.ts'

let gw: TestGateway

beforeAll(async () => {
  // slowStart holds each sync create upstream for the whole wait (60 s × 0.1 = 6 s), as a cold model does.
  gw = await startGateway({ emulator: { slowStart: true, timeScale: 0.1 } })
})
afterAll(async () => {
  await gw.close()
})

const creates = (prompt: string) => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions') && (r.body as { input?: { prompt?: string } }).input?.prompt === prompt)
const cancels = () => gw.emulator.requests.filter((r) => r.path.endsWith('/cancel'))

/** A sync create whose caller hangs up once the create has reached Replicate. */
async function leaveDuring (prompt: string, headers: Record<string, string> = {}): Promise<void> {
  const controller = new AbortController()
  const call = request(`${gw.url}/v1/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ prompt, model: 'flux-dev' }),
    signal: controller.signal
  }).catch(() => undefined)
  await expect.poll(() => creates(prompt).length).toBe(1)
  controller.abort()
  await call
}

describe('a sync caller who goes away', () => {
  it('without an Idempotency-Key has the prediction canceled upstream within 5 s, while the create is still held', async () => {
    const before = cancels().length
    await leaveDuring('a caller who hangs up')
    await expect.poll(() => cancels().length - before, { timeout: 5_000, interval: 100 }).toBe(1)
    const id = cancels().at(-1)!.path.split('/')[3]!
    expect(gw.emulator.getPrediction(id)).toMatchObject({ status: 'canceled', input: { prompt: 'a caller who hangs up' } })
    // Our record follows what Replicate said: canceled before the model started, so nothing is owed.
    const ours = (await gw.app.state.listPredictions('anonymous', { limit: 50 })).entries.find((e) => e.upstreamId === id)!
    await expect.poll(async () => (await gw.app.state.getPrediction(ours.id))?.finalized, { timeout: 5_000 }).toBe(true)
    expect((await gw.app.state.getPrediction(ours.id))?.last).toMatchObject({ status: 'canceled', started_at: null, cost_credits: 0 })
    expect(await gw.app.state.getLedgerEntry(ours.ledgerId)).toMatchObject({ state: 'released' })
  }, 20_000)

  it('who leaves after the model started is charged its quote, as any cancel of a running prediction is', async () => {
    // Quick to start, slow to finish: the model is running when the caller leaves.
    const running = await startGateway({ emulator: { timeScale: 0.1, startingMs: [100, 100], predictSeconds: { 'black-forest-labs/flux-dev': 100 } } })
    try {
      const prompt = 'a caller who leaves mid-drawing'
      const controller = new AbortController()
      const call = request(`${running.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt, model: 'flux-dev' }), signal: controller.signal }).catch(() => undefined)
      const upstream = () => running.emulator.requests.find((r) => r.method === 'POST' && (r.body as { input?: { prompt?: string } }).input?.prompt === prompt)
      await expect.poll(() => upstream() !== undefined).toBe(true)
      await sleep(500)
      controller.abort()
      await call
      const ours = await expect.poll(async () => (await running.app.state.listPredictions('anonymous', { limit: 10 })).entries.find((e) => e.finalized), { timeout: 5_000 }).toBeDefined()
        .then(async () => (await running.app.state.listPredictions('anonymous', { limit: 10 })).entries.find((e) => e.finalized)!)
      expect(ours.last).toMatchObject({ status: 'canceled', started_at: expect.any(String), cost_credits: 2 })
      expect(running.emulator.getPrediction(ours.upstreamId!)).toMatchObject({ status: 'canceled', started_at: expect.any(String) })
      expect(await running.app.state.getLedgerEntry(ours.ledgerId)).toMatchObject({ state: 'settled', credits: 2 })
    } finally {
      await running.close()
    }
  }, 20_000)

  it('with an Idempotency-Key keeps it running, and the answer can be replayed', async () => {
    const before = cancels().length
    const lists = () => gw.emulator.requests.filter((r) => r.method === 'GET' && r.path === '/v1/predictions').length
    const listsBefore = lists()
    await leaveDuring('a caller who will come back', { 'idempotency-key': 'come-back-1' })
    // Three lookups' worth of time: nothing looked for it, nothing canceled it.
    await sleep(3_000)
    expect(cancels().length).toBe(before)
    expect(lists()).toBe(listsBefore)
    const replay = async () => request(`${gw.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'come-back-1' },
      body: JSON.stringify({ prompt: 'a caller who will come back', model: 'flux-dev' })
    }).then(async (res) => ({ status: res.statusCode, body: await res.body.json() as { id?: string, status?: string } }))
    // Once the first attempt has its answer (a 202 when the sync wait ran out first), the replay gives it back.
    await expect.poll(async () => (await replay()).status, { timeout: 30_000, interval: 500 }).not.toBe(409)
    const replayed = await replay()
    expect(replayed.body.id).toBeDefined()
    await expect.poll(async () => (await gw.call('GET', `/v1/predictions/${replayed.body.id}`)).body.status, { timeout: 30_000, interval: 500 }).toBe('succeeded')
    expect(creates('a caller who will come back')).toHaveLength(1)
    expect(cancels().length).toBe(before)
  }, 45_000)
})
