import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { fileView, parseUpload } from '../files.ts'
import { badRequest, fileTooLarge, notFound } from '../problems.ts'
import { sendJson, sendProblem } from './reply.ts'

/** `POST/GET /v1/files`, `GET/DELETE /v1/files/{id}` (REFERENCE §1.8). */
export function registerFileRoutes (app: FastifyInstance, ctx: EmulatorContext): void {
  const baseUrl = (): string => `${ctx.publicUrl()}/v1`
  const precision = (): 'ms' | 'us' | 'ns' => ctx.options.pitfalls.timestampPrecision ?? 'ms'

  app.post('/v1/files', async (request, reply) => {
    const contentType = request.headers['content-type'] ?? ''
    if (!contentType.startsWith('multipart/form-data') || !Buffer.isBuffer(request.body)) {
      return sendProblem(reply, badRequest('Files must be uploaded as multipart/form-data with a content part'))
    }
    const result = await parseUpload(request.body, contentType)
    if (!result.ok) return sendProblem(reply, badRequest(result.detail))
    if (result.upload.bytes.length > ctx.options.maxFileBytes) return sendProblem(reply, fileTooLarge(ctx.options.maxFileBytes))
    return sendJson(reply, 201, fileView(ctx.files.create(result.upload), baseUrl(), precision()))
  })

  app.get('/v1/files', async (_request, reply) => sendJson(reply, 200, {
    next: null,
    previous: null,
    results: ctx.files.list().map((file) => fileView(file, baseUrl(), precision()))
  }))

  app.get<{ Params: { id: string } }>('/v1/files/:id', async (request, reply) => {
    const file = ctx.files.get(request.params.id)
    return file ? sendJson(reply, 200, fileView(file, baseUrl(), precision())) : sendProblem(reply, notFound())
  })

  app.delete<{ Params: { id: string } }>('/v1/files/:id', async (request, reply) => {
    return ctx.files.delete(request.params.id) ? reply.code(204).send() : sendProblem(reply, notFound())
  })
}
