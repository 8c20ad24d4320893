import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { listModels, quote } from '../../src/models/catalog.ts'
import { BEARER_SECURITY, problemResponses, refTo } from '../../src/schemas/common.ts'
import { ModelListSchema, QuoteRequestSchema, QuoteSchema } from '../../src/schemas/generation.ts'

const catalog: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/models', {
    schema: {
      operationId: 'listModels',
      tags: ['catalog'],
      security: BEARER_SECURITY,
      summary: 'The model catalog',
      description: 'Every model with its tier, price, typical speed, accepted ranges and capabilities.',
      response: { 200: refTo(ModelListSchema, { description: 'The catalog.' }), ...problemResponses(401, 429) }
    }
  }, async () => ({ models: listModels() }))

  fastify.post('/quotes', {
    schema: {
      operationId: 'createQuote',
      tags: ['catalog'],
      security: BEARER_SECURITY,
      summary: 'Price a number of images',
      body: refTo(QuoteRequestSchema),
      response: { 200: refTo(QuoteSchema, { description: 'The price in credits and in upstream USD.' }), ...problemResponses(400, 401, 413, 415, 429) }
    }
  }, async (request) => quote(request.body.model, request.body.num_images ?? 1))
}

export default catalog
