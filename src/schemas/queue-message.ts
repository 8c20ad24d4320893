import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { refTo } from './common.ts'
import { IDEMPOTENCY_KEY } from '../tenancy/idempotency.ts'
import { ImageToImageRequestSchema, TextToImageRequestSchema } from './generation.ts'

/**
 * The generation request a backend puts on the Service Bus queue the worker consumes: the body of the
 * matching HTTP route, on behalf of an API key. Published in the OpenAPI document's components
 * (`GenerationMessage`), so senders generate their types from the same place as HTTP clients.
 */

export const ReplyToSchema = Type.Union([
  Type.Object({
    queue: Type.String({ minLength: 1, maxLength: 260, pattern: '^[A-Za-z0-9._/-]+$', description: 'A queue in the same namespace: the prediction is sent there with the request\'s correlationId.' })
  }, { additionalProperties: false }),
  Type.Object({
    webhook: Type.String({ maxLength: 2048, pattern: '^https?://[^\\s]+$', description: 'A URL the prediction is POSTed to as JSON.' })
  }, { additionalProperties: false })
], { $id: 'GenerationReplyTo', description: 'Where the finished prediction (with signed image URLs) goes. Absent: nowhere; read it with GET /v1/predictions/{id}.' })

const common = {
  api_key_id: Type.String({ pattern: '^[0-9a-f]{16}$', description: 'The id of the API key the request is made for (the 16 hex digits after `fgw_`): its plan, budget and ledger apply.', examples: ['3f9c0a1b2c3d4e5f'] }),
  idempotency_key: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: IDEMPOTENCY_KEY.source,
    description: 'As the HTTP `Idempotency-Key` (and shared with it, per key and kind). Absent: the message\'s `messageId`.'
  })),
  reply_to: Type.Optional(refTo(ReplyToSchema))
}

export const GenerationMessageSchema = Type.Union([
  Type.Object({ kind: Type.Literal('text-to-image'), request: refTo(TextToImageRequestSchema), ...common }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('image-to-image'), request: refTo(ImageToImageRequestSchema), ...common }, { additionalProperties: false })
], {
  $id: 'GenerationMessage',
  description: 'The JSON body of a generation request on the worker\'s Service Bus queue. `request` is the body of ' +
    'POST /v1/text-to-image or /v1/image-to-image, as `kind` says. Set the message\'s `messageId` (the idempotency key ' +
    'when none is given) and, for a reply, its `correlationId`.'
})

/** The message with `request` left open: checked first, so `request` can be judged by the schema its kind names. */
export const GenerationEnvelopeSchema = Type.Object({
  kind: Type.Union([Type.Literal('text-to-image'), Type.Literal('image-to-image')]),
  request: Type.Object({}, { additionalProperties: true }),
  ...common
}, { additionalProperties: false })

export type GenerationMessage = Static<typeof GenerationMessageSchema>
export type ReplyTo = Static<typeof ReplyToSchema>
