import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { disconnectSignal } from '../../src/http-signal.ts'
import { MODEL_IDS } from '../../src/models/catalog.ts'
import { BEARER_SECURITY, PredictionIdParamsSchema, PredictionListSchema, PredictionSchema, PredictionStatusSchema, problemResponses, refTo } from '../../src/schemas/common.ts'
import { listHistory } from '../../src/tenancy/history.ts'

const predictions: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/predictions', {
    schema: {
      operationId: 'listPredictions',
      tags: ['predictions'],
      summary: "The calling key's predictions, newest first",
      description: 'A page at a time: follow `next_cursor` until it is null. Each item has the shape GET /v1/predictions/{id} returns, ' +
        'as last recorded (a running one may have moved on: GET it for the latest). Only the calling key\'s own predictions are listed.',
      security: BEARER_SECURITY,
      querystring: Type.Object({
        limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20, description: 'Page size.' })),
        cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: '`next_cursor` from the previous page.' })),
        status: Type.Optional(refTo(PredictionStatusSchema)),
        model: Type.Optional(Type.Union(MODEL_IDS.map((id) => Type.Literal(id)), { description: 'Only this model\'s predictions.' })),
        created_after: Type.Optional(Type.String({ format: 'date-time', description: 'Only predictions created strictly after this instant.' })),
        created_before: Type.Optional(Type.String({ format: 'date-time', description: 'Only predictions created strictly before this instant.' }))
      }, { additionalProperties: false }),
      response: { 200: refTo(PredictionListSchema, { description: 'A page of predictions.' }), ...problemResponses(400, 401, 429) }
    }
  }, async (request) => {
    const q = request.query
    const page = await listHistory(fastify.state, request.tenant, {
      limit: q.limit ?? 20, cursor: q.cursor, status: q.status, model: q.model, createdAfter: q.created_after, createdBefore: q.created_before
    }, fastify.publicBaseUrl(request))
    return { ...page, data: page.data.map((p) => fastify.imageUrls.signOutput(p)) }
  })

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
    // Only a long-poll watches for the caller leaving; a plain read answers before it could.
    const wait = request.query.wait
    const prediction = await fastify.tenancy.get(request.tenant, request.params.id, { waitSeconds: wait, signal: wait ? disconnectSignal(reply) : undefined, baseUrl: fastify.publicBaseUrl(request) })
    return fastify.imageUrls.signOutput(prediction)
  })

  fastify.get('/predictions/:id/webhook-deliveries', {
    schema: {
      operationId: 'listWebhookDeliveries',
      tags: ['predictions'],
      summary: "A prediction's webhook deliveries and their outcomes",
      description: 'Each event sent to the `webhook` the create named, with every attempt and the receiver\'s answer, oldest first. ' +
        "Only the key that created the prediction can see them; another key's prediction is 404.",
      security: BEARER_SECURITY,
      params: PredictionIdParamsSchema,
      response: { 200: Type.Ref('WebhookDeliveryList', { description: 'The deliveries; empty when the create named no webhook.' }), ...problemResponses(400, 401, 404, 429) }
    }
  }, async (request) => {
    return { data: await fastify.tenancy.webhookDeliveries(request.tenant, request.params.id) }
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
