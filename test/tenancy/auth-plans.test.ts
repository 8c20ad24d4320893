import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, storeWithKeys } from './helpers.ts'

let gw: TestGateway
let store: StateStore
let keys: Record<'free' | 'basic' | 'premium' | 'other' | 'limited' | 'revoked', string>
let ids: Record<'free' | 'basic' | 'premium' | 'other' | 'limited' | 'revoked', string>

beforeAll(async () => {
  ({ store, keys, ids } = await storeWithKeys({
    free: { plan: 'free' },
    basic: { plan: 'basic' },
    premium: { plan: 'premium' },
    other: { plan: 'premium' },
    limited: { plan: 'free', rateLimitPerMinute: 3 },
    revoked: { plan: 'premium' }
  }))
  await store.revokeKey(ids.revoked, Date.now())
  gw = await startGateway({ overrides: { tenancy: { store } } })
})
afterAll(async () => {
  await gw.close()
  await store.close()
})

const creates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

describe('authentication', () => {
  it('refuses /v1 without a key, with a bad key and with a revoked key, as 401 problems with a challenge', async () => {
    for (const key of [undefined, 'nope', `${keys.basic}x`, keys.basic.replace(/.$/, (c) => (c === 'a' ? 'b' : 'a')), keys.revoked]) {
      const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a quiet harbour' } })
      expect(res.status, String(key)).toBe(401)
      expect(res.body).toMatchObject({ code: 'unauthorized', status: 401 })
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="flux-gateway"/)
    }
    expect(creates()).toHaveLength(0)
    expect((await call(gw.url, 'GET', '/v1/models')).status).toBe(401)
  })

  it('keeps probes and documents public', async () => {
    for (const path of ['/health/live', '/health/ready', '/openapi.json', '/docs']) {
      const res = await call(gw.url, 'GET', path)
      expect(res.status, path).toBeLessThan(400)
    }
  })

  it('never logs a key', async () => {
    await call(gw.url, 'GET', '/v1/models', { key: keys.basic })
    expect(gw.logText()).not.toContain(keys.basic)
    // The secret is everything after the id; base64url may itself contain '_'.
    expect(gw.logText()).not.toContain(keys.basic.split('_').slice(2).join('_'))
  })
})

describe('plans', () => {
  it('picks the plan\'s default model and refuses models above the plan with 403 model_not_in_plan', async () => {
    const free = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.free, body: { prompt: 'a paper boat' } })
    expect(free.status).toBe(200)
    expect(free.body.model).toBe('flux-schnell')
    const basic = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.basic, body: { prompt: 'a paper boat' }, headers: { prefer: 'respond-async' } })
    expect(basic.body.model).toBe('flux-dev')
    const before = creates().length
    for (const [key, model] of [[keys.free, 'flux-dev'], [keys.free, 'flux-1.1-pro'], [keys.basic, 'flux-1.1-pro'], [keys.basic, 'flux-kontext-pro']] as const) {
      const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a paper boat', model } })
      expect(res.status).toBe(403)
      expect(res.body).toMatchObject({ code: 'model_not_in_plan', model })
    }
    const i2i = await call(gw.url, 'POST', '/v1/image-to-image', { key: keys.free, body: { prompt: 'make it night', image_url: 'https://example.com/a.png' } })
    expect(i2i.status).toBe(403)
    expect(i2i.body.code).toBe('model_not_in_plan')
    expect(creates()).toHaveLength(before)
    const premium = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.premium, body: { prompt: 'a paper boat', model: 'flux-1.1-pro' }, headers: { prefer: 'respond-async' } })
    expect(premium.status).toBe(202)
  })
})

describe('ownership', () => {
  it("another key's prediction and images are 404 to read and to cancel", async () => {
    const mine = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.premium, body: { prompt: 'a brass key', model: 'flux-schnell' } })
    expect(mine.status).toBe(200)
    const id = mine.body.id as string
    expect((await call(gw.url, 'GET', `/v1/predictions/${id}`, { key: keys.premium })).status).toBe(200)
    expect((await call(gw.url, 'GET', `/v1/predictions/${id}/images/0`, { key: keys.premium })).status).toBe(200)
    for (const [method, path] of [['GET', `/v1/predictions/${id}`], ['POST', `/v1/predictions/${id}/cancel`], ['GET', `/v1/predictions/${id}/images/0`]] as const) {
      const res = await call(gw.url, method, path, { key: keys.other })
      expect(res.status, path).toBe(404)
      expect(res.body.code).toBe('not_found')
    }
    // A prediction this service did not create is not served to keyed callers either.
    expect((await call(gw.url, 'GET', '/v1/predictions/abc123', { key: keys.other })).status).toBe(404)
  })
})

describe('per-key rate limits', () => {
  it('counts down RateLimit-Remaining, then answers 429 with Retry-After', async () => {
    const seen = []
    for (let i = 0; i < 4; i++) {
      const res = await call(gw.url, 'GET', '/v1/models', { key: keys.limited })
      seen.push([res.status, res.headers['ratelimit-limit'], res.headers['ratelimit-remaining']])
      if (i === 3) {
        expect(res.body).toMatchObject({ code: 'rate_limited', retry_after: expect.any(Number) })
        expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1)
        expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(20)
        expect(res.headers['ratelimit-policy']).toBe('3;w=60')
      }
    }
    expect(seen).toEqual([[200, '3', '2'], [200, '3', '1'], [200, '3', '0'], [429, '3', '0']])
    // Keys without a limit get no headers.
    expect((await call(gw.url, 'GET', '/v1/models', { key: keys.basic })).headers['ratelimit-limit']).toBeUndefined()
  })
})

describe('start-up', () => {
  it('in production refuses to start without any key', async () => {
    const config = loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN: gw.emulator.token, REPLICATE_BASE_URL: gw.emulator.baseUrl, LOG_LEVEL: 'silent' })
    const empty = createSqliteStore({ path: ':memory:' })
    const app = await buildApp({ config, overrides: { tenancy: { store: empty } } }).catch((err: unknown) => err)
    const err = app instanceof Error ? app : await (app as Awaited<ReturnType<typeof buildApp>>).ready().then(() => undefined, (e: unknown) => e)
    expect(String(err)).toMatch(/No API keys exist/)
    await empty.close()
  })

  it('with no keys outside production, auth is off and the log says so', async () => {
    const open = await startGateway()
    try {
      expect((await call(open.url, 'GET', '/v1/models')).status).toBe(200)
      expect(open.logs.some((l) => l.level === 40 && String(l.msg).includes('AUTHENTICATION IS OFF'))).toBe(true)
    } finally {
      await open.close()
    }
  })
})
