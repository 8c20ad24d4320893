import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { disconnectSignal } from '../../src/http-signal.ts'
import { BEARER_SECURITY, PredictionIdParamsSchema, PredictionSchema, problemResponses, refTo } from '../../src/schemas/common.ts'

const predictions: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/predictions/:id', {
    schema: {
      operationId: 'getPrediction',
      tags: ['predictions'],
      summary: 'Get a prediction, optionally waiting for it to finish',
      description: "Only the key that created a prediction can see it; another key's prediction is 404.",
      security: BEARER_SECURITY,
      params: PredictionIdParamsSchema,
      querystring: Type.Object({
        wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: 'Long-poll: wait up to this many seconds, answering as soon as the prediction finishes.' }))
      }, { additionalProperties: false }),
      response: { 200: refTo(PredictionSchema, { description: 'The prediction.' }), ...problemResponses(400, 401, 404, 429, 502, 503, 504) }
    }
  }, async (request, reply) => {
    const prediction = await fastify.tenancy.get(request.tenant, request.params.id, { waitSeconds: request.query.wait, signal: disconnectSignal(reply), baseUrl: fastify.publicBaseUrl(request) })
    return fastify.imageUrls.signOutput(prediction)
  })

  fastify.post('/predictions/:id/cancel', {
    schema: {
      operationId: 'cancelPrediction',
      tags: ['predictions'],
      summary: 'Cancel a prediction',
      description: 'Stops a running prediction; its credits are released when it had not started. A finished one is returned unchanged.',
      security: BEARER_SECURITY,
      params: PredictionIdParamsSchema,
      response: { 200: refTo(PredictionSchema, { description: 'The prediction after the cancel.' }), ...problemResponses(400, 401, 404, 429, 502, 503, 504) }
    }
  }, async (request) => {
    return fastify.imageUrls.signOutput(await fastify.tenancy.cancel(request.tenant, request.params.id, { baseUrl: fastify.publicBaseUrl(request) }))
  })
}

export default predictions
