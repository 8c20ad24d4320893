import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { IDEMPOTENCY_KEY, IDEMPOTENCY_LOCK_MS, REPLAYED_HEADERS, canonicalJson, idempotencyScope, isReplayable, sha256 } from '../../src/tenancy/idempotency.ts'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route creates something: `Idempotency-Key` applies. */
    idempotent?: boolean
  }
  interface FastifyRequest {
    idempotency: { scope: string, fingerprint: string, done: boolean } | null
  }
}

/**
 * `Idempotency-Key` on creating POSTs, as Stripe does it: the same key and body within
 * IDEMPOTENCY_TTL_HOURS replays the first response (`Idempotent-Replayed: true`); the same key with
 * another body is 422; a duplicate while the first is still running is 409 (retry it to get the
 * replay). Keys are per API key and route, and the record lives in the shared store, so this holds
 * across instances.
 */
export default fp(async function idempotency (fastify: FastifyInstance, opts: AppOptions) {
  const store = fastify.state
  const ttlMs = opts.config.IDEMPOTENCY_TTL_HOURS * 3_600_000
  fastify.decorateRequest('idempotency', null)

  // preHandler: after auth (onRequest) and body validation, so invalid requests never hold a key.
  const preHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    const given = request.headers['idempotency-key']
    if (given === undefined) return
    if (typeof given !== 'string' || !IDEMPOTENCY_KEY.test(given)) {
      throw new AppError('validation_error', 'Idempotency-Key must be 1-255 visible ASCII characters.', { errors: [{ field: 'header.idempotency-key', message: 'must be 1-255 visible ASCII characters' }] })
    }
    const scope = idempotencyScope(request.tenant.id, `${request.method} ${request.routeOptions.url}`, given)
    const fingerprint = sha256(canonicalJson(request.body))
    const begun = await store.idempotencyBegin(scope, fingerprint, { lockMs: IDEMPOTENCY_LOCK_MS, ttlMs, now: Date.now() })
    if (begun.state === 'mismatch') {
      throw new AppError('idempotency_key_reused', 'This Idempotency-Key was used with a different request body.')
    }
    if (begun.state === 'in_flight') {
      throw new AppError('idempotency_in_flight', 'A request with this Idempotency-Key is still running; retry to get its response.', { retry_after: 1 })
    }
    if (begun.state === 'completed') {
      const { status, headers, body } = begun.response
      return reply.code(status).headers({ ...headers, 'idempotent-replayed': 'true' }).send(body)
    }
    request.idempotency = { scope, fingerprint, done: false }
  }

  const onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const idem = request.idempotency
    if (!idem || idem.done) return payload
    idem.done = true
    if (!isReplayable(reply.statusCode) || typeof payload !== 'string') {
      await store.idempotencyAbandon(idem.scope)
      return payload
    }
    const headers: Record<string, string> = {}
    for (const name of REPLAYED_HEADERS) {
      const value = reply.getHeader(name)
      if (value !== undefined) headers[name] = String(value)
    }
    await store.idempotencyComplete(idem.scope, idem.fingerprint, { status: reply.statusCode, headers, body: payload }, { ttlMs, now: Date.now() })
    return payload
  }

  // A request that ended without a response (the caller left) frees its key for a retry.
  const onResponse = async (request: FastifyRequest) => {
    const idem = request.idempotency
    if (idem && !idem.done) {
      idem.done = true
      await store.idempotencyAbandon(idem.scope)
    }
  }

  // On the creating routes only, ahead of their own hooks: a read pays nothing for them.
  const first = <T>(hook: T, own: T | T[] | undefined): T[] => [hook, ...(own === undefined ? [] : Array.isArray(own) ? own : [own])]
  fastify.addHook('onRoute', (route) => {
    if (route.config?.idempotent !== true) return
    route.preHandler = first(preHandler, route.preHandler as never)
    route.onSend = first(onSend, route.onSend as never)
    route.onResponse = first(onResponse, route.onResponse as never)
  })
}, { name: 'idempotency', dependencies: ['state', 'auth'] })
