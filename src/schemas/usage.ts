import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'

const usageRow = {
  predictions: Type.Integer({ minimum: 0 }),
  images: Type.Integer({ minimum: 0 }),
  credits: Type.Integer({ minimum: 0 }),
  usd: Type.Number({ minimum: 0, description: 'Estimated upstream cost in US dollars.' })
}

export const BalanceSchema = Type.Object({
  budget_credits: Type.Union([Type.Integer(), Type.Null()], { description: 'The key\'s budget; null is unlimited.' }),
  period: Type.Union([Type.Literal('month'), Type.Literal('total')], { description: '`month`: the budget renews each calendar month (UTC).' }),
  used_credits: Type.Integer({ description: 'Settled in the period.' }),
  reserved_credits: Type.Integer({ description: 'Held by predictions still running.' }),
  remaining_credits: Type.Union([Type.Integer(), Type.Null()])
}, { $id: 'Balance', additionalProperties: false })

export const UsageSchema = Type.Object({
  key_id: Type.String({ description: '`anonymous` when authentication is off.' }),
  plan: Type.String(),
  since: Type.String({ format: 'date-time' }),
  balance: Type.Ref('Balance'),
  by_model: Type.Array(Type.Object({ model: Type.String(), ...usageRow }, { additionalProperties: false })),
  by_day: Type.Array(Type.Object({ date: Type.String({ format: 'date' }), ...usageRow }, { additionalProperties: false }))
}, { $id: 'Usage', additionalProperties: false, description: 'Settled usage and the current balance of the calling key.' })

export type Usage = Static<typeof UsageSchema>

export const KeyInfoSchema = Type.Object({
  key_id: Type.String({ description: '`anonymous` when authentication is off.' }),
  plan: Type.String(),
  authenticated: Type.Boolean({ description: 'False when the service runs without keys (development only): then every model may be used.' }),
  models: Type.Array(Type.String(), { description: 'The models this key may use, in catalog order.' }),
  default_model: Type.String({ description: 'Used for text-to-image when a request names no model.' }),
  balance: Type.Ref('Balance')
}, { $id: 'KeyInfo', additionalProperties: false, description: 'What the calling key may do: its plan, its models and its balance.' })
