import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { startFakeServiceBus } from '../fakes/service-bus/broker.ts'
import type { FakeServiceBus } from '../fakes/service-bus/broker.ts'
import { storeWithKeys } from '../tenancy/helpers.ts'
import { retryDelayMs } from '../../src/worker/queue-worker.ts'
import { QUEUE, backend, creates, eventsOf, startWorkerGateway } from './helpers.ts'
import type { Backend } from './helpers.ts'

let bus: FakeServiceBus
let gw: TestGateway
let store: StateStore
let sb: Backend
/** The backoffs the worker waited out before abandoning, in order (recorded, not slept). */
const backoffs: number[] = []
let ids: Record<'basic' | 'free' | 'broke' | 'revoked', string>
let keys: Record<'basic' | 'free' | 'broke' | 'revoked', string>

beforeAll(async () => {
  bus = await startFakeServiceBus()
  ;({ store, ids, keys } = await storeWithKeys({
    basic: { plan: 'basic', budgetCredits: 1000 },
    free: { plan: 'free' },
    broke: { plan: 'basic', budgetCredits: 1, budgetPeriod: 'total' },
    revoked: { plan: 'basic' }
  }))
  await store.revokeKey(ids.revoked, Date.now())
  // No retries inside the Replicate client: an upstream 503 reaches the worker at once.
  gw = await startWorkerGateway(bus, { overrides: { tenancy: { store }, worker: { sleep: async (ms) => { backoffs.push(ms) } } }, env: { REPLICATE_MAX_RETRIES: '0' } })
  sb = backend(bus)
})
afterAll(async () => {
  await sb.close()
  await gw.close()
  await store.close()
  await bus.close()
})

const settledOn = (messageId: string) => bus.waitFor(`${messageId} to be settled`, () => eventsOf(bus, messageId).some((t) => t === 'complete' || t === 'dead-letter'))

describe('the queue worker', () => {
  it('is ready only with its receiver link attached', async () => {
    await bus.waitFor('the receiver link', () => bus.receivers(QUEUE) === 1)
    const ready = await gw.call('GET', '/health/ready')
    expect(ready.status).toBe(200)
    expect(ready.body.checks.worker).toEqual({ status: 'ok' })
  })

  it('is not ready while the receiver link cannot attach', async () => {
    // A port nothing listens on: the SDK keeps trying in the background.
    const nowhere = await startFakeServiceBus()
    const connectionString = nowhere.connectionString
    await nowhere.close()
    const lonely = await startWorkerGateway(bus, { env: { SERVICE_BUS_CONNECTION_STRING: connectionString } })
    try {
      const ready = await lonely.call('GET', '/health/ready')
      expect(ready.status).toBe(503)
      expect(ready.body.checks.worker).toEqual({ status: 'fail', detail: `not receiving from ${QUEUE}: the receiver link is not attached` })
      expect(ready.body.checks.upstream).toEqual({ status: 'ok' })
      expect((await lonely.call('GET', '/health/live')).status).toBe(200)
    } finally {
      await lonely.close()
    }
  })

  it('generates, keeps the images, settles the credits, replies with signed URLs, then completes', async () => {
    const before = creates(gw).length
    await sb.send({
      messageId: 'happy-1',
      correlationId: 'order-77',
      body: { kind: 'text-to-image', request: { prompt: 'a lighthouse on a cliff at dusk', model: 'flux-schnell', num_outputs: 2 }, api_key_id: ids.basic, reply_to: { queue: 'replies' } }
    })
    const [reply] = await sb.receive('replies', 1)
    await settledOn('happy-1')
    expect(eventsOf(bus, 'happy-1')).toEqual(['delivered', 'complete'])
    expect(creates(gw).length - before).toBe(1)

    expect(reply!.correlationId).toBe('order-77')
    expect(reply!.contentType).toBe('application/json')
    const prediction = reply!.body as { id: string, status: string, output: string[], cost_credits: number, completed_at: string | null }
    expect(reply!.applicationProperties).toEqual({ prediction_id: prediction.id, status: 'succeeded' })
    expect(prediction.status).toBe('succeeded')
    expect(prediction.completed_at).not.toBeNull()
    expect(prediction.cost_credits).toBe(2)
    expect(prediction.output).toHaveLength(2)
    // Kept images on our own address, signed so the URL alone fetches them.
    for (const url of prediction.output) {
      expect(url).toMatch(new RegExp(`^${gw.url}/v1/predictions/${prediction.id}/images/\\d\\?exp=\\d+&sig=`))
      const image = await request(url)
      expect(image.statusCode).toBe(200)
      expect(image.headers['content-type']).toMatch(/^image\//)
      await image.body.dump()
    }
    const entry = await store.getPrediction(prediction.id)
    expect(entry).toMatchObject({ owner: ids.basic, finalized: true })
    expect(entry!.kept).toHaveLength(2)
    expect(await store.getLedgerEntry(entry!.ledgerId)).toMatchObject({ keyId: ids.basic, state: 'settled', credits: 2 })
  })

  it('delivers the prediction to reply_to.webhook, with the correlation id', async () => {
    const received: Array<{ headers: Record<string, unknown>, body: Record<string, unknown> }> = []
    const hook = createServer((req, res) => {
      let text = ''
      req.on('data', (c) => { text += String(c) })
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(text) as Record<string, unknown> })
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/done`
    try {
      await sb.send({ messageId: 'hook-1', body: { kind: 'text-to-image', request: { prompt: 'a paper boat on a pond' }, api_key_id: ids.basic, reply_to: { webhook: url } } })
      await settledOn('hook-1')
      expect(received).toHaveLength(1)
      expect(received[0]!.headers['content-type']).toBe('application/json')
      // No correlationId on the request: the messageId stands in.
      expect(received[0]!.headers['x-correlation-id']).toBe('hook-1')
      expect(received[0]!.body).toMatchObject({ status: 'succeeded', model: 'flux-dev' })
      expect(eventsOf(bus, 'hook-1')).toEqual(['delivered', 'complete'])
    } finally {
      await new Promise((resolve) => hook.close(resolve))
    }
  })

  it('dead-letters what can never succeed, with the reason and a description, and creates and charges nothing', async () => {
    const before = creates(gw).length
    const t2i = (request: Record<string, unknown>, key = ids.basic) => ({ kind: 'text-to-image', request, api_key_id: key })
    const cases: Array<{ id: string, body: unknown, reason: string, description: RegExp }> = [
      { id: 'dl-json', body: Buffer.from('{"kind": "text-to-image", '), reason: 'invalid_message', description: /not JSON/ },
      { id: 'dl-envelope', body: { kind: 'upscale', request: { prompt: 'a red fox' } }, reason: 'invalid_message', description: /api_key_id is required.*kind must be one of text-to-image, image-to-image|kind must be one of text-to-image, image-to-image.*api_key_id is required/ },
      { id: 'dl-fields', body: { ...t2i({ prompt: 'a red fox', width: 1000, steps: 4 }), reply_to: { queue: 'refusals' } }, reason: 'validation_error', description: /request\.steps is not a known field; did you mean num_inference_steps\?.*request\.width must be one of/ },
      { id: 'dl-policy', body: t2i({ prompt: 'a n.u.d.e statue' }), reason: 'content_policy_violation', description: /refused by the content policy/ },
      { id: 'dl-credits', body: t2i({ prompt: 'a red fox', model: 'flux-dev' }, ids.broke), reason: 'insufficient_credits', description: /needs 2 credits; 1 remain/ },
      { id: 'dl-unknown', body: t2i({ prompt: 'a red fox' }, 'ffffffffffffffff'), reason: 'unknown_api_key', description: /No active API key has the id ffffffffffffffff/ },
      { id: 'dl-revoked', body: t2i({ prompt: 'a red fox' }, ids.revoked), reason: 'unknown_api_key', description: /No active API key/ },
      { id: 'dl-plan', body: t2i({ prompt: 'a red fox', model: 'flux-dev' }, ids.free), reason: 'model_not_in_plan', description: /flux-dev/ },
      { id: 'dl-hook', body: { ...t2i({ prompt: 'a red fox' }), reply_to: { webhook: 'https://169.254.169.254/latest/meta-data' } }, reason: 'url_not_allowed', description: /^reply_to\.webhook: The URL points to a forbidden address\.$/ },
      { id: 'dl-i2i', body: { kind: 'image-to-image', request: { prompt: 'the same barn in winter', image_url: 'https://169.254.169.254/latest/meta-data', model: 'flux-dev' }, api_key_id: ids.basic }, reason: 'url_not_allowed', description: /forbidden address/ }
    ]
    for (const c of cases) await sb.send({ messageId: c.id, body: c.body })
    for (const c of cases) await settledOn(c.id)
    const dead = bus.queue(QUEUE).deadLetters
    for (const c of cases) {
      const letter = dead.find((d) => d.messageId === c.id)
      expect(letter, c.id).toBeDefined()
      expect(letter!.reason, c.id).toBe(c.reason)
      expect(letter!.description, c.id).toMatch(c.description)
      expect(eventsOf(bus, c.id), c.id).toEqual(['delivered', 'dead-letter'])
    }
    expect(creates(gw).length - before).toBe(0)
    // Counted by reason, for dashboards and alerts.
    const metrics = await request(`${gw.url}/metrics`)
    const text = await metrics.body.text()
    for (const [reason, n] of [['unknown_api_key', 2], ['validation_error', 1], ['invalid_message', 2], ['url_not_allowed', 2]] as const) {
      expect(text, reason).toContain(`queue_messages_total{outcome="dead_lettered",reason="${reason}"} ${n}`)
    }
    expect(text).toContain('queue_messages_in_flight 0')
    // Nothing reserved and left behind by a refusal.
    for (const key of [ids.basic, ids.broke, ids.free]) expect((await store.balance(key, null, Date.now())).reserved_credits).toBe(0)
    // The refusal also goes to reply_to: the problem document, fields named.
    const [refusal] = await sb.receive('refusals', 1)
    expect(refusal!.contentType).toBe('application/problem+json')
    expect(refusal!.correlationId).toBe('dl-fields')
    expect(refusal!.body).toMatchObject({ code: 'validation_error', errors: expect.arrayContaining([{ field: 'request.width', message: expect.stringContaining('must be one of') }]) })
  })

  it('dead-letters a reused idempotency key with another request, and shares the key with HTTP', async () => {
    const before = creates(gw).length
    await sb.send({ messageId: 'idem-a', body: { kind: 'text-to-image', request: { prompt: 'a quiet harbour', model: 'flux-schnell' }, api_key_id: ids.basic, idempotency_key: 'shared-key-1' } })
    await settledOn('idem-a')
    // The same key and body over HTTP replays what the message made.
    const http = await gw.call('POST', '/v1/text-to-image', { prompt: 'a quiet harbour', model: 'flux-schnell' }, { authorization: `Bearer ${keys.basic}`, 'idempotency-key': 'shared-key-1' })
    expect(http.status).toBe(200)
    expect(http.headers['idempotent-replayed']).toBe('true')
    expect((await store.getPrediction(http.body.id))?.owner).toBe(ids.basic)
    await sb.send({ messageId: 'idem-b', body: { kind: 'text-to-image', request: { prompt: 'a busy harbour', model: 'flux-schnell' }, api_key_id: ids.basic, idempotency_key: 'shared-key-1' } })
    await settledOn('idem-b')
    expect(bus.queue(QUEUE).deadLetters.find((d) => d.messageId === 'idem-b')?.reason).toBe('idempotency_key_reused')
    expect(creates(gw).length - before).toBe(1)
    // A refusal HTTP kept for a key comes back the same on the queue.
    const refused = await gw.call('POST', '/v1/text-to-image', { prompt: 'a n.u.d.e statue' }, { authorization: `Bearer ${keys.basic}`, 'idempotency-key': 'shared-key-2' })
    expect(refused.status).toBe(422)
    await sb.send({ messageId: 'idem-c', body: { kind: 'text-to-image', request: { prompt: 'a n.u.d.e statue' }, api_key_id: ids.basic, idempotency_key: 'shared-key-2' } })
    await settledOn('idem-c')
    expect(bus.queue(QUEUE).deadLetters.find((d) => d.messageId === 'idem-c')).toMatchObject({ reason: 'content_policy_violation', description: refused.body.detail })
    expect(creates(gw).length - before).toBe(1)
  })

  it('makes one prediction and one charge for a message delivered twice', async () => {
    const before = creates(gw).length
    const used = async () => (await store.balance(ids.basic, { credits: 1000, period: 'month' }, Date.now())).used_credits
    const usedBefore = await used()
    const body = { kind: 'text-to-image', request: { prompt: 'twin lighthouses', model: 'flux-schnell' }, api_key_id: ids.basic, reply_to: { queue: 'twins' } }
    // The same message twice, as a sender retrying after a lost acknowledgement puts it: handled side by side.
    await Promise.all([sb.send({ messageId: 'dup-1', body }), sb.send({ messageId: 'dup-1', body })])
    const replies = await sb.receive('twins', 2)
    await bus.waitFor('both copies completed', () => eventsOf(bus, 'dup-1').filter((t) => t === 'complete').length === 2)
    expect(creates(gw).length - before).toBe(1)
    const [a, b] = replies.map((r) => r.body as { id: string, status: string })
    expect(a!.id).toBe(b!.id)
    expect(a!.status).toBe('succeeded')
    expect(await used() - usedBefore).toBe(1)
  })

  it('abandons when the reply cannot be sent; the redelivery replies without creating again', async () => {
    let calls = 0
    const hook = createServer((req, res) => {
      req.resume()
      req.on('end', () => { res.writeHead(++calls === 1 ? 503 : 200).end() })
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const before = creates(gw).length
    backoffs.length = 0
    try {
      await sb.send({ messageId: 'redeliver-1', body: { kind: 'text-to-image', request: { prompt: 'a stubborn lighthouse', model: 'flux-schnell' }, api_key_id: ids.basic, reply_to: { webhook: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/` } } })
      await settledOn('redeliver-1')
      expect(eventsOf(bus, 'redeliver-1')).toEqual(['delivered', 'abandon', 'delivered', 'complete'])
      expect(calls).toBe(2)
      expect(creates(gw).length - before).toBe(1)
      expect(backoffs).toHaveLength(1)
    } finally {
      await new Promise((resolve) => hook.close(resolve))
    }
  })

  it('abandons after an upstream 503 and succeeds on the redelivery', async () => {
    const before = creates(gw).length
    backoffs.length = 0
    gw.emulator.inject({ kind: 'status', status: 503, count: 1, method: 'POST', path: /\/predictions$/ })
    await sb.send({ messageId: 'retry-503', body: { kind: 'text-to-image', request: { prompt: 'a lighthouse after the storm', model: 'flux-schnell' }, api_key_id: ids.basic } })
    await settledOn('retry-503')
    expect(eventsOf(bus, 'retry-503')).toEqual(['delivered', 'abandon', 'delivered', 'complete'])
    const delivered = bus.events.filter((e) => e.type === 'delivered' && e.messageId === 'retry-503').map((e) => (e as { deliveryCount: number }).deliveryCount)
    expect(delivered).toEqual([0, 1])
    // Two creates reached Replicate; the first was refused, so only the second is charged.
    expect(creates(gw).length - before).toBe(2)
    // Held 1–2 s (lock renewed) before the abandon, rather than handed straight back.
    expect(backoffs).toHaveLength(1)
    expect(backoffs[0]).toBeGreaterThanOrEqual(1_000)
    expect(backoffs[0]).toBeLessThanOrEqual(2_000)
  })

  it('dead-letters a transient failure once WORKER_MAX_DELIVERIES deliveries are used up', async () => {
    backoffs.length = 0
    gw.emulator.inject({ kind: 'status', status: 503, count: 5, method: 'POST', path: /\/predictions$/ })
    await sb.send({ messageId: 'retry-forever', body: { kind: 'text-to-image', request: { prompt: 'a lighthouse in a long storm', model: 'flux-schnell' }, api_key_id: ids.basic } })
    await settledOn('retry-forever')
    expect(eventsOf(bus, 'retry-forever')).toEqual(['delivered', 'abandon', 'delivered', 'abandon', 'delivered', 'abandon', 'delivered', 'abandon', 'delivered', 'dead-letter'])
    const letter = bus.queue(QUEUE).deadLetters.find((d) => d.messageId === 'retry-forever')
    expect(letter?.reason).toBe('upstream_error')
    expect(letter?.description).toMatch(/Replicate answered 503\. Gave up after 5 deliveries\./)
    expect((await store.balance(ids.basic, null, Date.now())).reserved_credits).toBe(0)
    // Exponential backoff (with jitter) between the deliveries, none after the last.
    expect(backoffs).toHaveLength(4)
    backoffs.forEach((ms, i) => {
      expect(ms).toBeGreaterThanOrEqual(1_000 * 2 ** i)
      expect(ms).toBeLessThanOrEqual(2_000 * 2 ** i)
    })
  })
})

describe('retry backoff', () => {
  it('follows Retry-After when the upstream gave one, capped at a minute', () => {
    expect(retryDelayMs(1, 7)).toBe(7_000)
    expect(retryDelayMs(3, 600)).toBe(60_000)
  })

  it('otherwise doubles per delivery, with full jitter over its upper half, capped at a minute', () => {
    expect([1, 2, 3, 4].map((d) => retryDelayMs(d, undefined, () => 0))).toEqual([1_000, 2_000, 4_000, 8_000])
    expect([1, 2, 3, 4].map((d) => retryDelayMs(d, undefined, () => 1))).toEqual([2_000, 4_000, 8_000, 16_000])
    expect(retryDelayMs(10, undefined, () => 1)).toBe(60_000)
  })
})
