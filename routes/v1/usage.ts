import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, problemResponses, refTo } from '../../src/schemas/common.ts'
import { UsageSchema } from '../../src/schemas/usage.ts'

const usage: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/usage', {
    schema: {
      operationId: 'getUsage',
      tags: ['usage'],
      summary: "The calling key's balance and usage",
      description: 'Credits and estimated USD of settled predictions, by model and by day (UTC), and the balance of the key\'s budget.',
      security: BEARER_SECURITY,
      querystring: Type.Object({
        days: Type.Optional(Type.Integer({ minimum: 1, maximum: 366, default: 30, description: 'How many days back, today included.' }))
      }, { additionalProperties: false }),
      response: { 200: refTo(UsageSchema, { description: 'Balance and usage.' }), ...problemResponses(400, 401, 429) }
    }
  }, async (request) => fastify.tenancy.usage(request.tenant, request.query.days ?? 30))
}

export default usage
