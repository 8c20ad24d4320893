import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, storeWithKeys } from '../tenancy/helpers.ts'

const APP = 'http://app.example.test'
const OTHER = 'http://evil.example.test'

describe('CORS with listed origins and keys', () => {
  let gw: TestGateway
  let store: StateStore
  let key: string
  beforeAll(async () => {
    ({ store, keys: { main: key } } = await storeWithKeys({ main: { plan: 'basic', rateLimitPerMinute: 100 } }))
    gw = await startGateway({ env: { CORS_ORIGINS: `${APP}, http://localhost:5173` }, overrides: { tenancy: { store } } })
  })
  afterAll(async () => {
    await gw.close()
    await store.close()
  })

  it('answers a preflight from a listed origin with 204, the methods, the headers and a max age', async () => {
    const res = await call(gw.url, 'OPTIONS', '/v1/text-to-image', {
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type, idempotency-key, prefer' }
    })
    expect(res.status).toBe(204)
    expect(res.headers['access-control-allow-origin']).toBe(APP)
    expect(String(res.headers['access-control-allow-methods']).split(/,\s*/)).toEqual(expect.arrayContaining(['GET', 'POST']))
    expect(String(res.headers['access-control-allow-headers']).split(/,\s*/)).toEqual(expect.arrayContaining(['authorization', 'content-type', 'prefer', 'idempotency-key', 'last-event-id']))
    expect(res.headers['access-control-max-age']).toBe('600')
    expect(res.headers['access-control-allow-credentials']).toBeUndefined()
    expect(String(res.headers.vary)).toMatch(/origin/i)
  })

  it('lets a listed origin read the answer and the headers it needs, and the refusals too', async () => {
    const created = await call(gw.url, 'POST', '/v1/text-to-image', {
      key,
      headers: { origin: APP, prefer: 'respond-async', 'idempotency-key': 'cors-1' },
      body: { prompt: 'a kite over the dunes', model: 'flux-schnell' }
    })
    expect(created.status).toBe(202)
    expect(created.headers['access-control-allow-origin']).toBe(APP)
    const exposed = String(created.headers['access-control-expose-headers']).toLowerCase().split(/,\s*/)
    expect(exposed).toEqual(expect.arrayContaining(['location', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy', 'retry-after', 'x-request-id', 'idempotent-replayed', 'preference-applied', 'warning', 'x-prediction-id']))
    // The exposed headers are ones this response really has.
    expect(created.headers.location).toMatch(/^\/v1\/predictions\//)
    expect(created.headers['preference-applied']).toBe('respond-async')
    expect(created.headers['ratelimit-limit']).toBe('100')

    // A 401 is readable by the page (the CORS hook runs before authentication).
    const refused = await call(gw.url, 'GET', '/v1/models', { headers: { origin: APP } })
    expect(refused.status).toBe(401)
    expect(refused.headers['access-control-allow-origin']).toBe(APP)
  })

  it('gives an origin that is not listed no CORS headers, and refuses its preflight with a problem', async () => {
    const res = await call(gw.url, 'GET', '/v1/models', { key, headers: { origin: OTHER } })
    expect(res.status).toBe(200)
    expect(res.headers['access-control-allow-origin']).toBeUndefined()
    const pre = await call(gw.url, 'OPTIONS', '/v1/text-to-image', { headers: { origin: OTHER, 'access-control-request-method': 'POST' } })
    expect(pre.status).toBe(403)
    expect(pre.headers['access-control-allow-origin']).toBeUndefined()
    expect(pre.body).toMatchObject({ code: 'origin_not_allowed', status: 403 })
    // A look-alike of a listed origin is another origin.
    for (const origin of [`${APP}:8080`, APP.replace('http:', 'https:'), `${APP}.evil.test`]) {
      const r = await call(gw.url, 'GET', '/v1/models', { key, headers: { origin } })
      expect(r.headers['access-control-allow-origin'], origin).toBeUndefined()
    }
  })

  it('covers the server-sent events route: its preflight allows Last-Event-ID', async () => {
    const pre = await call(gw.url, 'OPTIONS', '/v1/predictions/abc123/events', {
      headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization, last-event-id' }
    })
    expect(pre.status).toBe(204)
    expect(pre.headers['access-control-allow-origin']).toBe(APP)
    expect(String(pre.headers['access-control-allow-headers'])).toContain('last-event-id')
    const res = await call(gw.url, 'GET', '/v1/predictions/abc123/events', { key, headers: { origin: APP, accept: 'text/event-stream' } })
    expect(res.headers['access-control-allow-origin']).toBe(APP)
  })
})

describe('CORS_ORIGINS=*', () => {
  it('allows any origin while authentication is off, and none once a key exists', async () => {
    const store = createSqliteStore({ path: ':memory:' })
    const gw = await startGateway({ env: { CORS_ORIGINS: '*' }, overrides: { tenancy: { store } } })
    try {
      const open = await call(gw.url, 'GET', '/v1/models', { headers: { origin: OTHER } })
      expect(open.status).toBe(200)
      expect(open.headers['access-control-allow-origin']).toBe(OTHER)
      const pre = await call(gw.url, 'OPTIONS', '/v1/text-to-image', { headers: { origin: OTHER, 'access-control-request-method': 'POST' } })
      expect(pre.status).toBe(204)
    } finally {
      await gw.close()
    }
    // Keys exist from the start: * no longer lets any page in.
    const withKeys = await storeWithKeys({ main: { plan: 'free' } }, store)
    const locked = await startGateway({ env: { CORS_ORIGINS: '*' }, overrides: { tenancy: { store } } })
    try {
      const res = await call(locked.url, 'GET', '/v1/models', { key: withKeys.keys.main, headers: { origin: OTHER } })
      expect(res.status).toBe(200)
      expect(res.headers['access-control-allow-origin']).toBeUndefined()
    } finally {
      await locked.close()
      await store.close()
    }
  })

  it('is refused in production, and origins must be exact', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN: 'r8_x', CORS_ORIGINS: '*' })).toThrow(/CORS_ORIGINS may be \* only while authentication is off/)
    expect(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/' })).toThrow(/CORS_ORIGINS has "https:\/\/app.example.com\/"/)
    expect(() => loadConfig({ CORS_ORIGINS: 'app.example.com' })).toThrow(/CORS_ORIGINS/)
    expect(loadConfig({ CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' }).CORS_ORIGINS).toBeDefined()
  })
})

describe('CORS by default', () => {
  it('is off: no cross-origin headers for anyone', async () => {
    const gw = await startGateway()
    try {
      const res = await call(gw.url, 'GET', '/v1/models', { headers: { origin: APP } })
      expect(res.status).toBe(200)
      expect(res.headers['access-control-allow-origin']).toBeUndefined()
      const pre = await call(gw.url, 'OPTIONS', '/v1/text-to-image', { headers: { origin: APP, 'access-control-request-method': 'POST' } })
      expect(pre.status).toBe(404)
    } finally {
      await gw.close()
    }
  })
})
