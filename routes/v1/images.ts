import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, problemResponses } from '../../src/schemas/common.ts'

const images: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/predictions/:id/images/:index', {
    schema: {
      operationId: 'getPredictionImage',
      tags: ['predictions'],
      summary: 'A kept output image',
      description: 'The images of a succeeded prediction are copied into our storage when it ends, so they outlive Replicate\'s one-hour URLs. Only the key that created the prediction may fetch them.',
      security: BEARER_SECURITY,
      params: Type.Object({
        id: Type.String({ pattern: '^[a-z0-9]{1,64}$', description: "Replicate's prediction id." }),
        index: Type.Integer({ minimum: 0, maximum: 15, description: 'The position in `output`.' })
      }, { additionalProperties: false }),
      response: {
        200: {
          description: 'The image.',
          content: {
            'image/webp': { schema: { type: 'string', format: 'binary' } },
            'image/png': { schema: { type: 'string', format: 'binary' } },
            'image/jpeg': { schema: { type: 'string', format: 'binary' } }
          }
        },
        ...problemResponses(400, 401, 404, 429)
      }
    }
  }, async (request, reply) => {
    const image = await fastify.tenancy.image(request.tenant, request.params.id, request.params.index)
    return reply
      .type(image.contentType)
      .header('content-length', String(image.size))
      .header('cache-control', 'private, max-age=86400, immutable')
      .header('x-content-type-options', 'nosniff')
      .send(image.body)
  })
}

export default images
