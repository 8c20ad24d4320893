import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { disconnectSignal } from '../../src/http-signal.ts'
import { PredictionIdParamsSchema, PredictionSchema, problemResponses, refTo } from '../../src/schemas/common.ts'

const predictions: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/predictions/:id', {
    schema: {
      operationId: 'getPrediction',
      tags: ['predictions'],
      summary: 'Get a prediction, optionally waiting for it to finish',
      params: PredictionIdParamsSchema,
      querystring: Type.Object({
        wait: Type.Optional(Type.Integer({ minimum: 0, maximum: 60, description: 'Long-poll: wait up to this many seconds, answering as soon as the prediction finishes.' }))
      }, { additionalProperties: false }),
      response: { 200: refTo(PredictionSchema, { description: 'The prediction.' }), ...problemResponses(400, 404, 429, 502, 503, 504) }
    }
  }, async (request, reply) => {
    return fastify.predictions.get(request.params.id, { waitSeconds: request.query.wait, signal: disconnectSignal(reply) })
  })

  fastify.post('/predictions/:id/cancel', {
    schema: {
      operationId: 'cancelPrediction',
      tags: ['predictions'],
      summary: 'Cancel a prediction',
      description: 'Stops a running prediction. A finished one is returned unchanged.',
      params: PredictionIdParamsSchema,
      response: { 200: refTo(PredictionSchema, { description: 'The prediction after the cancel.' }), ...problemResponses(400, 404, 429, 502, 503, 504) }
    }
  }, async (request) => {
    return fastify.predictions.cancel(request.params.id)
  })
}

export default predictions
