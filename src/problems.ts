import { AppError } from './errors.ts'
import { ERROR_CODES } from './error-codes.ts'
import type { ErrorCode } from './error-codes.ts'
import type { FieldProblem } from './errors.ts'
import {
  ContentSafetyError,
  PredictionFailedError,
  ReplicateApiError,
  ReplicateAuthError,
  ReplicateNetworkError,
  ReplicateRateLimitError,
  ReplicateTimeoutError
} from './replicate/errors.ts'

/**
 * The one translation from errors to RFC 9457 problem documents. Domain errors carry their code and
 * status; upstream errors are mapped to gateway codes here; anything else is a 500 whose details
 * stay in the log.
 */
export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  code: ErrorCode
  request_id: string
  errors?: FieldProblem[]
  [k: string]: unknown
}

export interface ProblemResponse {
  status: number
  headers: Record<string, string>
  body: Problem
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  402: 'Payment Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout'
}

export function problemType (code: ErrorCode): string {
  return `urn:flux-gateway:problem:${code}`
}

function answer (body: Problem, headers: Record<string, string> = {}): ProblemResponse {
  return { status: body.status, headers, body }
}

/** A problem document; its status is the catalog's for the code (only `bad_request` passes the framework's own). */
function problem (code: ErrorCode, detail: string, requestId: string, extra: Record<string, unknown> = {}, status: number = ERROR_CODES[code].status): Problem {
  return { type: problemType(code), title: TITLES[status] ?? 'Error', status, detail, code, request_id: requestId, ...extra }
}

/** Fastify's own errors (body parsing, limits, routing) by their FST_ codes. */
function fastifyProblem (err: { code?: string, statusCode?: number, message: string }, requestId: string): ProblemResponse | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return answer(problem('payload_too_large', 'The request body is larger than this endpoint accepts.', requestId))
    case 'FST_REQ_FILE_TOO_LARGE':
      return answer(problem('image_too_large', 'The uploaded image is larger than the service accepts.', requestId))
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return answer(problem('unsupported_media_type', 'Send the request body as application/json.', requestId))
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return answer(problem('validation_error', 'The request body is empty.', requestId, { errors: [{ field: 'body', message: 'must be a JSON object' }] }))
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return answer(problem('validation_error', 'The request body is not valid JSON.', requestId, { errors: [{ field: 'body', message: 'is not valid JSON' }] }))
    default:
      break
  }
  if (err instanceof SyntaxError && (err as { statusCode?: number }).statusCode === 400) {
    return answer(problem('validation_error', 'The request body is not valid JSON.', requestId, { errors: [{ field: 'body', message: 'is not valid JSON' }] }))
  }
  return undefined
}

export function toProblem (err: unknown, requestId: string): ProblemResponse {
  if (err instanceof AppError) {
    const headers: Record<string, string> = {}
    const retryAfter = err.extra.retry_after
    if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter)
    // An error about one request field names it in `errors`, as validation errors do.
    const { field } = err.extra
    const extra = typeof field === 'string' && err.extra.errors === undefined
      ? { ...err.extra, errors: [{ field, message: err.message }] }
      : err.extra
    return answer(problem(err.code, err.message, requestId, extra), headers)
  }
  if (err instanceof ContentSafetyError) {
    return answer(problem('content_policy_violation', 'The model flagged the generated content as unsafe.', requestId, { prediction_id: err.predictionId }))
  }
  if (err instanceof PredictionFailedError) {
    return answer(problem('prediction_failed', `The model failed: ${err.message}`, requestId, { prediction_id: err.predictionId }))
  }
  if (err instanceof ReplicateRateLimitError) {
    const seconds = Math.max(1, err.retryAfterSeconds)
    return answer(problem('rate_limited', 'Replicate is rate limiting this service; try again later.', requestId, { retry_after: seconds }), { 'retry-after': String(seconds) })
  }
  if (err instanceof ReplicateAuthError) {
    return answer(problem('upstream_auth_failed', 'Replicate rejected the service\'s API token.', requestId))
  }
  if (err instanceof ReplicateApiError) {
    if (err.status === 404) return answer(problem('not_found', 'No such prediction.', requestId))
    return answer(problem('upstream_error', `Replicate answered ${err.status}.`, requestId, { upstream_status: err.status }))
  }
  if (err instanceof ReplicateTimeoutError) {
    return answer(problem('upstream_timeout', 'Replicate did not answer in time.', requestId, err.predictionId ? { prediction_id: err.predictionId } : {}))
  }
  if (err instanceof ReplicateNetworkError) {
    return answer(problem('upstream_error', 'Replicate could not be reached.', requestId))
  }
  const fe = err as { code?: string, statusCode?: number, message: string }
  if (err instanceof Error) {
    const mapped = fastifyProblem(fe, requestId)
    if (mapped) return mapped
    // Other framework errors with a 4xx status are safe to describe; anything else is internal.
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return answer(problem('bad_request', fe.message, requestId, {}, fe.statusCode))
    }
  }
  return answer(problem('internal_error', 'An unexpected error occurred.', requestId))
}

/** One Ajv error, as Fastify hands it over (with `verbose`, also the schema it failed). */
export interface AjvProblem {
  instancePath: string
  keyword: string
  params: Record<string, unknown>
  message?: string
  parentSchema?: unknown
}

/**
 * Names people (and other image APIs) use for our fields. An unknown field with one of these names gets a hint,
 * when the suggested field exists where it was sent (num_images → num_outputs on a create, the reverse on a quote).
 */
export const FIELD_ALIASES: Readonly<Record<string, readonly string[]>> = {
  steps: ['num_inference_steps'],
  num_steps: ['num_inference_steps'],
  inference_steps: ['num_inference_steps'],
  guidance: ['guidance_scale'],
  cfg: ['guidance_scale'],
  cfg_scale: ['guidance_scale'],
  n: ['num_outputs', 'num_images'],
  num_images: ['num_outputs'],
  num_outputs: ['num_images'],
  count: ['num_outputs', 'num_images'],
  batch_size: ['num_outputs'],
  strength: ['prompt_strength'],
  image_strength: ['prompt_strength'],
  image: ['image_url'],
  input_image: ['image_url'],
  init_image: ['image_url'],
  url: ['image_url'],
  negative: ['negative_prompt'],
  format: ['output_format'],
  aspect_ratio: ['width', 'height'],
  size: ['width', 'height']
}

/** Lower case without separators, so `numInferenceSteps`, `Num-Inference-Steps` and `num_inference_steps` meet. */
const squash = (name: string) => name.toLowerCase().replace(/[^a-z0-9]/g, '')

/** The known field an unknown one most likely meant, by alias or by spelling apart from case and separators. */
export function suggestField (unknown: string, known: readonly string[]): string | undefined {
  const aliased = FIELD_ALIASES[unknown] ?? FIELD_ALIASES[unknown.toLowerCase()]
  const byAlias = aliased?.filter((f) => known.includes(f))
  if (byAlias && byAlias.length > 0) return byAlias.join(' or ')
  return known.find((f) => squash(f) === squash(unknown))
}

function propertiesOf (schema: unknown): string[] {
  const properties = (schema as { properties?: unknown } | undefined)?.properties
  return properties !== null && typeof properties === 'object' ? Object.keys(properties) : []
}

/**
 * A schema's own wording for a failed keyword, from its `x-error-message`: one sentence, or one per keyword (as
 * ajv-errors' errorMessage). An `x-` extension, so the OpenAPI document stays valid and shows it to client authors.
 */
function schemaMessage (v: AjvProblem): string | undefined {
  const custom = (v.parentSchema as Record<string, unknown> | undefined)?.['x-error-message']
  if (typeof custom === 'string') return custom
  if (custom !== null && typeof custom === 'object') {
    const forKeyword = (custom as Record<string, unknown>)[v.keyword]
    if (typeof forKeyword === 'string') return forKeyword
  }
  return undefined
}

/** Ajv errors from Fastify's validation, one entry per field, with public field names. */
export function fieldProblems (validation: ReadonlyArray<AjvProblem>, context: string): FieldProblem[] {
  const out = new Map<string, string>()
  // A union of literals fails with one `const` error per branch: gather them into one list of allowed values.
  const allowed = new Map<string, unknown[]>()
  for (const v of validation) {
    if (v.keyword === 'const') allowed.set(v.instancePath, [...(allowed.get(v.instancePath) ?? []), v.params.allowedValue])
  }
  for (const v of validation) {
    let path = v.instancePath.replace(/^\//, '').replaceAll('/', '.')
    let message = schemaMessage(v) ?? v.message ?? 'is invalid'
    if (v.keyword === 'required' && typeof v.params.missingProperty === 'string') {
      path = path ? `${path}.${v.params.missingProperty}` : v.params.missingProperty
      message = 'is required'
    } else if (v.keyword === 'additionalProperties' && typeof v.params.additionalProperty === 'string') {
      const name = v.params.additionalProperty
      path = path ? `${path}.${name}` : name
      const suggestion = suggestField(name, propertiesOf(v.parentSchema))
      message = suggestion === undefined ? 'is not a known field' : `is not a known field; did you mean ${suggestion}?`
    } else if (v.keyword === 'enum' && Array.isArray(v.params.allowedValues)) {
      message = `must be one of ${v.params.allowedValues.join(', ')}`
    } else if (v.keyword === 'anyOf' || v.keyword === 'oneOf' || v.keyword === 'const') {
      const values = allowed.get(v.instancePath)
      message = values && values.length > 0 ? `must be one of ${values.join(', ')}` : 'is not one of the allowed values'
    }
    // Fastify calls the query string `querystring`; the documented field prefix is `query` (`query.wait`).
    const part = context === 'querystring' ? 'query' : context
    const field = part === 'body' ? (path || 'body') : (path ? `${part}.${path}` : part)
    if (!out.has(field)) out.set(field, message)
  }
  return [...out].map(([field, message]) => ({ field, message }))
}
