import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'
import { verifyWebhook } from '../../src/replicate/webhooks.ts'
import { api, createSchnell, eventually, pollUntilTerminal, startFastEmulator, startWebhookReceiver } from './helpers.ts'
import type { ReceivedWebhook, WebhookReceiver } from './helpers.ts'

/** Webhook delivery: events filter, throttling, signatures, terminal retries (REFERENCE §5, §11.11). */

const emulators: Emulator[] = []
const receivers: WebhookReceiver[] = []
async function setup (opts: EmulatorOptions = {}): Promise<{ emu: Emulator, receiver: WebhookReceiver }> {
  const emu = await startFastEmulator(opts)
  const receiver = await startWebhookReceiver()
  emulators.push(emu)
  receivers.push(receiver)
  return { emu, receiver }
}
afterEach(async () => {
  await Promise.all(emulators.splice(0).map((e) => e.close()))
  await Promise.all(receivers.splice(0).map((r) => r.close()))
})

function verify (emu: Emulator, hook: ReceivedWebhook): ReturnType<typeof verifyWebhook> {
  return verifyWebhook({
    secret: emu.webhookSecret,
    headers: {
      'webhook-id': hook.headers['webhook-id'] as string,
      'webhook-timestamp': hook.headers['webhook-timestamp'] as string,
      'webhook-signature': hook.headers['webhook-signature'] as string
    },
    rawBody: hook.rawBody
  })
}

const settle = (ms = 80): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

describe('webhooks', () => {
  it('start and completed: signed POSTs of the GET-identical prediction', async () => {
    const { emu, receiver } = await setup()
    const created = await createSchnell(emu, { prompt: 'hook' }, { body: { webhook: `${receiver.url}?customId=123`, webhook_events_filter: ['start', 'completed'] } })
    expect(created.body).toMatchObject({ webhook: `${receiver.url}?customId=123`, webhook_events_filter: ['start', 'completed'] })
    await eventually(() => receiver.received.find((h) => h.body.status === 'succeeded'))
    await settle()
    expect(receiver.received.map((h) => h.body.status)).toEqual(['processing', 'succeeded'])
    expect(receiver.received[0]!.path).toBe('/hook?customId=123')
    for (const hook of receiver.received) {
      expect(hook.headers['content-type']).toBe('application/json')
      expect(hook.headers['webhook-id']).toMatch(/^msg_/)
      expect(Math.abs(Number(hook.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60)
      expect(verify(emu, hook)).toEqual({ ok: true })
    }
    expect(receiver.received[0]!.headers['webhook-id']).not.toBe(receiver.received[1]!.headers['webhook-id'])
    const got = await api(emu, 'GET', `/predictions/${created.body.id}`)
    expect(receiver.received[1]!.body).toEqual(got.body)
  })

  it('without a filter every event is sent and completed comes last', async () => {
    const { emu, receiver } = await setup()
    await createSchnell(emu, { prompt: 'all events' }, { body: { webhook: receiver.url } })
    await eventually(() => receiver.received.find((h) => h.body.status === 'succeeded'))
    await settle()
    // start, then throttled logs/output updates, then completed: how many updates depends on
    // timing, but they arrive in order and never regress.
    const statuses = receiver.received.map((h) => h.body.status)
    expect(statuses.length).toBeGreaterThanOrEqual(3)
    expect(statuses[0]).toBe('processing')
    expect(statuses.at(-1)).toBe('succeeded')
    expect(statuses.indexOf('succeeded')).toBeGreaterThanOrEqual(statuses.lastIndexOf('processing'))
    expect(receiver.received[0]!.body.logs).toMatch(/Using seed/)
  })

  it('logs and output events are throttled: several changes inside one window make one delivery', async () => {
    // In real time the whole 0.2 s prediction fits inside one 500 ms window, with room to spare
    // for a busy machine.
    const { emu, receiver } = await setup({ timeScale: 1, startingMs: [0, 0], predictSeconds: { 'black-forest-labs/flux-schnell': 0.2 } })
    const created = await createSchnell(emu, { prompt: 'chatty' }, { body: { webhook: receiver.url, webhook_events_filter: ['logs'] } })
    await pollUntilTerminal(emu, created.body.id)
    await eventually(() => receiver.received[1])
    await settle(100)
    // Log changes: the seed line at start, progress at half-time, the final lines with the output.
    expect(receiver.received).toHaveLength(2)
    expect(receiver.received[0]!.body.logs).toMatch(/Using seed: \d+/)
    expect(receiver.received[0]!.body.logs).not.toContain('Total safe images')
    expect(receiver.received[1]!.body.logs).toContain('Total safe images: 1 out of 1')
  })

  it('retries only the terminal webhook, with the same webhook-id, until it gets a 2xx', async () => {
    const { emu, receiver } = await setup()
    receiver.respondWith([500, 503, 500, 200])
    await createSchnell(emu, { prompt: 'retry' }, { body: { webhook: receiver.url, webhook_events_filter: ['start', 'completed'] } })
    await eventually(() => receiver.received.find((h) => h.status === 200))
    await settle()
    const statuses = receiver.received.map((h) => h.body.status)
    expect(statuses).toEqual(['processing', 'succeeded', 'succeeded', 'succeeded'])
    const terminalIds = new Set(receiver.received.slice(1).map((h) => h.headers['webhook-id']))
    expect(terminalIds.size).toBe(1)
    expect(receiver.received.slice(1).every((h) => h.rawBody === receiver.received[1]!.rawBody)).toBe(true)
    expect(receiver.received.every((h) => verify(emu, h).ok)).toBe(true)
  })

  it('retries the terminal webhook after a connection error', async () => {
    const { emu, receiver } = await setup()
    receiver.respondWith([0])
    await createSchnell(emu, { prompt: 'flaky network' }, { body: { webhook: receiver.url, webhook_events_filter: ['completed'] } })
    await eventually(() => receiver.received[1])
    await settle()
    expect(receiver.received.map((h) => h.status)).toEqual([0, 200])
    expect(receiver.received[1]!.headers['webhook-id']).toBe(receiver.received[0]!.headers['webhook-id'])
  })

  it('gives up after the last retry, about a minute (scaled) after completion', async () => {
    const { emu, receiver } = await setup()
    receiver.respondWith(Array(20).fill(500))
    await createSchnell(emu, { prompt: 'down' }, { body: { webhook: receiver.url, webhook_events_filter: ['completed'] } })
    await eventually(() => receiver.received[6])
    await settle(300)
    expect(receiver.received).toHaveLength(7)
    const span = receiver.received[6]!.receivedAt - receiver.received[0]!.receivedAt
    // 60 s of emulated backoff at 1/100 speed.
    expect(span).toBeGreaterThanOrEqual(590)
  })

  it('does not follow redirects: a 3xx counts as a failure', async () => {
    const { emu, receiver } = await setup()
    receiver.respondWith([307, 200])
    await createSchnell(emu, { prompt: 'moved' }, { body: { webhook: receiver.url, webhook_events_filter: ['completed'] } })
    await eventually(() => receiver.received[1])
    await settle()
    expect(receiver.received.map((h) => h.path)).toEqual(['/hook', '/hook'])
  })

  it('quirk switches: duplicates, bad signatures, stale timestamps', async () => {
    const dup = await setup({ webhookQuirks: { duplicate: true } })
    await createSchnell(dup.emu, { prompt: 'twice' }, { body: { webhook: dup.receiver.url, webhook_events_filter: ['completed'] } })
    await eventually(() => dup.receiver.received[1])
    await settle()
    expect(dup.receiver.received).toHaveLength(2)
    expect(dup.receiver.received[0]!.headers['webhook-id']).toBe(dup.receiver.received[1]!.headers['webhook-id'])

    const bad = await setup({ webhookQuirks: { badSignature: true } })
    await createSchnell(bad.emu, { prompt: 'forged' }, { body: { webhook: bad.receiver.url, webhook_events_filter: ['completed'] } })
    const forged = await eventually(() => bad.receiver.received[0])
    expect(verify(bad.emu, forged)).toEqual({ ok: false, reason: 'bad_signature' })

    const stale = await setup({ webhookQuirks: { staleTimestamp: true } })
    await createSchnell(stale.emu, { prompt: 'old' }, { body: { webhook: stale.receiver.url, webhook_events_filter: ['completed'] } })
    const old = await eventually(() => stale.receiver.received[0])
    expect(verify(stale.emu, old)).toEqual({ ok: false, reason: 'stale_timestamp' })
  })

  it('a canceled prediction sends its completed webhook', async () => {
    const { emu, receiver } = await setup({ startingMs: [100_000, 100_000] })
    const created = await createSchnell(emu, { prompt: 'stop' }, { body: { webhook: receiver.url, webhook_events_filter: ['completed'] } })
    await api(emu, 'POST', `/predictions/${created.body.id}/cancel`)
    const hook = await eventually(() => receiver.received[0])
    expect(hook.body).toMatchObject({ id: created.body.id, status: 'canceled' })
  })

  it('delivers through its own connection pool, untouched by a stubbed global fetch', async () => {
    const { emu, receiver } = await setup()
    await createSchnell(emu, { prompt: 'independent' }, { body: { webhook: receiver.url, webhook_events_filter: ['completed'] } })
    const stub = vi.fn(async () => { throw new Error('global fetch must not be used') })
    vi.stubGlobal('fetch', stub)
    try {
      const hook = await eventually(() => receiver.received[0])
      expect(hook.body.status).toBe('succeeded')
      expect(stub).not.toHaveBeenCalled()
    } finally {
      vi.unstubAllGlobals()
    }
  })
})
