import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway

beforeAll(async () => {
  // The model-side NSFW trigger is a harmless word here, so our own prompt check lets it through.
  gw = await startGateway({ env: { REPLICATE_TIMEOUT_MS: '1000', REPLICATE_MAX_RETRIES: '2' }, emulator: { nsfwTrigger: 'velvet-lighthouse' } })
})
afterAll(async () => {
  await gw.close()
})
afterEach(() => {
  gw.emulator.reset()
})

const post = (path: string, body: unknown, headers: Record<string, string> = {}) => gw.call('POST', path, body, headers)

function expectProblem (res: { status: number, headers: Record<string, unknown>, body: Record<string, unknown> }, status: number, code: string) {
  expect(res.status).toBe(status)
  expect(res.headers['content-type']).toContain('application/problem+json')
  expect(res.body).toMatchObject({ status, code, type: `urn:flux-gateway:problem:${code}` })
  expect(typeof res.body.title).toBe('string')
  expect(typeof res.body.detail).toBe('string')
  expect(res.body.request_id).toBe(res.headers['x-request-id'])
  // Nothing internal leaks: no stack, no token.
  const text = JSON.stringify(res.body)
  expect(text).not.toMatch(/\bat .+\.ts:\d+/)
  expect(text).not.toContain(gw.emulator.token)
}

describe('error codes', () => {
  it('validation_error 400 names the field', async () => {
    const res = await post('/v1/text-to-image', { prompt: '   ' })
    expectProblem(res, 400, 'validation_error')
    expect(res.body.errors).toEqual([expect.objectContaining({ field: 'prompt' })])
    const size = await post('/v1/text-to-image', { prompt: 'a fine prompt', width: 1000 })
    expect(size.body.errors).toEqual([{ field: 'width', message: 'must be one of 512, 768, 1024, 1536' }])
  })

  it('content_policy_violation 422 for a refused prompt, with nothing sent upstream', async () => {
    const res = await post('/v1/text-to-image', { prompt: 'a n.u.d.e figure' })
    expectProblem(res, 422, 'content_policy_violation')
    expect(res.body.categories).toEqual(['sexual'])
    expect(gw.emulator.requests).toHaveLength(0)
  })

  it('content_policy_violation 422 with the prediction id when the model flags its output', async () => {
    const res = await post('/v1/text-to-image', { prompt: 'velvet-lighthouse at noon' })
    expectProblem(res, 422, 'content_policy_violation')
    expect(res.body.prediction_id).toMatch(/^[a-z0-9]{26}$/)
  })

  it('rate_limited 429 with Retry-After when Replicate asks for a longer wait than we hold a request', async () => {
    gw.emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 120, method: 'POST' })
    const res = await post('/v1/text-to-image', { prompt: 'throttled' })
    expectProblem(res, 429, 'rate_limited')
    expect(res.headers['retry-after']).toBe('120')
    expect(res.body.retry_after).toBe(120)
  })

  it('upstream_error 502 when Replicate fails a create, which is not retried', async () => {
    gw.emulator.inject({ kind: 'status', status: 500, method: 'POST' })
    const res = await post('/v1/text-to-image', { prompt: 'upstream broke' })
    expectProblem(res, 502, 'upstream_error')
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })

  it('caller reads are answered from the store, even while Replicate\'s reads fail', async () => {
    const created = await post('/v1/text-to-image', { prompt: 'then reads fail' }, { prefer: 'respond-async' })
    gw.emulator.inject({ kind: 'status', status: 503, method: 'GET', count: 10 })
    const res = await request(`${gw.url}/v1/predictions/${String(created.body.id)}`)
    expect(res.statusCode).toBe(200)
    expect((await res.body.json() as { id: string }).id).toBe(created.body.id)
    // The create was the one upstream request: reads never reach Replicate.
    expect(gw.emulator.requests.filter((r) => !r.path.startsWith('/delivery/')).map((r) => r.method)).toEqual(['POST'])
  })

  it('a create that got no answer is 504 upstream_timeout naming our id; the prediction is then looked for: found, it is finished', async () => {
    const lost = await startGateway({ env: { CREATE_RECONCILE_AFTER_MS: '1000' } })
    try {
      // Replicate makes the prediction, and the connection drops before its answer.
      lost.emulator.inject({ kind: 'reset-after-body', method: 'POST', count: 1 })
      const res = await lost.call('POST', '/v1/text-to-image', { prompt: 'made, but never answered' })
      expectProblem(res, 504, 'upstream_timeout')
      const id = res.body.prediction_id as string
      expect(id).toMatch(/^[a-z0-9]{26}$/)
      const read = await lost.call('GET', `/v1/predictions/${id}?wait=20`)
      expect(read.body).toMatchObject({ id, status: 'succeeded', cost_credits: 1 })
      expect(lost.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
      expect(lost.logs.some((l) => l.msg === 'found the prediction of an interrupted create' && l.predictionId === id)).toBe(true)
    } finally {
      await lost.close()
    }
  }, 30_000)

  it('a create Replicate never got, past its deadline: 504, and the prediction fails with nothing charged', async () => {
    // Replicate's 60 s sync window shortened to 1 s, so the create's deadline (window + 0.5 s) passes in a test; the
    // emulator holds the request past it and, its caller gone, never makes the prediction.
    const slow = await startGateway({ env: { CREATE_RECONCILE_AFTER_MS: '1000' }, overrides: { tenancy: { tracker: { syncWindowSeconds: 1 } }, replicate: { syncMarginMs: 500 } } })
    try {
      slow.emulator.inject({ kind: 'delay', delayMs: 3_500, method: 'POST', count: 1 })
      const res = await slow.call('POST', '/v1/text-to-image', { prompt: 'too slow to answer' })
      expectProblem(res, 504, 'upstream_timeout')
      const read = await slow.call('GET', `/v1/predictions/${res.body.prediction_id as string}?wait=20`)
      expect(read.body).toMatchObject({ status: 'failed', cost_credits: 0, error: { code: 'upstream_error' } })
    } finally {
      await slow.close()
    }
  }, 30_000)

  it('upstream_auth_failed 503 when Replicate rejects the token', async () => {
    const bad = await startGateway({ env: { REPLICATE_API_TOKEN: 'r8_not_a_real_token' } })
    try {
      const res = await request(`${bad.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'who am i' }) })
      expect(res.statusCode).toBe(503)
      const body = await res.body.json() as Record<string, unknown>
      expect(body.code).toBe('upstream_auth_failed')
      expect(JSON.stringify(body)).not.toContain('r8_not_a_real_token')
      const ready = await request(`${bad.url}/health/ready`)
      expect(ready.statusCode).toBe(503)
    } finally {
      await bad.close()
    }
  })

  it('a failed prediction is a 200 with status failed and a coded error', async () => {
    const res = await post('/v1/text-to-image', { prompt: 'fail-test please' })
    expect(res.status).toBe(200)
    expect(res.body.status).toBe('failed')
    expect(res.body.error).toMatchObject({ code: 'prediction_failed' })
    expect(res.body.cost_credits).toBe(0)
  })

  it('not_found 404 for unknown routes and ids', async () => {
    const res = await request(`${gw.url}/v1/nothing-here`)
    expectProblem({ status: res.statusCode, headers: res.headers, body: await res.body.json() as Record<string, unknown> }, 404, 'not_found')
  })

  it('an unexpected failure is a 500 that says nothing about the internals', async () => {
    const broken = await startGateway({
      overrides: { moderation: { name: 'broken', checkText: async () => { throw new Error('secret internal detail at db.ts:12') } } }
    })
    try {
      const res = await request(`${broken.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'anything' }) })
      expect(res.statusCode).toBe(500)
      const body = await res.body.json() as Record<string, unknown>
      expect(body).toMatchObject({ code: 'internal_error', detail: 'An unexpected error occurred.' })
      expect(JSON.stringify(body)).not.toContain('secret internal detail')
      expect(broken.logText()).toContain('secret internal detail')
    } finally {
      await broken.close()
    }
  })
})
