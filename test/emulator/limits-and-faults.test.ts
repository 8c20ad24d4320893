import { afterEach, describe, expect, it } from 'vitest'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'
import { api, createSchnell, startFastEmulator } from './helpers.ts'

/** Rate limiting (REFERENCE §4, §11.9) and injected faults for testing a client's retries. */

const open: Emulator[] = []
async function emulator (opts: EmulatorOptions = {}): Promise<Emulator> {
  const emu = await startFastEmulator(opts)
  open.push(emu)
  return emu
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

describe('rate limits', () => {
  it('a low-credit token gets 6/min with a burst of 1 on creates, with the real 429 body and Retry-After', async () => {
    const emu = await emulator({ lowCreditTokens: ['r8_poor'] })
    const first = await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { token: 'r8_poor', body: { input: { prompt: 'a' } } })
    expect(first.status).toBe(201)
    expect(first.headers.get('ratelimit-remaining')).toBe('0')
    const second = await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { token: 'r8_poor', body: { input: { prompt: 'b' } } })
    expect(second.status).toBe(429)
    expect(second.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(second.headers.get('retry-after')).toBe('10')
    expect(second.body).toEqual({
      detail: 'Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per minute with a burst of 1 requests while you have less than $5.0 in credit. Your rate limit resets in ~10s.',
      status: 429,
      retry_after: 10
    })
    // Other endpoints have their own bucket, and other tokens their own buckets.
    expect((await api(emu, 'GET', `/predictions/${first.body.id}`, { token: 'r8_poor' })).status).toBe(200)
    expect((await createSchnell(emu, { prompt: 'c' })).status).toBe(201)
  })

  it('the non-create bucket, and rate-limit headers on every /v1 response', async () => {
    const emu = await emulator({ rateLimits: { other: { perMinute: 6, burst: 3 } } })
    const remaining: (string | null)[] = []
    for (let i = 0; i < 3; i++) {
      const response = await api(emu, 'GET', '/account')
      expect(response.status).toBe(200)
      remaining.push(response.headers.get('ratelimit-remaining'))
    }
    expect(remaining).toEqual(['2', '1', '0'])
    const throttled = await api(emu, 'GET', '/account')
    expect(throttled.status).toBe(429)
    // One request per 10 s refills the bucket; three make it full.
    expect(throttled.headers.get('retry-after')).toBe('10')
    expect(throttled.headers.get('ratelimit-reset')).toBe('30')
    expect(throttled.body).toEqual({ detail: 'Request was throttled. Your rate limit resets in ~10s.', status: 429, retry_after: 10 })
    // Creates are counted apart.
    const created = await createSchnell(emu, { prompt: 'x' })
    expect(created.status).toBe(201)
    expect(created.headers.get('ratelimit-remaining')).toBe('599')
    const unauthenticated = await api(emu, 'GET', '/account', { token: null })
    expect(unauthenticated.status).toBe(401)
    expect(unauthenticated.headers.get('ratelimit-remaining')).toEqual(expect.stringMatching(/^\d+$/))
    expect(unauthenticated.headers.get('ratelimit-reset')).toEqual(expect.stringMatching(/^\d+$/))
  })
})

describe('faults', () => {
  it('status 429 with Retry-After for the next K matching calls', async () => {
    const emu = await emulator()
    emu.inject({ kind: 'status', status: 429, retryAfterSeconds: 7, count: 2, method: 'POST' })
    const account = await api(emu, 'GET', '/account')
    expect(account.status).toBe(200)
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) {
      const response = await createSchnell(emu, { prompt: `try ${i}` })
      statuses.push(response.status)
      if (response.status === 429) {
        expect(response.headers.get('retry-after')).toBe('7')
        expect(response.body).toEqual({ detail: 'Request was throttled. Your rate limit resets in ~7s.', status: 429, retry_after: 7 })
      }
    }
    expect(statuses).toEqual([429, 429, 201])
    // Faulted requests still reached the server and are recorded.
    expect(emu.requests.filter((r) => r.method === 'POST')).toHaveLength(3)
    expect(emu.requests.filter((r) => r.method === 'POST')[0]!.body).toEqual({ input: { megapixels: '0.25', prompt: 'try 0' } })
  })

  it('5xx on a path given as a RegExp, by method', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'x' })
    emu.inject({ kind: 'status', status: 503, method: 'GET', path: /^\/v1\/predictions\/[a-z0-9]+$/ })
    emu.inject({ kind: 'status', status: 502, path: '/v1/account' })
    const failed = await api(emu, 'GET', `/predictions/${created.body.id}`)
    expect(failed.status).toBe(503)
    expect(failed.body).toEqual({ detail: 'Service unavailable', status: 503 })
    expect((await api(emu, 'GET', `/predictions/${created.body.id}`)).status).toBe(200)
    expect((await api(emu, 'GET', '/account')).status).toBe(502)
    expect((await api(emu, 'GET', '/account')).status).toBe(200)
  })

  it('reset: the connection drops at once; no prediction is created', async () => {
    const emu = await emulator()
    emu.inject({ kind: 'reset' })
    await expect(createSchnell(emu, { prompt: 'lost' })).rejects.toThrow('fetch failed')
    expect(emu.requests).toHaveLength(1)
    expect(emu.requests[0]).toMatchObject({ method: 'POST', path: '/v1/models/black-forest-labs/flux-schnell/predictions' })
    expect((await api(emu, 'GET', '/predictions')).body.results).toEqual([])
  })

  it('reset-after-body: the request is read, recorded and handled, but never answered', async () => {
    const emu = await emulator()
    emu.inject({ kind: 'reset-after-body', method: 'POST' })
    await expect(createSchnell(emu, { prompt: 'reached' })).rejects.toThrow('fetch failed')
    expect(emu.requests).toHaveLength(1)
    expect(emu.requests[0]!.body).toEqual({ input: { megapixels: '0.25', prompt: 'reached' } })
    // The server did create it: a client that retried would now have paid twice.
    const list = await api(emu, 'GET', '/predictions')
    expect(list.body.results).toHaveLength(1)
    expect(list.body.results[0].input.prompt).toBe('reached')
  })

  it('delay holds a request, then answers normally', async () => {
    const emu = await emulator()
    emu.inject({ kind: 'delay', delayMs: 150, path: '/v1/account' })
    const started = Date.now()
    const response = await api(emu, 'GET', '/account')
    expect(response.status).toBe(200)
    expect(Date.now() - started).toBeGreaterThanOrEqual(145)
  })

  it('a path outside /v1 matches only when named; clearFaults drops the queue', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'x' }, { headers: { prefer: 'wait' } })
    emu.inject({ kind: 'status', status: 500, path: /^\/delivery\// })
    expect((await fetch(created.body.output[0])).status).toBe(500)
    expect((await fetch(created.body.output[0])).status).toBe(200)

    emu.inject({ kind: 'status', status: 500, count: 5 })
    emu.clearFaults()
    expect((await api(emu, 'GET', '/account')).status).toBe(200)
    expect(() => emu.inject({ kind: 'status' })).toThrow(/needs an HTTP status/)
  })

  it('reset() forgets predictions, requests, faults and buckets', async () => {
    const emu = await emulator({ rateLimits: { other: { perMinute: 1, burst: 1 } } })
    const created = await createSchnell(emu, { prompt: 'x' })
    expect((await api(emu, 'GET', '/account')).status).toBe(200)
    expect((await api(emu, 'GET', '/account')).status).toBe(429)
    emu.inject({ kind: 'reset' })
    emu.reset()
    expect(emu.requests).toHaveLength(0)
    expect(emu.getPrediction(created.body.id)).toBeUndefined()
    expect((await api(emu, 'GET', '/account')).status).toBe(200)
    expect(emu.requests).toHaveLength(1)
  })
})
