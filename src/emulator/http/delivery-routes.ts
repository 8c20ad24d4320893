import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from '../context.ts'
import { notFound } from '../problems.ts'
import { sendProblem } from './reply.ts'

/**
 * Output files, as replicate.delivery serves them (REFERENCE §6): public, cacheable for an hour,
 * CORS-open, with an ETag; rendered on first fetch; 404 once the prediction's data is removed.
 */
export function registerDeliveryRoutes (app: FastifyInstance, ctx: EmulatorContext): void {
  app.get<{ Params: { id: string, file: string } }>('/delivery/:id/:file', async (request, reply) => {
    const { id, file } = request.params
    const spec = ctx.engine.delivery(id, file)
    if (!spec) return sendProblem(reply, notFound())
    const image = await ctx.images.get(`${id}/${file}`, spec)
    reply
      .header('cache-control', 'public,max-age=3600')
      .header('access-control-allow-origin', '*')
      .header('etag', image.etag)
    if (request.headers['if-none-match'] === image.etag) return reply.code(304).send()
    return reply.code(200).type(image.contentType).header('content-length', String(image.bytes.length)).send(image.bytes)
  })
}
