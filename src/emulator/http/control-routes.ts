import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { checkFaultSpec } from '../faults.ts'
import type { FaultSpec } from '../faults.ts'
import { badRequest } from '../problems.ts'
import { sendJson, sendProblem } from './reply.ts'

/**
 * `/_emulator/*`: the in-process API over HTTP, for a standalone emulator. A fault arrives as a
 * FaultSpec in JSON; `path` is an exact path, `pathRegExp` a regular expression source.
 */
export type ControlFaultBody = Omit<FaultSpec, 'path'> & { path?: string, pathRegExp?: string }

function toFaultSpec (body: unknown): FaultSpec {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TypeError('a fault must be a JSON object')
  const { pathRegExp, ...rest } = body as ControlFaultBody
  const spec: FaultSpec = { ...rest }
  if (pathRegExp !== undefined) spec.path = new RegExp(pathRegExp)
  return checkFaultSpec(spec)
}

export function registerControlRoutes (app: FastifyInstance, ctx: EmulatorContext): void {
  app.post('/_emulator/faults', async (request, reply) => {
    let spec: FaultSpec
    try {
      spec = toFaultSpec(request.body)
    } catch (err) {
      return sendProblem(reply, badRequest((err as Error).message))
    }
    ctx.faults.inject(spec)
    return sendJson(reply, 201, { queued: ctx.faults.pending().length })
  })

  app.get('/_emulator/faults', async (_request, reply) => sendJson(reply, 200, ctx.faults.pending().map((f) => ({
    ...f,
    ...(f.path instanceof RegExp ? { path: undefined, pathRegExp: f.path.source } : {})
  }))))

  app.delete('/_emulator/faults', async (_request, reply) => {
    ctx.faults.clear()
    return reply.code(204).send()
  })

  app.get('/_emulator/requests', async (_request, reply) => sendJson(reply, 200, ctx.requests))

  app.post('/_emulator/reset', async (_request, reply) => {
    ctx.reset()
    return reply.code(204).send()
  })
}
