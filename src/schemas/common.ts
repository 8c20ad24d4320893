import { Type } from '@sinclair/typebox'
import { ERROR_CODE_NAMES, ERROR_CODES } from '../error-codes.ts'
import type { ErrorCode } from '../error-codes.ts'
import { WarningSchema } from './generation.ts'
import type { SchemaOptions, Static, TSchema, TUnsafe } from '@sinclair/typebox'

/** A `$ref` to a registered schema, typed as that schema, so routes keep their static types. */
export function refTo<T extends TSchema> (schema: T, options: SchemaOptions = {}): TUnsafe<Static<T>> {
  if (typeof schema.$id !== 'string') throw new Error('refTo() needs a schema with a $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id, options))
}

/** Schemas shared by every route: the problem document and the prediction resource. */

export const FieldProblemSchema = Type.Object({
  field: Type.String({ description: 'The request field at fault, e.g. `width` or `query.wait`.' }),
  message: Type.String()
}, { $id: 'FieldProblem', additionalProperties: false })

export const ProblemSchema = Type.Object({
  type: Type.String({ description: 'A URI naming the kind of problem: `urn:flux-gateway:problem:<code>`.' }),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.Unsafe<ErrorCode>(Type.String({
    enum: ERROR_CODE_NAMES,
    description: 'Stable machine-readable code. New codes may be added; treat an unknown one by its `status`.\n\n' +
      ERROR_CODE_NAMES.map((c) => `- \`${c}\` (${ERROR_CODES[c].status}): ${ERROR_CODES[c].description}`).join('\n')
  })),
  request_id: Type.String(),
  errors: Type.Optional(Type.Array(refTo(FieldProblemSchema))),
  prediction_id: Type.Optional(Type.String()),
  retry_after: Type.Optional(Type.Integer({ description: 'Seconds to wait before retrying (also in the Retry-After header).' })),
  categories: Type.Optional(Type.Array(Type.String(), { description: 'Content-policy categories that matched (never the matched text).' })),
  upstream_status: Type.Optional(Type.Integer())
}, { $id: 'Problem', additionalProperties: true, description: 'An RFC 9457 problem document, sent as application/problem+json.' })

export const PredictionStatusSchema = Type.Union([
  Type.Literal('starting'),
  Type.Literal('processing'),
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('canceled'),
  Type.Literal('aborted')
], { $id: 'PredictionStatus', description: '`succeeded` as soon as every image is available; `aborted` when the deadline passed before the model started.' })

export const PredictionErrorSchema = Type.Object({
  code: Type.String({ description: '`content_policy_violation`, `prediction_failed` or `deadline_exceeded`; for a create Replicate refused or never answered after an async 202, the error code that create would have had (`upstream_error`, `upstream_timeout`, `rate_limited`, `validation_error`…).' }),
  message: Type.String()
}, { $id: 'PredictionError', additionalProperties: false })

export const PredictionSchema = Type.Object({
  id: Type.String({ description: "The gateway's own id (Replicate's stays internal), given before Replicate is called.", examples: ['gm3qorzdhgbfurvjtvhg6dckhu'] }),
  status: refTo(PredictionStatusSchema),
  model: Type.String({ description: 'The model id from the catalog, e.g. `flux-schnell`.' }),
  created_at: Type.String({ format: 'date-time' }),
  started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  completed_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  output: Type.Union([Type.Array(Type.String({ format: 'uri' })), Type.Null()], { description: 'The images; null until ready. Kept images are signed URLs that need no Authorization header (an `<img src>` can show them) and work for IMAGE_URL_TTL_SECONDS (1 h by default): read the prediction again for fresh ones. Before they are kept, these are Replicate\'s own URLs, which it deletes after about an hour.' }),
  error: Type.Union([refTo(PredictionErrorSchema), Type.Null()]),
  cost_credits: Type.Integer({ minimum: 0, description: 'Credits this prediction costs: reserved while running, settled per delivered image, 0 when it failed or never started.' }),
  warnings: Type.Array(refTo(WarningSchema)),
  urls: Type.Object({
    get: Type.String(),
    cancel: Type.String()
  }, { additionalProperties: false })
}, { $id: 'Prediction', additionalProperties: false })

export type PublicPrediction = Static<typeof PredictionSchema>

export const PredictionListSchema = Type.Object({
  data: Type.Array(refTo(PredictionSchema), { description: 'Newest first.' }),
  next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page. A page may hold fewer than `limit` predictions and still have a next one.' })
}, { $id: 'PredictionList', additionalProperties: false })

export const PredictionIdParamsSchema = Type.Object({
  id: Type.String({ pattern: '^[a-z0-9]{1,64}$', description: 'The prediction id the gateway gave it.' })
}, { additionalProperties: false })

const PROBLEM_DESCRIPTIONS: Record<number, string> = {
  400: 'Invalid request: `errors` names each bad field.',
  401: 'No valid API key: send `Authorization: Bearer <key>`.',
  402: 'The key\'s credit budget cannot cover this (`insufficient_credits`, with the `balance`).',
  403: 'Not allowed (e.g. `model_not_in_plan`).',
  404: 'No such resource.',
  409: 'A request with the same Idempotency-Key is still running; retry it.',
  413: 'The request body is too large.',
  415: 'The request body is not JSON.',
  422: 'Refused by the content policy.',
  429: 'Rate limited: retry after the Retry-After header.',
  502: 'Replicate failed.',
  503: 'The service cannot serve right now.',
  504: 'Replicate did not answer in time.'
}

const codesFor = (status: number): string => ERROR_CODE_NAMES.filter((c) => ERROR_CODES[c].status === status).map((c) => `\`${c}\``).join(', ')

/** Response entries for the problem statuses a route can answer, as application/problem+json. */
export const problemResponses = (...statuses: number[]) =>
  Object.fromEntries(statuses.map((s) => [s, {
    description: `${PROBLEM_DESCRIPTIONS[s] ?? 'Problem.'} Codes: ${codesFor(s)}.`,
    content: { 'application/problem+json': { schema: refTo(ProblemSchema) } }
  }]))

/** The OpenAPI security requirement of routes that need an API key. */
export const BEARER_SECURITY = [{ bearerAuth: [] }]
