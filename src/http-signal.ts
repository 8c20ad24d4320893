import type { FastifyReply, FastifyRequest } from 'fastify'

/** The caller closed the connection before the answer was written. Nobody is left to answer. */
export class ClientDisconnectedError extends Error {
  readonly code = 'CLIENT_DISCONNECTED'
  constructor () {
    super('client disconnected')
    this.name = 'ClientDisconnectedError'
  }
}

/**
 * An AbortSignal that fires when the caller goes away before the response is written. It watches
 * the response, not the request: a request stream "closes" as soon as its body has been read.
 */
export function disconnectSignal (reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new ClientDisconnectedError())
  })
  return controller.signal
}

/**
 * The signal a create runs under: the caller's departure cancels its prediction, unless it sent an Idempotency-Key.
 * That caller can come back and replay the answer, so its prediction runs on, and is kept and charged as usual.
 */
export function createSignal (request: FastifyRequest, reply: FastifyReply): AbortSignal | undefined {
  return request.headers['idempotency-key'] === undefined ? disconnectSignal(reply) : undefined
}
