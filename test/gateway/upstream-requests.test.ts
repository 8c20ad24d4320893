import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

/**
 * What each prediction costs Replicate, request by request, in the cases callers make. The emulator runs at
 * 1/50 of real time, so Replicate's 60 s sync window is 1.2 s here; the tracker's 5 s polling cap is scaled to
 * 100 ms to match. Requests that fetch output images are not API requests and are left out.
 */
const SCALE = 0.02
const WINDOW_MS = 60_000 * SCALE
const CAP_MS = 5_000 * SCALE

const running: TestGateway[] = []
afterEach(async () => {
  for (const g of running.splice(0)) await g.close()
})

async function gateway (o: { webhooks: boolean, schnellSeconds?: number }): Promise<TestGateway> {
  const gw = await startGateway({
    selfBaseUrl: true,
    env: o.webhooks ? { REPLICATE_WEBHOOKS: 'on' } : {},
    emulator: { timeScale: SCALE, startingMs: [0, 0], ...(o.schnellSeconds ? { predictSeconds: { 'black-forest-labs/flux-schnell': o.schnellSeconds } } : {}) },
    overrides: { tenancy: { tracker: { poll: { initialMs: CAP_MS, maxIntervalMs: CAP_MS } } } }
  })
  running.push(gw)
  return gw
}

/** The API requests that reached the emulator, as `METHOD path`. */
const apiCalls = (gw: TestGateway) => gw.emulator.requests.filter((r) => !r.path.startsWith('/delivery/') && r.path !== '/v1/webhooks/default/secret').map((r) => `${r.method} ${r.path}`)

describe.each([false, true])('upstream requests per prediction, webhooks %s', (webhooks) => {
  it('a default sync create that ends within the window: 1', async () => {
    const gw = await gateway({ webhooks })
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'a quick one', model: 'flux-schnell' })
    expect(res.body.status).toBe('succeeded')
    expect(apiCalls(gw)).toEqual(['POST /v1/models/black-forest-labs/flux-schnell/predictions'])
  })

  it(`a default sync create longer than the window: ${webhooks ? '1 (the webhook ends it)' : 'at most 1 + ⌈(T − 60 s) / 5 s⌉ (+1 for the read at the boundary)'}`, async () => {
    // T = 75 s scaled: 1.5 s, past the 1.2 s window.
    const gw = await gateway({ webhooks, schnellSeconds: 75 })
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'a long one', model: 'flux-schnell' }, { prefer: 'wait=10' })
    let body = res.body
    if (body.status !== 'succeeded') body = (await gw.call('GET', `/v1/predictions/${String(body.id)}?wait=10`)).body
    expect(body.status).toBe('succeeded')
    const calls = apiCalls(gw)
    expect(calls[0]).toBe('POST /v1/models/black-forest-labs/flux-schnell/predictions')
    if (webhooks) expect(calls).toHaveLength(1)
    else expect(calls.length).toBeLessThanOrEqual(1 + Math.ceil((75_000 * SCALE - WINDOW_MS) / CAP_MS) + 1)
    expect(calls.slice(1).every((c) => c === `GET /v1/predictions/${calls.length > 1 ? c.split('/').pop()! : ''}`)).toBe(true)
  })

  it('Prefer: respond-async, then GET ?wait=60: 1', async () => {
    const gw = await gateway({ webhooks })
    const created = await gw.call('POST', '/v1/text-to-image', { prompt: 'an async one', model: 'flux-schnell' }, { prefer: 'respond-async' })
    const done = await gw.call('GET', `/v1/predictions/${String(created.body.id)}?wait=60`)
    expect(done.body.status).toBe('succeeded')
    expect(apiCalls(gw)).toEqual(['POST /v1/models/black-forest-labs/flux-schnell/predictions'])
  })

  it('100 callers long-polling one prediction: 1', async () => {
    // T = 10 s scaled: 0.2 s, within the window.
    const gw = await gateway({ webhooks, schnellSeconds: 10 })
    // Sent straight (the test helper would wait for the create to be answered): the callers start while it runs.
    const res = await request(`${gw.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt: 'a watched one', model: 'flux-schnell' }) })
    const { id } = await res.body.json() as { id: string }
    const answers = await Promise.all(Array.from({ length: 100 }, () => gw.call('GET', `/v1/predictions/${id}?wait=60`)))
    expect(answers.every((a) => a.status === 200 && a.body.status === 'succeeded')).toBe(true)
    expect(apiCalls(gw)).toEqual(['POST /v1/models/black-forest-labs/flux-schnell/predictions'])
  })
})
