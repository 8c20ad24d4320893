import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { corsOrigins } from '../../src/config.ts'
import { AppError } from '../../src/errors.ts'
import { toProblem } from '../../src/problems.ts'

/** What a page may send: the key, JSON bodies, our Prefer and Idempotency-Key, and SSE resumption. */
export const CORS_ALLOWED_HEADERS = ['authorization', 'content-type', 'prefer', 'idempotency-key', 'last-event-id', 'x-request-id']
/** What a page may read back beyond the CORS-safelisted response headers. */
export const CORS_EXPOSED_HEADERS = [
  'location', 'ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset', 'ratelimit-policy', 'retry-after',
  'x-request-id', 'idempotent-replayed', 'preference-applied', 'etag',
  // The OpenAI-compatible routes: what was adjusted or ignored, and the prediction behind the answer.
  'warning', 'x-prediction-id'
]
/** How long a browser may reuse a preflight (Chromium caps it at 2 hours). */
const PREFLIGHT_MAX_AGE_SECONDS = 600
const KEYS_PRESENT_TTL_MS = 5_000

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by @fastify/cors when it answered the request as an allowed preflight. */
    corsPreflightEnabled: boolean
  }
}

/**
 * Cross-origin access for the pages listed in CORS_ORIGINS. Registered before `auth`, so its hook
 * runs first: preflights (which never carry the key) are answered before authentication, and a 401
 * or 429 still carries the CORS headers a page needs to read it. Credentials are never allowed: the
 * API key travels in the Authorization header, not in cookies.
 */
export default fp(async function corsPlugin (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const { any, origins } = corsOrigins(config)
  if (!any && origins.length === 0) return
  const allowed = new Set(origins)
  let keysPresent: { at: number, value: boolean } | undefined

  // `*` is for development without keys: once a key exists, pages on other origins could spend it.
  async function anyOriginAllowed (): Promise<boolean> {
    if (!any || config.NODE_ENV === 'production') return false
    if (!keysPresent || Date.now() - keysPresent.at > KEYS_PRESENT_TTL_MS) {
      keysPresent = { at: Date.now(), value: (await fastify.state.countActiveKeys()) > 0 }
    }
    return !keysPresent.value
  }

  await fastify.register(cors, {
    origin: (origin, cb) => {
      if (origin === undefined) return cb(null, false)
      if (allowed.has(origin)) return cb(null, origin)
      anyOriginAllowed().then((yes) => cb(null, yes ? origin : false), (err: Error) => cb(err, false))
    },
    methods: ['GET', 'HEAD', 'POST'],
    allowedHeaders: CORS_ALLOWED_HEADERS,
    exposedHeaders: CORS_EXPOSED_HEADERS,
    credentials: false,
    maxAge: PREFLIGHT_MAX_AGE_SECONDS,
    strictPreflight: true
  })

  // A preflight from an origin not listed would otherwise fall through to "no route OPTIONS …".
  fastify.addHook('onRequest', (request, reply, done) => {
    if (request.method !== 'OPTIONS' || request.corsPreflightEnabled || request.headers['access-control-request-method'] === undefined) return done()
    const { status, body } = toProblem(new AppError('origin_not_allowed', 'This origin may not call the API: it is not in CORS_ORIGINS.'), String(request.id))
    reply.code(status).type('application/problem+json').send(body)
  })
}, { name: 'cors', dependencies: ['state', 'http'] })
