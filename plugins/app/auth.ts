import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { resolvePlan } from '../../src/models/catalog.ts'
import { toProblem } from '../../src/problems.ts'
import { verifyApiKey } from '../../src/tenancy/keys.ts'
import { ANONYMOUS_ID } from '../../src/tenancy/tenant.ts'
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

/** How long "are there any keys?" is trusted before asking the store again. */
const KEYS_PRESENT_TTL_MS = 5_000

function send (request: FastifyRequest, reply: FastifyReply, err: AppError, headers: Record<string, string> = {}) {
  const problem = toProblem(err, String(request.id))
  return reply.code(problem.status).headers({ ...problem.headers, ...headers }).type('application/problem+json').send(problem.body)
}

/**
 * Bearer API keys on every /v1 route (probes and the OpenAPI document stay public), then the key's
 * own rate limit with the RateLimit-* headers. With no key in the store, outside production, auth is
 * off: every caller is the anonymous tenant. Production refuses to start without a key.
 */
export default fp(async function auth (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const store = fastify.state
  const anonymous: Tenant = { id: ANONYMOUS_ID, plan: resolvePlan(config.DEFAULT_PLAN), anonymous: true, budget: null, rateLimitPerMinute: null }
  let keysPresent: { at: number, value: boolean } | undefined

  async function authEnabled (): Promise<boolean> {
    if (!keysPresent || Date.now() - keysPresent.at > KEYS_PRESENT_TTL_MS) {
      keysPresent = { at: Date.now(), value: (await store.countActiveKeys()) > 0 }
    }
    return keysPresent.value
  }

  const enabled = await authEnabled()
  // In production authentication never turns off, not even when every key has been revoked since
  // start-up: then every call is refused, rather than every caller let in.
  const alwaysOn = config.NODE_ENV === 'production'
  if (!enabled) {
    if (config.NODE_ENV === 'production') {
      throw new Error('No API keys exist: refusing to start in production without authentication. Create one with `npm run keys -- create --plan basic`.')
    }
    fastify.log.warn({ auth: 'off' }, '!!! AUTHENTICATION IS OFF: no API keys exist, so anyone who can reach this service can spend its Replicate credit. Create a key with `npm run keys -- create` to turn it on. !!!')
  }

  fastify.decorateRequest('tenant', null as unknown as Tenant)

  fastify.addHook('onRequest', async (request, reply) => {
    const route = request.routeOptions.url
    if (route === undefined || !route.startsWith('/v1/') || request.routeOptions.config.public === true) return
    if (request.routeOptions.config.signedUrl === true && typeof (request.query as Record<string, unknown> | undefined)?.sig === 'string') return
    if (!alwaysOn && !(await authEnabled())) {
      request.tenant = anonymous
      return
    }
    const header = request.headers.authorization
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null
    const challenge = { 'www-authenticate': 'Bearer realm="flux-gateway"' }
    if (!match) return send(request, reply, new AppError('unauthorized', 401, 'Send an API key as `Authorization: Bearer <key>`.'), challenge)
    const key = await verifyApiKey(store, match[1]!)
    if (!key) return send(request, reply, new AppError('unauthorized', 401, 'The API key is not valid or was revoked.'), { 'www-authenticate': 'Bearer realm="flux-gateway", error="invalid_token"' })
    request.tenant = {
      id: key.id,
      plan: resolvePlan(key.plan),
      anonymous: false,
      budget: key.budgetCredits === null ? null : { credits: key.budgetCredits, period: key.budgetPeriod },
      rateLimitPerMinute: key.rateLimitPerMinute
    }
    request.log = request.log.child({ key_id: key.id })
    const limit = key.rateLimitPerMinute
    if (limit === null) return
    // GCRA with a bucket of one minute's requests: bursts up to the limit, then one per 60/limit s.
    const take = await store.rateTake(`key:${key.id}`, { perMinute: limit, burst: limit, maxWaitMs: 0 }, Date.now())
    reply.headers({
      'ratelimit-policy': `${limit};w=60`,
      'ratelimit-limit': String(limit),
      'ratelimit-remaining': String(take.remaining),
      'ratelimit-reset': String(Math.ceil((take.allowed ? take.resetMs : take.retryAfterMs) / 1000))
    })
    if (!take.allowed) {
      const seconds = Math.max(1, Math.ceil(take.retryAfterMs / 1000))
      return send(request, reply, new AppError('rate_limited', 429, `This key may make ${limit} requests a minute; retry in ${seconds} s.`, { retry_after: seconds }))
    }
  })
  // Registered after cors (a dependency), so a refused request still carries the CORS headers a page needs to read it.
}, { name: 'auth', dependencies: ['state', 'http', 'cors'] })
