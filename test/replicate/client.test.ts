import { createServer } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createReplicateClient } from '../../src/replicate/client.ts'
import type { ReplicateClientOptions } from '../../src/replicate/client.ts'
import {
  ContentSafetyError,
  PredictionFailedError,
  ReplicateApiError,
  ReplicateAuthError,
  ReplicateNetworkError,
  ReplicateRateLimitError,
  ReplicateTimeoutError
} from '../../src/replicate/errors.ts'
import { failureError, isSettled, normalizeOutput } from '../../src/replicate/predictions.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'

const SCHNELL = 'black-forest-labs/flux-schnell'
const PRO = 'black-forest-labs/flux-1.1-pro'

let emulator: Emulator

beforeAll(async () => {
  emulator = await startEmulator({ timeScale: 0.02 })
})
afterAll(async () => {
  await emulator.close()
})
afterEach(() => {
  emulator.reset()
})

/** A client whose retry waits are recorded (and skipped), so the delays themselves can be asserted. */
function client (extra: Partial<ReplicateClientOptions> = {}) {
  const delays: number[] = []
  const c = createReplicateClient({
    token: emulator.token,
    baseUrl: emulator.baseUrl,
    random: () => 0,
    sleep: async (ms, signal) => {
      signal?.throwIfAborted()
      delays.push(ms)
    },
    ...extra
  })
  return { c, delays }
}

const creates = () => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))
const gets = (id: string) => emulator.requests.filter((r) => r.method === 'GET' && r.path === `/v1/predictions/${id}`)

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('requests', () => {
  it('creates with Prefer: wait and Cancel-After, and reads back the same prediction', async () => {
    const { c } = client()
    const p = await c.createPrediction(SCHNELL, { prompt: 'a quiet harbour', seed: 3 }, { wait: 30, cancelAfter: 90 })
    expect(isSettled(p)).toBe(true)
    expect(normalizeOutput(p.output)).toHaveLength(1)
    const [req] = creates()
    expect(req!.path).toBe('/v1/models/black-forest-labs/flux-schnell/predictions')
    expect(req!.headers.prefer).toBe('wait=30')
    expect(req!.headers['cancel-after']).toBe('90s')
    expect(req!.headers.authorization).toBe(`Bearer ${emulator.token}`)
    expect(req!.body).toEqual({ input: { prompt: 'a quiet harbour', seed: 3 } })
    const again = await c.getPrediction(p.id)
    expect(again.id).toBe(p.id)
    await c.close()
  })

  it('clamps the sync wait to 60 s and the deadline to Replicate\'s 5 s minimum', async () => {
    const { c } = client()
    await c.createPrediction(SCHNELL, { prompt: 'clamped' }, { wait: 600, cancelAfter: 1 })
    expect(creates()[0]!.headers.prefer).toBe('wait=60')
    expect(creates()[0]!.headers['cancel-after']).toBe('5s')
    await c.close()
  })

  it('normalises both output shapes to string[]', async () => {
    const { c } = client()
    const pro = await c.createPrediction(PRO, { prompt: 'one string output' }, { wait: 30 })
    expect(typeof pro.output).toBe('string')
    expect(normalizeOutput(pro.output)).toEqual([pro.output])
    const schnell = await c.createPrediction(SCHNELL, { prompt: 'array output', num_outputs: 2 }, { wait: 30 })
    expect(Array.isArray(schnell.output)).toBe(true)
    expect(normalizeOutput(schnell.output)).toHaveLength(2)
    await c.close()
  })

  it('reads the model schema and the account (the non-billable token check)', async () => {
    const { c } = client()
    const model = await c.getModel(SCHNELL)
    const input = model.latest_version?.openapi_schema.components?.schemas?.Input as { properties: Record<string, unknown> }
    expect(Object.keys(input.properties)).toContain('megapixels')
    const account = await c.getAccount()
    expect(typeof account.username).toBe('string')
    expect(creates()).toHaveLength(0)
    await c.close()
  })
})

describe('listing predictions', () => {
  it('follows the next cursors across pages, keeps to the created window, and retries a failed page', async () => {
    const small = await startEmulator({ timeScale: 0.02, listPageSize: 2 })
    const c = createReplicateClient({ token: small.token, baseUrl: small.baseUrl, random: () => 0, sleep: async () => {} })
    try {
      const made = []
      for (let i = 0; i < 5; i++) made.push(await c.createPrediction(SCHNELL, { prompt: `listed ${i}` }))
      small.inject({ kind: 'status', status: 503, method: 'GET', path: '/v1/predictions' })
      const all = await c.listPredictions({ createdAfter: new Date(Date.now() - 60_000), createdBefore: new Date(Date.now() + 60_000) })
      expect(all.map((p) => p.id)).toEqual(made.map((p) => p.id).reverse())
      const pages = small.requests.filter((r) => r.method === 'GET' && r.path === '/v1/predictions')
      // Three pages, the first twice.
      expect(pages).toHaveLength(4)
      expect(pages.every((r) => r.url.includes('created_after='))).toBe(true)
      expect(await c.listPredictions({ createdBefore: new Date(Date.parse(made[0]!.created_at)) })).toEqual([])
    } finally {
      await c.close()
      await small.close()
    }
  })
})

describe('errors', () => {
  it('a bad token is an auth error (401), not retried', async () => {
    const { c, delays } = client({ token: 'r8_wrong' })
    await expect(c.getAccount()).rejects.toBeInstanceOf(ReplicateAuthError)
    expect(emulator.requests).toHaveLength(1)
    expect(delays).toEqual([])
    await c.close()
  })

  it('a token source that can rotate gets one fresh try after a 401', async () => {
    const tokens = ['r8_revoked', emulator.token]
    let invalidated = 0
    const { c } = client({ token: { getToken: () => tokens[0]!, invalidate: () => { invalidated++; tokens.shift() } } })
    const account = await c.getAccount()
    expect(account.username).toBeTruthy()
    expect(invalidated).toBe(1)
    expect(emulator.requests.map((r) => r.headers.authorization)).toEqual(['Bearer r8_revoked', `Bearer ${emulator.token}`])
    await c.close()
  })

  it('an invalid input is an API error carrying invalid_fields', async () => {
    const { c } = client()
    const err = await c.createPrediction(SCHNELL, { prompt: 'x', num_outputs: 9 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateApiError)
    expect((err as ReplicateApiError).status).toBe(422)
    expect((err as ReplicateApiError).invalidFields.map((f) => f.field)).toContain('input.num_outputs')
    expect(creates()).toHaveLength(1)
    await c.close()
  })

  it('classifies model failures: NSFW and E005 are content-safety errors, the rest prediction failures', () => {
    expect(failureError({ id: 'a', error: 'All generated images contained NSFW content. Try running it again with a different prompt.' })).toBeInstanceOf(ContentSafetyError)
    expect(failureError({ id: 'b', error: 'The input or output was flagged as sensitive. Please try again with different inputs. (E005)' })).toBeInstanceOf(ContentSafetyError)
    const other = failureError({ id: 'c', error: 'CUDA out of memory' })
    expect(other).toBeInstanceOf(PredictionFailedError)
    expect(other.predictionId).toBe('c')
    expect(failureError({ id: 'd', error: { detail: 'odd shape' } }).message).toContain('odd shape')
  })

  it('the emulator\'s NSFW trigger ends as a failed prediction that classifies as content safety', async () => {
    const { c } = client()
    const p = await c.createPrediction(SCHNELL, { prompt: 'nsfw-test portrait' }, { wait: 30 })
    expect(p.status).toBe('failed')
    expect(failureError(p)).toBeInstanceOf(ContentSafetyError)
    await c.close()
  })
})

describe('the retry loop against real sockets', () => {
  it('a 429 with Retry-After: 2 waits at least 2 s of real time before the retry', async () => {
    const c = createReplicateClient({ token: emulator.token, baseUrl: emulator.baseUrl, random: () => 0 })
    emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 2, method: 'POST' })
    const started = Date.now()
    const p = await c.createPrediction(SCHNELL, { prompt: 'after the throttle' })
    expect(p.id).toHaveLength(26)
    const [first, second] = creates()
    expect(creates()).toHaveLength(2)
    expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(2000)
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000)
    await c.close()
  })

  it('uses the largest of Retry-After, body retry_after and backoff', async () => {
    const { c, delays } = client()
    emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 3, method: 'GET', count: 2 })
    emulator.inject({ kind: 'status', status: 503, method: 'GET', count: 2 })
    await c.getAccount()
    // 429s: 3 s from the server beat backoff (500, 1000); 503s: backoff only (2000, 4000).
    expect(delays).toEqual([3000, 3000, 2000, 4000])
    expect(emulator.requests).toHaveLength(5)
    await c.close()
  })

  it('a create answered 500 reaches the emulator once and is not retried', async () => {
    const { c, delays } = client()
    emulator.inject({ kind: 'status', status: 500, method: 'POST' })
    const err = await c.createPrediction(SCHNELL, { prompt: 'no second bill' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateApiError)
    expect((err as ReplicateApiError).status).toBe(500)
    expect(creates()).toHaveLength(1)
    expect(delays).toEqual([])
    await c.close()
  })

  it('a create whose connection resets after sending reaches the emulator once and is not retried', async () => {
    const { c, delays } = client()
    emulator.inject({ kind: 'reset-after-body', method: 'POST' })
    const err = await c.createPrediction(SCHNELL, { prompt: 'reset after body' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateNetworkError)
    expect((err as ReplicateNetworkError).sent).toBe(true)
    expect(creates()).toHaveLength(1)
    expect(delays).toEqual([])
    await c.close()
  })

  it('a create that times out waiting for the answer is not retried', async () => {
    // undici checks its timeouts about once a second, so the hold must clearly outlast that.
    const { c } = client({ timeoutMs: 150 })
    emulator.inject({ kind: 'delay', delayMs: 2500, method: 'POST' })
    const err = await c.createPrediction(SCHNELL, { prompt: 'slow' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateTimeoutError)
    expect(creates()).toHaveLength(1)
    await c.close()
  })

  it('a create to a refused port is retried: it provably never left', async () => {
    const port = await closedPort()
    const { c, delays } = client({ baseUrl: `http://127.0.0.1:${port}/v1`, retry: { maxAttempts: 3 } })
    const err = await c.createPrediction(SCHNELL, { prompt: 'nobody home' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateNetworkError)
    expect((err as ReplicateNetworkError).sent).toBe(false)
    expect(delays).toEqual([500, 1000])
    await c.close()
  })

  it('GETs ride out a burst of 503s and resets', async () => {
    const { c, delays } = client()
    const p = await c.createPrediction(SCHNELL, { prompt: 'burst' })
    emulator.inject({ kind: 'status', status: 503, method: 'GET', count: 2 })
    emulator.inject({ kind: 'reset', method: 'GET', count: 1 })
    const got = await c.getPrediction(p.id)
    expect(got.id).toBe(p.id)
    expect(gets(p.id)).toHaveLength(4)
    expect(delays).toEqual([500, 1000, 2000])
    await c.close()
  })

  it('gives up with a rate-limit error when told to wait longer than the policy allows', async () => {
    const { c, delays } = client({ retry: { maxRetryAfterMs: 10_000 } })
    emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 30, method: 'POST' })
    const err = await c.createPrediction(SCHNELL, { prompt: 'too long a wait' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateRateLimitError)
    expect((err as ReplicateRateLimitError).retryAfterSeconds).toBe(30)
    expect(delays).toEqual([])
    await c.close()
  })

  it('an abort stops a retry wait at once', async () => {
    const c = createReplicateClient({ token: emulator.token, baseUrl: emulator.baseUrl })
    emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 30, method: 'GET' })
    const controller = new AbortController()
    const started = Date.now()
    setTimeout(() => controller.abort(new Error('caller left')), 100)
    await expect(c.getAccount({ signal: controller.signal })).rejects.toThrow('caller left')
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(emulator.requests).toHaveLength(1)
    await c.close()
  })

  it('an aborted sync create answers at once and cancels the prediction once its id is known', async () => {
    // slowStart keeps the prediction queued past the sync wait (30 s scaled to 0.6 s), as a cold boot would.
    const em = await startEmulator({ timeScale: 0.02, slowStart: true })
    const c = createReplicateClient({ token: em.token, baseUrl: em.baseUrl })
    const controller = new AbortController()
    const pending = c.createPrediction(PRO, { prompt: 'abandoned' }, { wait: 30, signal: controller.signal })
    setTimeout(() => controller.abort(new Error('caller left')), 50)
    await expect(pending).rejects.toThrow('caller left')
    // At once: before the upstream create answered, so before there was an id to cancel (order, not a duration).
    expect(em.requests.filter((r) => r.path.endsWith('/cancel'))).toHaveLength(0)
    await expect.poll(() => em.requests.filter((r) => r.path.endsWith('/cancel')).length, { timeout: 5_000 }).toBe(1)
    const id = em.requests.find((r) => r.path.endsWith('/cancel'))!.path.split('/')[3]!
    expect(em.getPrediction(id)?.status).toBe('canceled')
    await c.close()
    await em.close()
  })

  it('an abandoned create still held upstream is found in Replicate\'s list by its input and canceled before it answers', async () => {
    // slowStart with a slower clock: the create is held for 30 s × 0.2 = 6 s, well past the first lookup.
    const em = await startEmulator({ timeScale: 0.2, slowStart: true })
    const c = createReplicateClient({ token: em.token, baseUrl: em.baseUrl })
    try {
      // Another caller's unfinished prediction, with other input, is not a candidate.
      await c.createPrediction(PRO, { prompt: 'someone else, other words' })
      const controller = new AbortController()
      const pending = c.createPrediction(PRO, { prompt: 'abandoned while held' }, { wait: 30, signal: controller.signal })
      await expect.poll(() => em.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')).length).toBe(2)
      controller.abort(new Error('caller left'))
      await expect(pending).rejects.toThrow('caller left')
      await expect.poll(() => em.requests.filter((r) => r.path.endsWith('/cancel')).length, { timeout: 5_000, interval: 100 }).toBe(1)
      const id = em.requests.find((r) => r.path.endsWith('/cancel'))!.path.split('/')[3]!
      expect((em.getPrediction(id)?.input as { prompt?: string }).prompt).toBe('abandoned while held')
      expect(em.getPrediction(id)?.status).toBe('canceled')
      // Found through the list, while the create was still held: the list came before the cancel.
      const list = em.requests.findIndex((r) => r.method === 'GET' && r.path === '/v1/predictions')
      const cancel = em.requests.findIndex((r) => r.path.endsWith('/cancel'))
      expect(list).toBeGreaterThan(-1)
      expect(list).toBeLessThan(cancel)
      // The other caller's prediction goes on.
      expect(em.requests.filter((r) => r.path.endsWith('/cancel'))).toHaveLength(1)
    } finally {
      await c.close()
      await em.close()
    }
  }, 20_000)
})

describe('waitForCompletion', () => {
  it('polls with exponential backoff and jitter, and returns once settled', async () => {
    const sleeps: number[] = []
    let clock = 0
    const c = createReplicateClient({
      token: emulator.token,
      baseUrl: emulator.baseUrl,
      random: () => 0.5,
      now: () => clock,
      // Virtual time for the loop; the emulator keeps its own (scaled) time, so the prediction finishes meanwhile.
      sleep: async (ms) => { sleeps.push(ms); clock += ms; await new Promise((resolve) => setTimeout(resolve, 15)) }
    })
    const p = await c.createPrediction('black-forest-labs/flux-dev', { prompt: 'patience' })
    const done = await c.waitForCompletion(p.id, { initialWait: 1000, pollInterval: 500, backoffFactor: 2, maxInterval: 3000, jitter: 0.1, maxWaitTime: 600_000 })
    expect(isSettled(done)).toBe(true)
    // initial wait, then 500·2^n·1.05 capped at 3000
    const expected = [1000, 525, 1050, 2100, 3000, 3000, 3000, 3000, 3000, 3000, 3000, 3000]
    expect(sleeps).toEqual(expected.slice(0, sleeps.length))
    expect(gets(p.id)).toHaveLength(sleeps.length)
    await c.close()
  })

  it('treats aborted as terminal', async () => {
    const em = await startEmulator({ timeScale: 0.02, slowStart: true })
    const c = createReplicateClient({ token: em.token, baseUrl: em.baseUrl })
    // Cancel-After 5 s at time scale 0.02 is 100 ms, reached while still starting.
    const p = await c.createPrediction(SCHNELL, { prompt: 'too late' }, { cancelAfter: 5 })
    const done = await c.waitForCompletion(p.id, { initialWait: 50, pollInterval: 50, maxWaitTime: 10_000 })
    expect(done.status).toBe('aborted')
    await c.close()
    await em.close()
  })

  it('on timeout cancels upstream and throws a timeout error carrying the id', async () => {
    const em = await startEmulator({ timeScale: 0.02, slowStart: true })
    const c = createReplicateClient({ token: em.token, baseUrl: em.baseUrl })
    const p = await c.createPrediction(SCHNELL, { prompt: 'never starts' })
    const err = await c.waitForCompletion(p.id, { initialWait: 10, pollInterval: 20, maxWaitTime: 200 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReplicateTimeoutError)
    expect((err as ReplicateTimeoutError).predictionId).toBe(p.id)
    expect(em.requests.filter((r) => r.path === `/v1/predictions/${p.id}/cancel`)).toHaveLength(1)
    expect(em.getPrediction(p.id)?.status).toBe('canceled')
    await c.close()
    await em.close()
  })
})

describe('connection pools', () => {
  it('held sync creates have a pool of their own: a read is answered while they wait', async () => {
    // slowStart keeps each prediction queued past the sync wait (30 s scaled to 0.6 s), so each create holds its
    // connection the whole time, as a long generation does.
    const em = await startEmulator({ timeScale: 0.02, slowStart: true })
    const c = createReplicateClient({ token: em.token, baseUrl: em.baseUrl, connections: 1, createConnections: 4 })
    try {
      const order: string[] = []
      const held = [1, 2, 3].map((i) => c.createPrediction(PRO, { prompt: `held ${i}` }, { wait: 30 }).then(() => { order.push(`create ${i}`) }))
      await expect.poll(() => em.requests.filter((r) => r.method === 'POST').length).toBe(3)
      await c.getAccount().then(() => { order.push('account') })
      await Promise.all(held)
      // With one shared connection the read would have queued behind the creates; here it went first.
      expect(order[0]).toBe('account')
      expect(order).toHaveLength(4)
    } finally {
      await c.close()
      await em.close()
    }
  })
})
