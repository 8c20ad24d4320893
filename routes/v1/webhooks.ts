import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import type { Prediction } from '../../src/replicate/types.ts'
import { ProblemSchema, problemResponses, refTo } from '../../src/schemas/common.ts'

const rawBodies = new WeakMap<FastifyRequest, string>()

const webhooks: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, opts) => {
  // The signature covers the exact bytes, so this route keeps them (the parser is scoped to this file).
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    rawBodies.set(request, body as string)
    try {
      done(null, JSON.parse(body as string))
    } catch {
      // Judged after the signature: a signed body that is not JSON then fails the body schema (400).
      done(null, body)
    }
  })

  fastify.post('/webhooks/replicate', {
    // A delivery echoes the prediction's input, which may hold an image-to-image input as a data URI.
    bodyLimit: Math.max(opts.config.BODY_LIMIT_BYTES, Math.ceil(opts.config.IMAGE_MAX_BYTES * 4 / 3) + 1024 * 1024),
    config: { public: true },
    schema: {
      operationId: 'receiveReplicateWebhook',
      tags: ['predictions'],
      summary: 'Receive a Replicate webhook',
      description: 'Called by Replicate, not by API clients, when REPLICATE_WEBHOOKS is on: a finished prediction is finalized at once (images kept, credits settled). Authenticated by its Standard Webhooks signature rather than an API key.',
      security: [],
      querystring: Type.Object({
        prediction: Type.Optional(Type.String({ pattern: '^[a-z0-9]{1,64}$', description: 'Our prediction id, added to the URL each create hands Replicate.' }))
      }),
      headers: Type.Object({
        'webhook-id': Type.Optional(Type.String({ description: 'Unique per message, the same across retries.' })),
        'webhook-timestamp': Type.Optional(Type.String({ description: 'Unix seconds; more than 300 s away from our clock is refused.' })),
        'webhook-signature': Type.Optional(Type.String({ description: 'Space-separated `v1,<base64 HMAC-SHA256>` entries.' }))
      }),
      body: Type.Object({
        id: Type.String({ minLength: 1, description: "Replicate's prediction id." }),
        status: Type.String({ description: '`starting`, `processing`, `succeeded`, `failed` or `canceled`.' })
      }, { additionalProperties: true, description: 'The prediction, as Replicate\'s `GET /v1/predictions/{id}` returns it.' }),
      response: {
        202: { description: 'The prediction ended: it is being finalized.', type: 'null' },
        204: { description: 'Nothing to do: a duplicate delivery, a prediction that has not ended, is already final or is not ours.', type: 'null' },
        ...problemResponses(400, 404, 413, 415, 503),
        401: { description: 'The webhook signature is missing or wrong, or its timestamp is stale.', content: { 'application/problem+json': { schema: refTo(ProblemSchema) } } }
      }
    },
    preValidation: async (request) => {
      const receiver = fastify.webhookReceiver
      if (!receiver) throw new AppError('not_found', 'Replicate webhooks are off (REPLICATE_WEBHOOKS).')
      const verdict = await receiver.verify(request.headers, rawBodies.get(request) ?? '')
      if (verdict.ok) return
      request.log.warn({ reason: verdict.reason, webhook_id: request.headers['webhook-id'] }, 'webhook refused')
      throw new AppError('invalid_signature', 'The webhook signature is missing or wrong, or its timestamp is stale.')
    }
  }, async (request, reply) => {
    const receiver = fastify.webhookReceiver
    if (!receiver) throw new AppError('not_found', 'Replicate webhooks are off (REPLICATE_WEBHOOKS).')
    // The signature vouches that this is Replicate's prediction object.
    const prediction = request.body as unknown as Prediction
    const outcome = await receiver.accept(String(request.headers['webhook-id']), prediction, request.query.prediction)
    request.log.info({ predictionId: request.query.prediction, upstreamId: prediction.id, status: prediction.status, outcome }, 'webhook received')
    return reply.code(outcome === 'finalizing' ? 202 : 204).send()
  })
}

export default webhooks
