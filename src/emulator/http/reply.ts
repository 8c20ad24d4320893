import type { FastifyReply } from 'fastify'
import type { Problem } from '../problems.ts'

export function sendProblem (reply: FastifyReply, problem: Problem): FastifyReply {
  for (const [name, value] of Object.entries(problem.headers ?? {})) reply.header(name, value)
  return reply.code(problem.status).type('application/problem+json').send(JSON.stringify(problem.body))
}

/** Serialises now, so the body is the state at this instant even if the prediction moves on. */
export function sendJson (reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(body))
}

export function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}
