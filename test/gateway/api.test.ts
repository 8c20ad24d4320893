import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway({ env: { SYNC_WAIT_SECONDS: '30' } })
})
afterAll(async () => {
  await gw.close()
})
afterEach(() => {
  gw.emulator.reset()
})

const call = (...args: Parameters<TestGateway['call']>) => gw.call(...args)

const upstreamCreates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

describe('text-to-image', () => {
  it('waits by default and answers 200 with the finished prediction, in one upstream request', async () => {
    const res = await call('POST', '/v1/text-to-image', { prompt: 'a red fox in fresh snow', seed: 42 })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ status: 'succeeded', model: 'flux-schnell', error: null, cost_credits: 1, warnings: [] })
    expect(res.body.id).toMatch(/^[a-z0-9]{26}$/)
    expect(res.body.output).toHaveLength(1)
    expect(res.body.urls).toEqual({ get: `/v1/predictions/${res.body.id}`, cancel: `/v1/predictions/${res.body.id}/cancel` })
    // Besides the create, only the download that keeps the image reached upstream.
    expect(gw.emulator.requests.map((r) => `${r.method} ${r.path.replace(/\/[^/]+\/out-0\.webp$/, '/<id>/out-0.webp')}`)).toEqual([
      'POST /v1/models/black-forest-labs/flux-schnell/predictions', 'GET /delivery/<id>/out-0.webp'])
    // Upstream, the create is held for Replicate's whole sync window, whatever the caller waits.
    expect(upstreamCreates()[0]!.headers.prefer).toBe('wait=60')
    // The id is the gateway's own; Replicate's stays internal.
    expect(res.body.id).not.toBe(await gw.upstreamId(res.body.id))
    expect(upstreamCreates()[0]!.headers['cancel-after']).toBe('5m')
    // The image is fetchable by the caller.
    const image = await request(res.body.output[0])
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    expect((await image.body.arrayBuffer()).byteLength).toBeGreaterThan(100)
  })

  it('uses DEFAULT_PLAN\'s model, the chosen model, and charges per image', async () => {
    const res = await call('POST', '/v1/text-to-image', { prompt: 'two lanterns', model: 'flux-dev', num_outputs: 2 })
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('flux-dev')
    expect(res.body.output).toHaveLength(2)
    expect(res.body.cost_credits).toBe(4)
    expect(upstreamCreates()[0]!.path).toBe('/v1/models/black-forest-labs/flux-dev/predictions')
  })

  it('Prefer: respond-async answers 202 at once with a Location', async () => {
    const res = await call('POST', '/v1/text-to-image', { prompt: 'an async owl' }, { prefer: 'respond-async' })
    expect(res.status).toBe(202)
    expect(res.headers.location).toBe(`/v1/predictions/${res.body.id}`)
    expect(res.headers['preference-applied']).toBe('respond-async')
    expect(res.body.status).toBe('starting')
    expect(res.body.output).toBeNull()
    expect(res.body.cost_credits).toBe(1)
    // The create is made after the answer, in sync mode, in the background: one upstream request in all.
    const upstream = await gw.upstreamId(res.body.id)
    const done = await call('GET', `/v1/predictions/${res.body.id}?wait=10`)
    expect(done.body).toMatchObject({ id: res.body.id, status: 'succeeded' })
    expect(upstreamCreates().map((r) => r.headers.prefer)).toEqual(['wait=60'])
    expect(gw.emulator.requests.filter((r) => r.path.startsWith('/v1/predictions'))).toEqual([])
    expect(gw.emulator.getPrediction(upstream)?.status).toBe('succeeded')
  })

  it('Prefer: wait=N bounds the wait; when it runs out the answer is 202 with a Location', async () => {
    // flux-1.1-pro made to take 150 s, scaled to 3 s: a 1 s wait runs out first.
    const slow = await startGateway({ emulator: { predictSeconds: { 'black-forest-labs/flux-1.1-pro': 150 } } })
    try {
      const res = await slow.call('POST', '/v1/text-to-image', { prompt: 'a slow portrait', model: 'flux-1.1-pro' }, { prefer: 'wait=1' })
      expect(res.status).toBe(202)
      expect(res.headers['preference-applied']).toBe('wait=1')
      expect(res.headers.location).toBe(`/v1/predictions/${res.body.id}`)
      expect(['starting', 'processing']).toContain(res.body.status)
      // The upstream create goes on being held after the caller's answer, and ends the prediction.
      const done = await slow.call('GET', `/v1/predictions/${res.body.id}?wait=20`)
      expect(done.body.status).toBe('succeeded')
      // The emulator scales the 60 s sync window to 1.2 s, so the tracker then reads until the end: one create only.
      const calls = slow.emulator.requests.filter((r) => !r.path.startsWith('/delivery/'))
      expect(calls.filter((r) => r.method === 'POST').map((r) => r.headers.prefer)).toEqual(['wait=60'])
      const upstream = await slow.upstreamId(res.body.id)
      expect(calls.slice(1).map((r) => `${r.method} ${r.path}`)).toEqual(calls.slice(1).map(() => `GET /v1/predictions/${upstream}`))
    } finally {
      await slow.close()
    }
  })

  it('reports parameters the model cannot honour as warnings', async () => {
    const res = await call('POST', '/v1/text-to-image', { prompt: 'a harbour at dawn', negative_prompt: 'blurry', guidance_scale: 7 })
    expect(res.status).toBe(200)
    const fields = res.body.warnings.map((w: { field: string, code: string }) => `${w.field}:${w.code}`)
    expect(fields).toEqual(expect.arrayContaining(['negative_prompt:ignored', 'guidance_scale:ignored']))
    const input = (upstreamCreates()[0]!.body as { input: Record<string, unknown> }).input
    expect(input).not.toHaveProperty('negative_prompt')
    expect(input).not.toHaveProperty('guidance')
    expect(input).not.toHaveProperty('guidance_scale')
  })
})

describe('predictions', () => {
  it('GET returns the prediction; ?wait=N long-polls until it finishes', async () => {
    const created = await call('POST', '/v1/text-to-image', { prompt: 'a long-polled heron', model: 'flux-dev' }, { prefer: 'respond-async' })
    const id = created.body.id as string
    const now = await call('GET', `/v1/predictions/${id}`)
    expect(now.status).toBe(200)
    expect(now.body.id).toBe(id)
    const started = Date.now()
    const waited = await call('GET', `/v1/predictions/${id}?wait=20`)
    expect(waited.status).toBe(200)
    expect(waited.body.status).toBe('succeeded')
    expect(waited.body.output).toHaveLength(1)
    expect(waited.body.cost_credits).toBe(2)
    // It answered when the prediction ended (dev: 4 s scaled to 80 ms), far before the 20 s wait.
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('concurrent long-polls of one prediction cost Replicate nothing', async () => {
    const created = await call('POST', '/v1/text-to-image', { prompt: 'many watchers', model: 'flux-1.1-pro' }, { prefer: 'respond-async' })
    const id = created.body.id as string
    const results = await Promise.all(Array.from({ length: 8 }, () => call('GET', `/v1/predictions/${id}?wait=20`)))
    expect(results.every((r) => r.body.status === 'succeeded')).toBe(true)
    // The watchers read the store and hear the end on the change feed: Replicate saw the create only.
    expect(gw.emulator.requests.filter((r) => !r.path.startsWith('/delivery/')).map((r) => r.method)).toEqual(['POST'])
  })

  it('a long-poll that runs out answers 200 with the current state', async () => {
    const em = await startGateway({ emulator: { slowStart: true } })
    try {
      const created = await request(`${em.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt: 'queued forever' }) })
      const { id } = await created.body.json() as { id: string }
      const res = await request(`${em.url}/v1/predictions/${id}?wait=1`)
      expect(res.statusCode).toBe(200)
      expect((await res.body.json() as { status: string }).status).toBe('starting')
    } finally {
      await em.close()
    }
  })

  it('cancel stops a running prediction; cancelling a finished one returns it unchanged', async () => {
    const em = await startGateway({ emulator: { slowStart: true } })
    try {
      const created = await request(`${em.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt: 'changed my mind' }) })
      const { id } = await created.body.json() as { id: string }
      const res = await request(`${em.url}/v1/predictions/${id}/cancel`, { method: 'POST' })
      expect(res.statusCode).toBe(200)
      const body = await res.body.json() as { status: string, cost_credits: number }
      expect(body.status).toBe('canceled')
      // Canceled before it started: nothing to pay.
      expect(body.cost_credits).toBe(0)
      const upstream = (await em.app.state.getPrediction(id))?.upstreamId
      // Canceled while queued, nothing was sent; while held, the held create was found and canceled.
      if (upstream !== undefined) expect(em.emulator.getPrediction(upstream)?.status).toBe('canceled')
    } finally {
      await em.close()
    }
    const done = await call('POST', '/v1/text-to-image', { prompt: 'already finished' })
    const again = await call('POST', `/v1/predictions/${done.body.id}/cancel`)
    expect(again.status).toBe(200)
    expect(again.body.status).toBe('succeeded')
  })

  it('unknown ids are 404 not_found, as problem+json', async () => {
    const res = await call('GET', '/v1/predictions/zzzzzzzzzzzzzzzzzzzzzzzzzz')
    expect(res.status).toBe(404)
    expect(res.headers['content-type']).toContain('application/problem+json')
    expect(res.body).toMatchObject({ code: 'not_found', status: 404 })
    const cancel = await call('POST', '/v1/predictions/zzzzzzzzzzzzzzzzzzzzzzzzzz/cancel')
    expect(cancel.status).toBe(404)
  })

  it('a caller who disconnects from a sync create gets the prediction cancelled upstream', async () => {
    const em = await startGateway({ emulator: { slowStart: true } })
    try {
      const controller = new AbortController()
      const pending = request(`${em.url}/v1/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', prefer: 'wait=10' },
        body: JSON.stringify({ prompt: 'walked away' }),
        signal: controller.signal
      })
      await expect.poll(() => em.emulator.requests.length, { timeout: 5_000 }).toBe(1)
      controller.abort()
      await expect(pending).rejects.toThrow()
      await expect.poll(() => em.emulator.requests.filter((r) => r.path.endsWith('/cancel')).length, { timeout: 5_000 }).toBe(1)
      const id = em.emulator.requests.find((r) => r.path.endsWith('/cancel'))!.path.split('/')[3]!
      const upstream = (await em.app.state.getPrediction(id))?.upstreamId
      // Canceled while queued, nothing was sent; while held, the held create was found and canceled.
      if (upstream !== undefined) expect(em.emulator.getPrediction(upstream)?.status).toBe('canceled')
    } finally {
      await em.close()
    }
  })
})

describe('quotes and models', () => {
  it('quotes credits and USD', async () => {
    const res = await call('POST', '/v1/quotes', { model: 'flux-1.1-pro', num_images: 4 })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ model: 'flux-1.1-pro', num_images: 4, credits_per_image: 5, total_credits: 20, usd_per_image: 0.04, total_usd: 0.16 })
    const one = await call('POST', '/v1/quotes', { model: 'flux-schnell' })
    expect(one.body).toMatchObject({ num_images: 1, total_credits: 1, total_usd: 0.003 })
    expect(gw.emulator.requests).toHaveLength(0)
  })

  it('lists the catalog with tiers, credits and capabilities', async () => {
    const res = await call('GET', '/v1/models')
    expect(res.status).toBe(200)
    const byId = Object.fromEntries(res.body.models.map((m: { id: string }) => [m.id, m]))
    expect(Object.keys(byId)).toEqual(['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'])
    expect(byId['flux-schnell']).toMatchObject({ tier: 'free', credits_per_image: 1, replicate_model: 'black-forest-labs/flux-schnell', supports: ['text-to-image'] })
    expect(byId['flux-dev']).toMatchObject({ tier: 'basic', credits_per_image: 2, supports: ['text-to-image', 'image-to-image'], guidance: { min: 1, max: 10 } })
    expect(byId['flux-1.1-pro']).toMatchObject({ tier: 'premium', credits_per_image: 5, steps: null, guidance: null })
    expect(byId['flux-kontext-pro']).toMatchObject({ tier: 'premium', credits_per_image: 5 })
  })
})

describe('health and documents', () => {
  it('liveness checks nothing upstream; readiness asks Replicate a free question; /health has detail', async () => {
    const live = await call('GET', '/health/live')
    expect(live).toMatchObject({ status: 200, body: { status: 'ok' } })
    expect(gw.emulator.requests).toHaveLength(0)
    const ready = await call('GET', '/health/ready')
    expect(ready.status).toBe(200)
    expect(ready.body).toEqual({ status: 'ready', checks: { draining: { status: 'ok' }, token: { status: 'ok' }, upstream: { status: 'ok' } } })
    expect(gw.emulator.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/account'])
    const health = await call('GET', '/health')
    expect(health.body).toMatchObject({ status: 'ready', upstream: { base_url: gw.emulator.baseUrl, emulated: false, last_check: 'ok' }, moderation: { provider: 'local' }, sync_wait_seconds: 30 })
  })

  it('readiness is 503 when Replicate does not answer', async () => {
    gw.emulator.inject({ kind: 'status', status: 503, path: '/v1/account', count: 20 })
    const ready = await call('GET', '/health/ready')
    expect(ready.status).toBe(503)
    expect(ready.body.checks.upstream.status).toBe('fail')
  })

  it('readiness caches its upstream check', async () => {
    const cached = await startGateway({ env: { READINESS_CACHE_MS: '60000' } })
    try {
      for (let i = 0; i < 5; i++) expect((await request(`${cached.url}/health/ready`)).statusCode).toBe(200)
      expect(cached.emulator.requests).toHaveLength(1)
    } finally {
      await cached.close()
    }
  })

  it('serves the OpenAPI document and the docs page', async () => {
    const doc = await call('GET', '/openapi.json')
    expect(doc.status).toBe(200)
    expect(doc.body.openapi).toBe('3.1.0')
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/v1/text-to-image', '/v1/image-to-image', '/v1/predictions/{id}', '/v1/predictions/{id}/cancel', '/v1/quotes', '/v1/models', '/health/live', '/health/ready', '/health']))
    const docs = await request(`${gw.url}/docs/`)
    expect(docs.statusCode).toBe(200)
    expect(await docs.body.text()).toContain('swagger')
  })

  it('every response carries x-request-id, the caller\'s when given', async () => {
    const given = await call('GET', '/health/live', undefined, { 'x-request-id': 'trace-abc-123' })
    expect(given.headers['x-request-id']).toBe('trace-abc-123')
    const minted = await call('GET', '/v1/models')
    expect(minted.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
    const problem = await call('GET', '/nope', undefined, { 'x-request-id': 'trace-404' })
    expect(problem.status).toBe(404)
    expect(problem.headers['x-request-id']).toBe('trace-404')
    expect(problem.body).toMatchObject({ code: 'not_found', request_id: 'trace-404' })
  })
})
