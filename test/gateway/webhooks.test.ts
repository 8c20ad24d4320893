import { randomUUID } from 'node:crypto'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.ts'
import type { EmulatorOptions } from '../../src/emulator/index.ts'
import { signWebhook } from '../../src/replicate/webhooks.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, sleep, storeWithKeys } from '../tenancy/helpers.ts'
import type { Answer } from '../tenancy/helpers.ts'

/** Replicate webhooks end predictions without the tracker polling (REFERENCE §5). */

const SCHNELL_CREATE = '/v1/models/black-forest-labs/flux-schnell/predictions'
// Tracking on and eager, so without webhooks the tracker polls within milliseconds.
const FAST_TRACKING = { poll: { initialMs: 20, maxIntervalMs: 80 } }

interface Setup { gw: TestGateway, store: StateStore, key: string }
const running: Setup[] = []
afterEach(async () => {
  for (const { gw, store } of running.splice(0)) {
    await gw.close()
    await store.close()
  }
})

async function setUp (o: { webhooks?: boolean, tracking?: boolean, env?: Record<string, string>, emulator?: EmulatorOptions } = {}): Promise<Setup> {
  const made = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 50 } })
  const gw = await startGateway({
    selfBaseUrl: true,
    env: { ...(o.webhooks === false ? {} : { REPLICATE_WEBHOOKS: 'on' }), ...o.env },
    // schnell made to outlast Replicate's sync window (60 s, scaled to 1.2 s; the model takes 2 s): the create
    // answers while it still runs, and the end comes by webhook (or by polling when webhooks are off).
    emulator: { predictSeconds: { 'black-forest-labs/flux-schnell': 100 }, ...o.emulator },
    overrides: { tenancy: { store: made.store, tracker: o.tracking ? FAST_TRACKING : {} } }
  })
  const setup = { gw, store: made.store, key: made.keys.k }
  running.push(setup)
  return setup
}

async function createAsync ({ gw, key }: Setup, prompt = 'a lighthouse at dusk'): Promise<string> {
  const created = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt, model: 'flux-schnell' }, headers: { prefer: 'respond-async' } })
  expect(created.status).toBe(202)
  return created.body.id as string
}

async function until<T> (probe: () => T | undefined | Promise<T | undefined>, what: string, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

const finalized = (store: StateStore, id: string) => until(async () => {
  const entry = await store.getPrediction(id)
  return entry?.finalized ? entry : undefined
}, `${id} to be finalized`)

const upstreamGets = async (gw: TestGateway, id: string) => {
  const upstream = await gw.upstreamId(id)
  return gw.emulator.requests.filter((r) => r.method === 'GET' && r.path === `/v1/predictions/${upstream}`).length
}

const logsFor = (gw: TestGateway, msg: string, id?: string) => gw.logs.filter((l) => l.msg === msg && (id === undefined || l.predictionId === id))

/** One delivery straight to the gateway, signed with `secret` unless a signature is given. */
async function deliver (gw: TestGateway, secret: string, body: unknown, o: { id?: string, timestamp?: number, signature?: string, prediction?: string } = {}): Promise<Answer> {
  const raw = JSON.stringify(body)
  const id = o.id ?? `msg_${randomUUID()}`
  const timestamp = o.timestamp ?? Math.floor(Date.now() / 1000)
  // Creates hand Replicate the webhook URL with our prediction's id in it.
  const res = await request(`${gw.url}/v1/webhooks/replicate${o.prediction ? `?prediction=${o.prediction}` : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': o.signature ?? signWebhook(secret, id, timestamp, raw) },
    body: raw
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined }
}

describe('Replicate webhooks', () => {
  it('a create asks Replicate to post the completed event to <PUBLIC_BASE_URL>/v1/webhooks/replicate', async () => {
    const setup = await setUp()
    const id = await createAsync(setup)
    const create = setup.gw.emulator.requests.find((r) => r.method === 'POST' && r.path === SCHNELL_CREATE)
    expect(create?.body).toMatchObject({ webhook: `${setup.gw.url}/v1/webhooks/replicate?prediction=${id}`, webhook_events_filter: ['completed'] })
  })

  it('with webhooks off, creates carry no webhook', async () => {
    const setup = await setUp({ webhooks: false })
    await createAsync(setup)
    const create = setup.gw.emulator.requests.find((r) => r.method === 'POST' && r.path === SCHNELL_CREATE)
    expect(create?.body).not.toHaveProperty('webhook')
    expect(create?.body).not.toHaveProperty('webhook_events_filter')
  })

  it('the signed completed webhook finalizes the prediction (image kept, ledger settled) without the tracker polling', async () => {
    const setup = await setUp({ tracking: true })
    const { gw, store, key } = setup
    const id = await createAsync(setup)
    const entry = await finalized(store, id)
    await gw.app.tracker.idle()
    expect(entry.kept).toEqual([{ key: `${id}/0.webp`, contentType: 'image/webp', size: expect.any(Number) }])
    expect(await store.getLedgerEntry(entry.ledgerId)).toMatchObject({ state: 'settled', credits: 1, images: 1 })
    expect(await upstreamGets(gw, id)).toBe(0)
    // The secret was read from Replicate once.
    expect(gw.emulator.requests.filter((r) => r.path === '/v1/webhooks/default/secret')).toHaveLength(1)
    expect(logsFor(gw, 'webhook received', id)).toMatchObject([{ outcome: 'finalizing', status: 'succeeded' }])

    const image = await request(`${gw.url}/v1/predictions/${id}/images/0`, { headers: { authorization: `Bearer ${key}` } })
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    expect((await image.body.arrayBuffer()).byteLength).toBeGreaterThan(0)
    const got = await call(gw.url, 'GET', `/v1/predictions/${id}`, { key })
    expect(got.body).toMatchObject({ status: 'succeeded', output: [signedImageUrl(gw.url, id, 0)] })
  })

  it('without webhooks the same tracking polls upstream', async () => {
    const setup = await setUp({ webhooks: false, tracking: true })
    const id = await createAsync(setup)
    await finalized(setup.store, id)
    expect(await upstreamGets(setup.gw, id)).toBeGreaterThan(0)
  })

  it('a configured REPLICATE_WEBHOOK_SECRET is used without asking Replicate', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const setup = await setUp({ env: { REPLICATE_WEBHOOK_SECRET: secret }, emulator: { webhookSecret: secret } })
    const id = await createAsync(setup)
    await finalized(setup.store, id)
    expect(setup.gw.emulator.requests.filter((r) => r.path === '/v1/webhooks/default/secret')).toHaveLength(0)
    expect(setup.gw.logText()).not.toContain(secret)
  })

  it('a bad signature is 401 and changes nothing; the right one then finalizes once', async () => {
    const setup = await setUp({ emulator: { webhookQuirks: { badSignature: true } } })
    const { gw, store } = setup
    const prompt = 'a secret garden behind a wall'
    const id = await createAsync(setup, prompt)
    await until(() => logsFor(gw, 'webhook refused').find((l) => l.reason === 'bad_signature'), 'a refused delivery')
    const refused = logsFor(gw, 'webhook refused')[0]!
    expect(refused.level).toBe(40)
    // Neither the refusal nor anything else logs the body (it carries the prompt).
    expect(gw.logText()).not.toContain(prompt)
    const entry = await store.getPrediction(id)
    expect(entry?.finalized).toBe(false)
    expect(await store.getLedgerEntry(entry!.ledgerId)).toMatchObject({ state: 'reserved' })

    const upstream = gw.emulator.getPrediction(await gw.upstreamId(id))!
    expect(upstream.status).toBe('succeeded')
    const forged = await deliver(gw, 'whsec_d3JvbmcgZW11bGF0b3Iga2V5IGZvciB0ZXN0cw==', upstream, { prediction: id })
    expect(forged.status).toBe(401)
    expect(forged.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(forged.body).toMatchObject({ status: 401, code: 'invalid_signature' })
    expect((await store.getPrediction(id))?.finalized).toBe(false)

    // The genuine message, delivered twice with one webhook-id: handled once.
    const messageId = `msg_${randomUUID()}`
    expect((await deliver(gw, gw.emulator.webhookSecret, upstream, { id: messageId, prediction: id })).status).toBe(202)
    expect((await deliver(gw, gw.emulator.webhookSecret, upstream, { id: messageId, prediction: id })).status).toBe(204)
    const final = await finalized(store, id)
    await gw.app.tracker.idle()
    expect(await store.getLedgerEntry(final.ledgerId)).toMatchObject({ state: 'settled', credits: 1, images: 1 })
    expect(logsFor(gw, 'prediction finalized', id)).toHaveLength(1)
    // Another message about a prediction already final changes nothing.
    expect((await deliver(gw, gw.emulator.webhookSecret, upstream, { prediction: id })).status).toBe(204)
    // Nor does a genuine message about another prediction, aimed at this one.
    const other = await createAsync(setup, 'another garden')
    expect((await deliver(gw, gw.emulator.webhookSecret, upstream, { prediction: other })).status).toBe(204)
    expect((await store.getPrediction(other))?.kept).toEqual([])
  })

  it('a stale timestamp is 401, even correctly signed', async () => {
    const setup = await setUp({ emulator: { webhookQuirks: { staleTimestamp: true } } })
    const { gw, store } = setup
    const id = await createAsync(setup)
    await until(() => logsFor(gw, 'webhook refused').find((l) => l.reason === 'stale_timestamp'), 'a refused delivery')
    expect((await store.getPrediction(id))?.finalized).toBe(false)
    const upstream = gw.emulator.getPrediction(await gw.upstreamId(id))!
    const stale = await deliver(gw, gw.emulator.webhookSecret, upstream, { timestamp: Math.floor(Date.now() / 1000) - 600, prediction: id })
    expect(stale.status).toBe(401)
    expect(stale.body).toMatchObject({ code: 'invalid_signature' })
    expect((await store.getPrediction(id))?.finalized).toBe(false)
  })

  it('missing signature headers are 401', async () => {
    const { gw } = await setUp()
    const res = await call(gw.url, 'POST', '/v1/webhooks/replicate', { body: { id: 'abc', status: 'succeeded' } })
    expect(res.status).toBe(401)
    expect(res.body).toMatchObject({ code: 'invalid_signature' })
  })

  it('a duplicate delivery from Replicate is processed once', async () => {
    const setup = await setUp({ tracking: true, emulator: { webhookQuirks: { duplicate: true } } })
    const { gw, store } = setup
    const id = await createAsync(setup)
    const entry = await finalized(store, id)
    await until(() => logsFor(gw, 'webhook received', id).length >= 2 ? true : undefined, 'the second delivery')
    await gw.app.tracker.idle()
    expect(logsFor(gw, 'webhook received', id).map((l) => l.outcome)).toEqual(['finalizing', 'duplicate'])
    expect(logsFor(gw, 'prediction finalized', id)).toHaveLength(1)
    expect(await store.getLedgerEntry(entry.ledgerId)).toMatchObject({ state: 'settled', credits: 1 })
    expect(await upstreamGets(gw, id)).toBe(0)
  })

  it('a verified webhook about an unknown prediction, or one still running, is 204', async () => {
    const { gw } = await setUp()
    const unknown = await deliver(gw, gw.emulator.webhookSecret, { id: 'unknownprediction0', status: 'succeeded', output: ['https://replicate.delivery/x.webp'] })
    expect(unknown.status).toBe(204)
    const running = await deliver(gw, gw.emulator.webhookSecret, { id: 'unknownprediction1', status: 'processing' })
    expect(running.status).toBe(204)
  })

  it('a signed body that is not a prediction is 400', async () => {
    const { gw } = await setUp()
    const res = await deliver(gw, gw.emulator.webhookSecret, { hello: 'world' })
    expect(res.status).toBe(400)
  })

  it('with webhooks off the route is 404', async () => {
    const { gw } = await setUp({ webhooks: false })
    const res = await deliver(gw, gw.emulator.webhookSecret, { id: 'abc', status: 'succeeded' })
    expect(res.status).toBe(404)
  })
})

describe('webhook configuration', () => {
  it('REPLICATE_WEBHOOKS=on without PUBLIC_BASE_URL stops start-up, naming both', () => {
    let error: unknown
    try {
      loadConfig({ NODE_ENV: 'test', REPLICATE_WEBHOOKS: 'on' })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).variables).toEqual(['PUBLIC_BASE_URL'])
    expect((error as Error).message).toMatch(/PUBLIC_BASE_URL.*REPLICATE_WEBHOOKS/)
  })

  it('defaults to off; on with a public URL and a secret is accepted; a malformed secret is named', () => {
    expect(loadConfig({ NODE_ENV: 'test' })).toMatchObject({ REPLICATE_WEBHOOKS: 'off' })
    expect(loadConfig({ NODE_ENV: 'test', REPLICATE_WEBHOOKS: 'on', PUBLIC_BASE_URL: 'https://gw.example', REPLICATE_WEBHOOK_SECRET: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD' })).toMatchObject({ REPLICATE_WEBHOOKS: 'on' })
    expect(() => loadConfig({ NODE_ENV: 'test', REPLICATE_WEBHOOKS: 'yes' })).toThrow(/REPLICATE_WEBHOOKS/)
    expect(() => loadConfig({ NODE_ENV: 'test', REPLICATE_WEBHOOK_SECRET: 'not-a-secret' })).toThrow(/REPLICATE_WEBHOOK_SECRET/)
  })
})
