import { createServer } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { Webhook } from 'standardwebhooks'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { RETRY_DELAYS_MS } from '../../src/webhooks/schedule.ts'
import { rotateWebhookSecret } from '../../src/webhooks/secrets.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, storeWithKeys } from '../tenancy/helpers.ts'

/** Webhooks to callers: signed per Standard Webhooks, retried with backoff, refused for private addresses. */

interface Received { headers: IncomingHttpHeaders, body: string }
interface Receiver { url: string, received: Received[], close: () => Promise<void> }

/** A loopback receiver answering each POST with the next of `statuses` (200 once they run out). */
async function startReceiver (statuses: number[] = []): Promise<Receiver> {
  const received: Received[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(statuses.shift() ?? 200).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return { url: `http://127.0.0.1:${port}/hook`, received, close: () => new Promise((resolve) => server.close(() => resolve())) }
}

interface Setup { gw: TestGateway, store: StateStore, key: string, keyId: string, otherKey: string, receiver: Receiver, waits: number[] }
const running: Setup[] = []
afterEach(async () => {
  for (const { gw, store, receiver } of running.splice(0)) {
    await gw.close()
    await store.close()
    await receiver.close()
  }
})

async function setUp (o: { insecure?: boolean, statuses?: number[], inlineWaitMs?: number } = {}): Promise<Setup> {
  const made = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 50 }, other: { plan: 'basic' } })
  const waits: number[] = []
  // The dispatcher's clock moves only when it waits, so the waits it asks for are exact.
  let clock = Date.now()
  const gw = await startGateway({
    env: o.insecure === false ? {} : { WEBHOOK_ALLOW_INSECURE: 'true' },
    overrides: {
      tenancy: { store: made.store },
      // Waits are recorded and skipped: the schedule is asserted on what was asked for, not on wall time.
      webhooks: { sleep: async (ms) => { waits.push(ms); clock += ms }, now: () => clock, sweepMs: 0, ...(o.inlineWaitMs ? { inlineWaitMs: o.inlineWaitMs } : {}) }
    }
  })
  const setup = { gw, store: made.store, key: made.keys.k, keyId: made.ids.k, otherKey: made.keys.other, receiver: await startReceiver(o.statuses), waits }
  running.push(setup)
  return setup
}

function verify (secret: string, r: Received): { type: string, data: Record<string, any> } { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Webhook(secret).verify(r.body, {
    'webhook-id': String(r.headers['webhook-id']),
    'webhook-timestamp': String(r.headers['webhook-timestamp']),
    'webhook-signature': String(r.headers['webhook-signature'])
  }) as { type: string, data: Record<string, any> } // eslint-disable-line @typescript-eslint/no-explicit-any
}

function metric (text: string, outcome: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`webhook_deliveries_total{outcome="${outcome}"}`))
  return Number(line?.split(' ')[1])
}

describe('webhooks to callers', () => {
  it('POSTs the finished prediction, signed with the key\'s whsec_ secret, to a loopback receiver', async () => {
    const { gw, key, keyId, receiver } = await setUp()
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a lighthouse at dusk', webhook: receiver.url } })
    expect(res.status).toBe(200)
    await gw.app.webhooks.idle()

    expect(receiver.received).toHaveLength(1)
    const [secret] = await gw.app.webhooks.secrets(keyId)
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/)
    const event = verify(secret!, receiver.received[0]!)
    expect(event.type).toBe('prediction.completed')
    expect(event.data).toMatchObject({ id: res.body.id, status: 'succeeded', model: 'flux-dev', cost_credits: res.body.cost_credits })
    expect(receiver.received[0]!.headers['webhook-id']).toBe(`msg_${res.body.id}_completed`)
    // The image URL in the payload is signed, as GET returns it: it fetches the image without a key.
    const image = await request(event.data.output[0] as string)
    expect(image.statusCode).toBe(200)
    expect((await image.body.arrayBuffer()).byteLength).toBeGreaterThan(100)
    // A tampered body does not verify.
    expect(() => verify(secret!, { ...receiver.received[0]!, body: receiver.received[0]!.body.replace('succeeded', 'failed') })).toThrow()
  })

  it('sends start, output and completed when asked, and only completed by default', async () => {
    const { gw, key, receiver } = await setUp()
    const all = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a paper boat', webhook: receiver.url, webhook_events_filter: ['start', 'output', 'completed'] } })
    expect(all.status).toBe(200)
    await gw.app.webhooks.idle()
    expect(receiver.received.map((r) => String(r.headers['webhook-id'])).sort()).toEqual([`msg_${all.body.id}_completed`, `msg_${all.body.id}_output`, `msg_${all.body.id}_start`])
  })

  it('uses the key\'s default webhook when a create names none', async () => {
    const { gw, store, key, keyId, receiver } = await setUp()
    // Set before the key is first used, so no cached copy of it predates the change.
    expect(await store.setKeyWebhook(keyId, receiver.url)).toBe(true)
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a quiet harbour' } })
    expect(res.status).toBe(200)
    await gw.app.webhooks.idle()
    expect(receiver.received.map((r) => r.headers['webhook-id'])).toEqual([`msg_${res.body.id}_completed`])
  })

  it('after a rotation, a delivery carries both signatures: receivers on the old or the new secret verify it', async () => {
    const { gw, store, key, keyId, receiver } = await setUp()
    const [old] = await gw.app.webhooks.secrets(keyId)
    const { secret: fresh } = await rotateWebhookSecret(store, keyId, Date.now())
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a quiet harbour', webhook: receiver.url } })
    expect(res.status).toBe(200)
    await gw.app.webhooks.idle()
    const [r] = receiver.received
    expect(String(r!.headers['webhook-signature']).split(' ')).toHaveLength(2)
    expect(verify(old!, r!).data.id).toBe(res.body.id)
    expect(verify(fresh, r!).data.id).toBe(res.body.id)
  })

  it('retries a receiver that fails twice: after 5 s, then 25 s, with the same webhook-id, then records it delivered', async () => {
    const { gw, key, keyId, receiver, waits } = await setUp({ statuses: [500, 503] })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a red kite over hills', webhook: receiver.url } })
    expect(res.status).toBe(200)
    await gw.app.webhooks.idle()

    expect(waits).toEqual([5_000, 25_000])
    expect(waits).toEqual(RETRY_DELAYS_MS.slice(0, 2))
    expect(receiver.received).toHaveLength(3)
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([`msg_${res.body.id}_completed`]))
    const [secret] = await gw.app.webhooks.secrets(keyId)
    for (const r of receiver.received) expect(verify(secret!, r).data.id).toBe(res.body.id)

    const [delivery] = await gw.app.state.listWebhookDeliveries(res.body.id as string)
    expect(delivery).toMatchObject({ state: 'delivered', event: 'completed', url: receiver.url })
    expect(delivery!.attempts.map((a) => a.status)).toEqual([500, 503, 200])
    const text = await gw.app.metrics.registry.metrics()
    expect(metric(text, 'retrying')).toBe(2)
    expect(metric(text, 'delivered')).toBe(1)
    expect(metric(text, 'failed')).toBe(0)
  })

  it('GET /v1/predictions/{id}/webhook-deliveries shows the owner each attempt; another key gets 404', async () => {
    const { gw, key, otherKey, receiver } = await setUp({ statuses: [502] })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a red kite over hills', webhook: receiver.url } })
    await gw.app.webhooks.idle()
    const listed = await call(gw.url, 'GET', `/v1/predictions/${res.body.id}/webhook-deliveries`, { key })
    expect(listed.status).toBe(200)
    expect(listed.body.data).toHaveLength(1)
    expect(listed.body.data[0]).toMatchObject({ id: `msg_${res.body.id}_completed`, event: 'completed', url: receiver.url, status: 'delivered', next_attempt_at: null })
    expect(listed.body.data[0].attempts).toMatchObject([{ status: 502, error: 'answered 502' }, { status: 200, error: null }])
    expect(Date.parse(listed.body.data[0].attempts[1].at) - Date.parse(listed.body.data[0].attempts[0].at)).toBe(5_000)

    const other = await call(gw.url, 'GET', `/v1/predictions/${res.body.id}/webhook-deliveries`, { key: otherKey })
    expect(other.status).toBe(404)
    expect((await call(gw.url, 'GET', '/v1/predictions/nosuchprediction/webhook-deliveries', { key })).status).toBe(404)
    const plain = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'no hook here' } })
    expect((await call(gw.url, 'GET', `/v1/predictions/${plain.body.id}/webhook-deliveries`, { key })).body).toEqual({ data: [] })
  })

  it('counts outcomes in webhook_deliveries_total', async () => {
    const { gw, key, receiver } = await setUp({ statuses: [500] })
    await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a red kite over hills', webhook: receiver.url } })
    await gw.app.webhooks.idle()
    const text = await gw.app.metrics.registry.metrics()
    expect(metric(text, 'retrying')).toBe(1)
    expect(metric(text, 'delivered')).toBe(1)
    expect(metric(text, 'failed')).toBe(0)
  })

  it('leaves waits longer than a minute to the sweep, recorded as due later', async () => {
    const { gw, key, receiver, waits } = await setUp({ statuses: new Array(RETRY_DELAYS_MS.length + 1).fill(500) })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a grey heron', webhook: receiver.url } })
    await gw.app.webhooks.idle()
    // The long waits are left to the sweep (off here): the delivery stays pending with its next attempt due later.
    const [pending] = await gw.app.state.listWebhookDeliveries(res.body.id as string)
    expect(waits).toEqual([5_000, 25_000])
    expect(pending).toMatchObject({ state: 'pending', attempts: [{ status: 500 }, { status: 500 }, { status: 500 }] })
    expect(pending!.nextAt - pending!.attempts[2]!.at).toBe(RETRY_DELAYS_MS[2])
  })

  it('gives up after the last retry of the schedule and records it failed', async () => {
    const { gw, key, receiver, waits } = await setUp({ statuses: new Array(RETRY_DELAYS_MS.length + 1).fill(500), inlineWaitMs: Number.MAX_SAFE_INTEGER })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a grey heron', webhook: receiver.url } })
    await gw.app.webhooks.idle()
    expect(waits).toEqual(RETRY_DELAYS_MS)
    // About a day in all, as documented.
    expect(waits.reduce((a, b) => a + b, 0) / 3_600_000).toBeCloseTo(23.7, 1)
    expect(receiver.received).toHaveLength(RETRY_DELAYS_MS.length + 1)
    const [failed] = await gw.app.state.listWebhookDeliveries(res.body.id as string)
    expect(failed).toMatchObject({ state: 'failed' })
    expect(failed!.attempts).toHaveLength(RETRY_DELAYS_MS.length + 1)
    expect(metric(await gw.app.metrics.registry.metrics(), 'failed')).toBe(1)
  })

  it('refuses a private address without WEBHOOK_ALLOW_INSECURE: 400 url_not_allowed naming webhook, nothing created', async () => {
    const { gw, key, keyId, store, receiver } = await setUp({ insecure: false })
    for (const webhook of [receiver.url, receiver.url.replace('http:', 'https:'), 'https://10.1.2.3/hook', 'https://localhost/hook']) {
      const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a lighthouse at dusk', webhook } })
      expect(res.status, webhook).toBe(400)
      expect(res.body).toMatchObject({ code: 'url_not_allowed', field: 'webhook' })
    }
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(0)
    expect((await store.listPredictions(keyId, { limit: 10 })).entries).toHaveLength(0)
    const usage = await call(gw.url, 'GET', '/v1/usage', { key })
    expect(usage.body.balance).toMatchObject({ used_credits: 0, reserved_credits: 0 })
    expect(receiver.received).toHaveLength(0)
  })

  it('never opens cloud metadata addresses, even with WEBHOOK_ALLOW_INSECURE', async () => {
    const { gw, key } = await setUp()
    for (const webhook of ['http://169.254.169.254/latest/meta-data', 'http://100.100.100.200/', 'http://[fd00:ec2::254]/', 'http://metadata.google.internal/']) {
      const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a lighthouse at dusk', webhook } })
      expect(res.status, webhook).toBe(400)
      expect(res.body).toMatchObject({ code: 'url_not_allowed', field: 'webhook' })
    }
  })

  it('WEBHOOK_ALLOW_INSECURE is refused at start-up in production', () => {
    const env = { NODE_ENV: 'production', REPLICATE_API_TOKEN: 'r8_test', WEBHOOK_ALLOW_INSECURE: 'true' }
    expect(() => loadConfig(env)).toThrow(ConfigError)
    try { loadConfig(env) } catch (err) { expect((err as ConfigError).variables).toContain('WEBHOOK_ALLOW_INSECURE') }
    expect(loadConfig({ ...env, WEBHOOK_ALLOW_INSECURE: 'false' }).WEBHOOK_ALLOW_INSECURE).toBe(false)
  })
})
