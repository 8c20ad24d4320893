import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { FieldProblemSchema, PredictionErrorSchema, PredictionListSchema, PredictionSchema, PredictionStatusSchema, ProblemSchema } from '../../src/schemas/common.ts'
import { GENERATION_SCHEMAS } from '../../src/schemas/generation.ts'
import { OPENAI_SCHEMAS } from '../../src/openai/schemas.ts'
import { HealthSchema, ReadinessSchema } from '../../src/schemas/health.ts'
import { GenerationMessageSchema, ReplyToSchema } from '../../src/schemas/queue-message.ts'
import { BalanceSchema, KeyInfoSchema, UsageSchema } from '../../src/schemas/usage.ts'
import { WebhookDeliveryListSchema, WebhookDeliverySchema } from '../../src/schemas/webhooks.ts'

/** Registers the shared schemas once, so routes reference them by `$id` and OpenAPI names them. */
export default fp(async function schemas (fastify: FastifyInstance) {
  // Referenced schemas come before the ones that reference them.
  const shared = [
    ...GENERATION_SCHEMAS,
    FieldProblemSchema,
    ProblemSchema,
    PredictionStatusSchema,
    PredictionErrorSchema,
    PredictionSchema,
    PredictionListSchema,
    WebhookDeliverySchema,
    WebhookDeliveryListSchema,
    ReadinessSchema,
    HealthSchema,
    BalanceSchema,
    UsageSchema,
    KeyInfoSchema,
    ...OPENAI_SCHEMAS,
    ReplyToSchema,
    GenerationMessageSchema
  ]
  for (const schema of shared) fastify.addSchema(schema)
}, { name: 'schemas' })
