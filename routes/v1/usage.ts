import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BEARER_SECURITY, problemResponses, refTo } from '../../src/schemas/common.ts'
import { KeyInfoSchema, UsageSchema } from '../../src/schemas/usage.ts'
import { getModelForPlan, MODEL_IDS, modelsForPlan } from '../../src/models/catalog.ts'

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

  fastify.get('/key', {
    schema: {
      operationId: 'getKey',
      tags: ['usage'],
      summary: 'The calling key: its plan, the models it may use, its balance',
      description: 'What a client needs to offer only what the key can do (the playground fills its model list from here).',
      security: BEARER_SECURITY,
      response: { 200: refTo(KeyInfoSchema, { description: 'The key.' }), ...problemResponses(401, 429) }
    }
  }, async (request) => {
    const tenant = request.tenant
    return {
      key_id: tenant.id,
      plan: tenant.plan,
      authenticated: !tenant.anonymous,
      // Without keys every model may be used; the plan only picks the default.
      models: tenant.anonymous ? [...MODEL_IDS] : [...modelsForPlan(tenant.plan)],
      default_model: getModelForPlan(tenant.plan),
      balance: await fastify.state.balance(tenant.id, tenant.budget, Date.now())
    }
  })
}

export default usage
