import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { EmulatorContext, RecordedRequest } from '../context.ts'
import type { FaultSpec } from '../faults.ts'
import { parseAuthorization } from '../headers.ts'
import { fileTooLarge, genericProblem, invalidToken, missingToken, throttled } from '../problems.ts'
import type { BucketKind, RateDecision } from '../rate-limit.ts'
import { pathOf, sendProblem } from './reply.ts'

/**
 * What every request goes through before its route: recording, injected faults, then for `/v1`
 * authentication and rate limiting; plus body parsing and the error handler. Requests to the
 * control API (`/_emulator`) skip all of it.
 */

interface RequestState {
  recorded: RecordedRequest
  fault?: FaultSpec
  token?: string
  rate?: RateDecision
}

const states = new WeakMap<IncomingMessage, RequestState>()

export function tokenOf (request: FastifyRequest): string {
  return states.get(request.raw)?.token ?? ''
}

const CREATE_PATH = /^\/v1\/(?:predictions|models\/[^/]+\/[^/]+\/predictions|deployments\/[^/]+\/[^/]+\/predictions)$/

function bucketKind (method: string, path: string): BucketKind {
  return method === 'POST' && CREATE_PATH.test(path) ? 'create' : 'other'
}

const isV1 = (path: string): boolean => path === '/v1' || path.startsWith('/v1/')
const isControl = (path: string): boolean => path.startsWith('/_emulator/')

function recordBody (request: FastifyRequest, body: unknown): void {
  const state = states.get(request.raw)
  if (state) state.recorded.body = body
}

function dropConnection (request: FastifyRequest, reply: FastifyReply): void {
  reply.hijack()
  request.raw.socket.destroy()
}

function setRateHeaders (reply: FastifyReply, decision: RateDecision): void {
  reply.header('ratelimit-remaining', String(decision.remaining))
  reply.header('ratelimit-reset', String(decision.resetSeconds))
}

export function registerPipeline (app: FastifyInstance, ctx: EmulatorContext): void {
  app.addContentTypeParser(['application/json', 'application/problem+json'], { parseAs: 'string' }, (request, text, done) => {
    const raw = String(text)
    recordBody(request, raw === '' ? undefined : raw)
    if (raw.trim() === '') return done(null, undefined)
    try {
      const parsed: unknown = JSON.parse(raw)
      recordBody(request, parsed)
      done(null, parsed)
    } catch (err) {
      done(Object.assign(new Error(`JSON parse error - ${(err as Error).message}`), { statusCode: 400 }))
    }
  })
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (request, body, done) => {
    recordBody(request, `<multipart/form-data, ${body.length} bytes>`)
    done(null, body)
  })
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    recordBody(request, Buffer.isBuffer(body) ? body.toString('utf8') : String(body))
    done(null, body)
  })

  app.addHook('onRequest', async (request, reply) => {
    const path = pathOf(request.url)
    if (isControl(path)) return
    const recorded: RecordedRequest = {
      method: request.method,
      path,
      url: request.url,
      headers: { ...request.headers },
      body: undefined,
      receivedAt: Date.now()
    }
    ctx.requests.push(recorded)
    const excess = ctx.requests.length - ctx.options.maxRecordedRequests
    if (excess > 0) ctx.requests.splice(0, excess)
    const state: RequestState = { recorded }
    states.set(request.raw, state)
    const fault = ctx.faults.take(request.method, path)
    if (!fault) return
    if (fault.kind === 'reset') return dropConnection(request, reply)
    if (fault.kind === 'delay') await new Promise((resolve) => setTimeout(resolve, fault.delayMs ?? 0))
    else state.fault = fault
  })

  app.addHook('preHandler', async (request, reply) => {
    const state = states.get(request.raw)
    if (!state) return
    const { fault } = state
    if (fault?.kind === 'status') {
      const status = fault.status ?? 500
      return sendProblem(reply, status === 429 ? throttled(fault.retryAfterSeconds ?? 1) : genericProblem(status))
    }
    if (!isV1(state.recorded.path)) return
    const auth = parseAuthorization(request.headers.authorization)
    if (!auth.present) return sendProblem(reply, missingToken())
    if (auth.token === undefined || !ctx.options.tokens.includes(auth.token)) return sendProblem(reply, invalidToken())
    state.token = auth.token
    const decision = ctx.limiter.take(auth.token, bucketKind(request.method, state.recorded.path))
    state.rate = decision
    if (!decision.allowed) return sendProblem(reply, throttled(decision.retryAfterSeconds, decision.lowCredit))
  })

  app.addHook('onSend', async (request, reply) => {
    const state = states.get(request.raw)
    if (!state) return
    // The request was handled (a create did create a prediction); only the answer is lost.
    if (state.fault?.kind === 'reset-after-body') return dropConnection(request, reply)
    if (!isV1(state.recorded.path) || reply.hasHeader('ratelimit-remaining')) return
    setRateHeaders(reply, state.rate ?? ctx.limiter.peek(state.token ?? '', bucketKind(request.method, state.recorded.path)))
  })

  app.setErrorHandler((error: Error & { statusCode?: number, code?: string }, request, reply) => {
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendProblem(reply, fileTooLarge(ctx.options.maxFileBytes))
    const status = error.statusCode ?? 500
    if (status >= 400 && status < 500) return sendProblem(reply, genericProblem(status, error.message))
    request.log.error({ err: error }, 'emulator route failed')
    return sendProblem(reply, genericProblem(500))
  })
}
