import fp from 'fastify-plugin'
import type { pino } from 'pino'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { fieldProblems, toProblem } from '../../src/problems.ts'
import { AppError, ValidationError } from '../../src/errors.ts'
import { ClientDisconnectedError } from '../../src/http-signal.ts'
import { drainRefusedBody } from '../../src/drain-refused-body.ts'
import { accessLineWriter, keyIdOf } from '../../src/access-line.ts'

/**
 * Cross-cutting HTTP behaviour: the request id on every response, and the one error handler that
 * turns every failure into application/problem+json without echoing internals.
 */
export default fp(async function http (fastify: FastifyInstance) {
  const closingProblem = (request: FastifyRequest, reply: FastifyReply) => {
    const { status, body } = toProblem(new AppError('service_unavailable', 'The service is shutting down; retry on another instance.'), String(request.id))
    return reply.code(status).header('connection', 'close').header('retry-after', '1').type('application/problem+json').send(body)
  }
  // Callback-style hooks where there is nothing to await: every request runs them, and a promise each costs.
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    // A request that arrives on a kept-alive connection after close began is refused cleanly,
    // as a problem document, and the connection is not kept.
    // Probes still answer for themselves (readiness says 503 with its checks).
    if (fastify.lifecycle.closing && !request.url.startsWith('/health')) return closingProblem(request, reply)
    done()
  })

  // One line per request, when it ends, with what it was and how it went: half the logging of Fastify's pair of
  // lines on every request. At debug the start of each request is logged too, for requests that never end.
  // Each route's logLevel applies (probes log at warn, so they stay out of the info log).
  const loud = fastify.log.level === 'debug' || fastify.log.level === 'trace'
  if (loud) {
    fastify.addHook('onRequest', (request, _reply, done) => {
      request.log.debug({ req: request }, 'incoming request')
      done()
    })
  }
  const writeAccessLine = accessLineWriter(fastify.log as pino.Logger)
  fastify.addHook('onResponse', (request, reply, done) => {
    if ((request.log as pino.Logger).isLevelEnabled('info')) writeAccessLine(request, reply)
    done()
  })

  // A response finished during shutdown also ends its connection, so close() is not held up by
  // kept-alive sockets that would otherwise stay open after their last request.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (fastify.lifecycle.closing) reply.header('connection', 'close')
    done(null, payload)
  })

  fastify.setErrorHandler(async function errorHandler (error: FastifyError, request, reply) {
    if (error instanceof ClientDisconnectedError) {
      // Not a failure of ours: the caller left, and whatever it started upstream was cancelled.
      request.log.info('client disconnected before the answer')
      return reply.code(499).send()
    }
    let err: unknown = error
    if (error.validation) {
      err = new ValidationError(fieldProblems(error.validation as never, error.validationContext ?? 'body'))
    }
    const { status, headers, body } = toProblem(err, String(request.id))
    if (status >= 500) request.log.error({ err: error, ...keyIdOf(request) }, 'request failed')
    else request.log.info({ code: body.code, status, ...keyIdOf(request) }, 'request refused')
    if (body.code === 'payload_too_large') {
      // Fastify asks for Connection: close, and Node would then close before the rest of the body is read, which
      // resets the connection under a client still writing: it would never read this answer. Read it out first.
      reply.removeHeader('connection')
      drainRefusedBody(request.raw, reply.raw)
    }
    return reply.code(status).headers(headers).type('application/problem+json').send(body)
  })

  fastify.setNotFoundHandler(async function notFound (request, reply) {
    const { status, body } = toProblem(Object.assign(new Error('not found'), { statusCode: 404 }), String(request.id))
    return reply.code(status).type('application/problem+json').send({ ...body, code: 'not_found', type: 'urn:flux-gateway:problem:not_found', detail: `No route ${request.method} ${request.url.split('?')[0]}.` })
  })
}, { name: 'http', dependencies: ['lifecycle'] })
