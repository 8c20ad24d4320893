/**
 * Every `code` a problem document can carry, with its HTTP status and what it means. This is the one list:
 * AppError takes its status from here, the OpenAPI document's `Problem.code` is an enum of these keys, and
 * `npm run openapi` writes the README's table from it (`--check` fails when either drifts).
 */
export const ERROR_CODES = {
  validation_error: { status: 400, description: 'A field is missing, unknown or out of range; `errors` names each one.' },
  url_not_allowed: { status: 400, description: 'An `image_url` (or a redirect it leads to), or a `webhook`, points at an address the service does not connect to: private, loopback or cloud metadata.' },
  unknown_plan: { status: 400, description: 'A plan name that does not exist.' },
  bad_request: { status: 400, description: 'A request the HTTP layer refused for another reason; `status` says which (400, 405, …).' },
  unauthorized: { status: 401, description: 'No valid API key: send `Authorization: Bearer <key>`.' },
  invalid_signature: { status: 401, description: 'A Replicate webhook whose signature does not verify.' },
  insufficient_credits: { status: 402, description: 'The key\'s credits cannot cover the request; `balance` says what is left.' },
  model_not_in_plan: { status: 403, description: 'The key\'s plan does not include the model or the kind of request.' },
  signature_invalid: { status: 403, description: 'A signed image URL that expired or was altered: read the prediction again for fresh URLs.' },
  origin_not_allowed: { status: 403, description: 'A browser origin that `CORS_ORIGINS` does not list.' },
  not_found: { status: 404, description: 'No such prediction, image or route (another key\'s predictions are not found either).' },
  idempotency_in_flight: { status: 409, description: 'A request with the same `Idempotency-Key` is still running; retry it.' },
  payload_too_large: { status: 413, description: 'The request body is larger than the endpoint accepts.' },
  image_too_large: { status: 413, description: 'The input image is larger than the service accepts.' },
  unsupported_media_type: { status: 415, description: 'The body is not JSON, or the input image is not a PNG, JPEG, GIF or WebP of the type it declares.' },
  content_policy_violation: { status: 422, description: 'The prompt was refused by the content policy (with `categories`), or the model flagged its output (with `prediction_id`).' },
  idempotency_key_reused: { status: 422, description: 'An `Idempotency-Key` already used with a different request.' },
  rate_limited: { status: 429, description: 'Too many requests, by this key\'s rate limit or Replicate\'s; wait `Retry-After` seconds.' },
  upstream_rate_limited: { status: 429, description: 'Replicate\'s create rate is used up for longer than the request may wait; wait `Retry-After` seconds.' },
  internal_error: { status: 500, description: 'An unexpected error; the log has the details under the `request_id`.' },
  upstream_error: { status: 502, description: 'Replicate failed or could not be reached; `upstream_status` gives its status when it answered.' },
  prediction_failed: { status: 502, description: 'The model failed; `prediction_id` names the prediction.' },
  image_fetch_failed: { status: 502, description: 'The input image could not be downloaded.' },
  service_unavailable: { status: 503, description: 'The service cannot serve now: shutting down, or `reason` says `replicate_token_missing` or `moderation_unavailable`.' },
  upstream_auth_failed: { status: 503, description: 'Replicate rejected the service\'s API token.' },
  upstream_queue_full: { status: 503, description: 'Too many creates are waiting for Replicate\'s rate limit; wait `Retry-After` seconds.' },
  upstream_timeout: { status: 504, description: 'Replicate did not answer in time.' },
  image_fetch_timeout: { status: 504, description: 'The input image did not download in time.' }
} as const satisfies Record<string, { status: number, description: string }>

export type ErrorCode = keyof typeof ERROR_CODES

export const ERROR_CODE_NAMES = Object.keys(ERROR_CODES) as ErrorCode[]

/** The README's table of codes, in the catalog's order (by status). */
export function errorCodeTable (): string {
  const rows = ERROR_CODE_NAMES.map((code) => `| \`${code}\` | ${ERROR_CODES[code].status} | ${ERROR_CODES[code].description.replaceAll('|', '\\|')} |`)
  return ['| code | status | meaning |', '|---|---|---|', ...rows].join('\n')
}
