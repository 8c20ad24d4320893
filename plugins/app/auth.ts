import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { resolvePlan } from '../../src/models/catalog.ts'
import { toProblem } from '../../src/problems.ts'
import { createKeyVerifier } from '../../src/tenancy/key-cache.ts'
import { createKeyRateLimiter } from '../../src/tenancy/key-rate-limiter.ts'
import { ANONYMOUS_ID, tenantOf } from '../../src/tenancy/tenant.ts'
import type { Tenant } from '../../src/tenancy/tenant.ts'

declare module 'fastify' {
  interface FastifyRequest {
    tenant: Tenant
  }
  interface FastifyContextConfig {
    /** The route authenticates its callers itself (a signed webhook): no API key, no per-key limit. */
    public?: boolean
    /** A request with a `sig` query parameter is authorized by that signature (the route checks it), not by a key. */
    signedUrl?: boolean
  }
}

/** How long "has a key ever existed?" is trusted, while none has, before asking the store again. */
const KEYS_RECHECK_MS = 5_000

const OFF_WARNING = '!!! AUTHENTICATION IS OFF: no API key has ever existed, so anyone who can reach this service can spend its Replicate credit. Create a key with `npm run keys -- create` to turn it on. !!!'

function send (request: FastifyRequest, reply: FastifyReply, err: AppError, headers: Record<string, string> = {}) {
  const problem = toProblem(err, String(request.id))
  return reply.code(problem.status).headers({ ...problem.headers, ...headers }).type('application/problem+json').send(problem.body)
}

/**
 * Bearer API keys on every /v1 route (probes and the OpenAPI document stay public), then the key's
 * own rate limit with the RateLimit-* headers. Only a store that has never held a key, outside
 * production, runs with auth off: every caller is the anonymous tenant. Once any key has existed,
 * revoked or not, auth stays on, so revoking the last key locks callers out instead of letting
 * everyone in. Production refuses to start without an active key.
 */
export default fp(async function auth (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const store = fastify.state
  const recheckMs = opts.overrides?.auth?.keysRecheckMs ?? KEYS_RECHECK_MS
  const anonymous: Tenant = { id: ANONYMOUS_ID, plan: resolvePlan(config.DEFAULT_PLAN), anonymous: true, budget: null, rateLimitPerMinute: null }
  // Keys are never deleted, only revoked, so once on, auth is on for good and the store need not be asked again.
  let on = false
  let checkedAt = -Infinity

  async function authEnabled (): Promise<boolean> {
    if (on || Date.now() - checkedAt < recheckMs) return on
    checkedAt = Date.now()
    if ((await store.countKeys()) > 0 && !on) {
      on = true
      fastify.log.warn({ auth: 'on' }, 'authentication turned on: an API key was created, so every /v1 call now needs one')
    }
    return on
  }

  // In production authentication never turns off, whatever the store says.
  const alwaysOn = config.NODE_ENV === 'production'
  if (alwaysOn && (await store.countActiveKeys()) === 0) {
    throw new Error('No API keys exist: refusing to start in production without authentication. Create one with `npm run keys -- create --plan basic`.')
  }
  on = alwaysOn || (await store.countKeys()) > 0
  checkedAt = Date.now()
  if (on) fastify.log.info({ auth: 'on' }, 'authentication is on: every /v1 call needs an API key')
  else fastify.log.warn({ auth: 'off' }, OFF_WARNING)

  fastify.decorateRequest('tenant', null as unknown as Tenant)
  const keys = createKeyVerifier(store, { ttlMs: opts.overrides?.auth?.keyCacheMs })
  const limiter = createKeyRateLimiter(store)

  const BEARER = /^Bearer\s+(\S+)\s*$/i
  const challenge = { 'www-authenticate': 'Bearer realm="flux-gateway"' }

  /** Everything after the route checks, for a request whose key has to be read or limited. */
  async function authenticate (request: FastifyRequest, reply: FastifyReply, header: string | undefined): Promise<unknown> {
    if (!(await authEnabled())) {
      request.tenant = anonymous
      return
    }
    const match = header === undefined ? null : BEARER.exec(header)
    if (!match) return send(request, reply, new AppError('unauthorized', 'Send an API key as `Authorization: Bearer <key>`.'), challenge)
    const key = await keys.verify(match[1]!)
    if (!key) return send(request, reply, new AppError('unauthorized', 'The API key is not valid or was revoked.'), { 'www-authenticate': 'Bearer realm="flux-gateway", error="invalid_token"' })
    // The key's id goes on the request's lines that say how it went (plugins/app/http.ts), not on a child logger:
    // one per request was a fifth of the cost of a status read.
    request.tenant = tenantOf(key)
    const limit = key.rateLimitPerMinute
    if (limit === null) return
    // GCRA with a bucket of one minute's requests: bursts up to the limit, then one per 60/limit s.
    const take = await limiter.take(`key:${key.id}`, { perMinute: limit, burst: limit, maxWaitMs: 0 }, Date.now())
    reply.headers({
      'ratelimit-policy': `${limit};w=60`,
      'ratelimit-limit': String(limit),
      'ratelimit-remaining': String(take.remaining),
      'ratelimit-reset': String(Math.ceil((take.allowed ? take.resetMs : take.retryAfterMs) / 1000))
    })
    if (!take.allowed) {
      const seconds = Math.max(1, Math.ceil(take.retryAfterMs / 1000))
      return send(request, reply, new AppError('rate_limited', `This key may make ${limit} requests a minute; retry in ${seconds} s.`, { retry_after: seconds }))
    }
  }

  // Callback style, so the common case costs no promise: auth on, and a key without a rate limit whose record was
  // read moments ago is settled here at once. Anything else goes through `authenticate`.
  fastify.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url
    if (route === undefined || !route.startsWith('/v1/') || request.routeOptions.config.public === true) return done()
    if (request.routeOptions.config.signedUrl === true && typeof (request.query as Record<string, unknown> | undefined)?.sig === 'string') return done()
    const header = request.headers.authorization
    if (on && header !== undefined) {
      const kept = keys.verifyKept(BEARER.exec(header)?.[1])
      if (kept !== undefined && kept.rateLimitPerMinute === null) {
        request.tenant = tenantOf(kept)
        return done()
      }
    }
    authenticate(request, reply, header).then(() => done(), done)
  })
  // Registered after cors (a dependency), so a refused request still carries the CORS headers a page needs to read it.
}, { name: 'auth', dependencies: ['state', 'http', 'cors'] })
