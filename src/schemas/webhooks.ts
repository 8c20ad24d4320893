import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { WEBHOOK_EVENTS } from './generation.ts'

/** What a caller sees of its webhook deliveries: each event sent, and every attempt with the receiver's answer. */

const timestamp = (description: string) => Type.String({ format: 'date-time', description })

export const WebhookDeliverySchema = Type.Object({
  id: Type.String({ description: 'The `webhook-id` header of every attempt of this delivery.', examples: ['msg_pexwihwkgi4cor43gfkfdm6p2g_completed'] }),
  event: Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e)), { description: 'The event delivered.' }),
  url: Type.String({ description: 'Where it is sent.' }),
  status: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')], {
    description: '`pending`: not yet answered with a 2xx, another attempt is due; `delivered`: a 2xx came; `failed`: given up, after the last retry (or the URL was refused at connect time).'
  }),
  created_at: timestamp('When the event happened.'),
  next_attempt_at: Type.Union([timestamp('When the next attempt is due.'), Type.Null()], { description: 'When the next attempt is due; null once delivered or failed.' }),
  attempts: Type.Array(Type.Object({
    at: timestamp('When the attempt was made.'),
    status: Type.Union([Type.Integer(), Type.Null()], { description: 'The receiver\'s HTTP status; null when none came.' }),
    error: Type.Union([Type.String(), Type.Null()], { description: 'Why the attempt did not count as delivered; null when it did.' })
  }, { additionalProperties: false }), { description: 'Oldest first.' })
}, { $id: 'WebhookDelivery', additionalProperties: false, description: 'One event of a prediction sent to its webhook.' })

export type PublicWebhookDelivery = Static<typeof WebhookDeliverySchema>

export const WebhookDeliveryListSchema = Type.Object({
  data: Type.Array(Type.Ref('WebhookDelivery'), { description: 'Oldest first.' })
}, { $id: 'WebhookDeliveryList', additionalProperties: false })
