/**
 * Errors of the Replicate client. Each has a stable `code` (undici's habit), so callers branch on
 * codes rather than messages. The gateway maps them onto its public problem codes.
 */

export interface InvalidField {
  type?: string
  field?: string
  description?: string
}

export class ReplicateError extends Error {
  readonly code: string = 'REPLICATE_ERROR'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A non-2xx answer from Replicate, with the problem+json members it carried. */
export class ReplicateApiError extends ReplicateError {
  override readonly code: string = 'REPLICATE_API_ERROR'
  readonly status: number
  readonly title: string | undefined
  readonly detail: string | undefined
  readonly invalidFields: InvalidField[]

  constructor (status: number, body: { title?: string, detail?: string, invalid_fields?: InvalidField[] } = {}, options?: ErrorOptions) {
    super(`Replicate answered ${status}${body.title ? ` ${body.title}` : ''}${body.detail ? `: ${body.detail}` : ''}`, options)
    this.status = status
    this.title = body.title
    this.detail = body.detail
    this.invalidFields = Array.isArray(body.invalid_fields) ? body.invalid_fields : []
  }
}

/** 401: the token is missing, wrong or revoked. */
export class ReplicateAuthError extends ReplicateApiError {
  override readonly code = 'REPLICATE_AUTH_ERROR'
}

/** 429 that outlasted the retry budget, or whose Retry-After is longer than we are willing to wait. */
export class ReplicateRateLimitError extends ReplicateApiError {
  override readonly code = 'REPLICATE_RATE_LIMITED'
  readonly retryAfterSeconds: number
  constructor (retryAfterSeconds: number, body: { title?: string, detail?: string } = {}) {
    super(429, body)
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** The network failed: no HTTP answer at all. `sent` says whether the request may have reached Replicate. */
export class ReplicateNetworkError extends ReplicateError {
  override readonly code = 'REPLICATE_NETWORK_ERROR'
  readonly sent: boolean
  constructor (message: string, sent: boolean, options?: ErrorOptions) {
    super(message, options)
    this.sent = sent
  }
}

/** A call or a wait ran out of time. Carries the prediction id when one exists, so it can be looked up later. */
export class ReplicateTimeoutError extends ReplicateError {
  override readonly code = 'REPLICATE_TIMEOUT'
  readonly predictionId: string | undefined
  constructor (message: string, predictionId?: string, options?: ErrorOptions) {
    super(message, options)
    this.predictionId = predictionId
  }
}

/** The model refused or filtered its output for safety (NSFW, "flagged as sensitive (E005)"). Not retryable. */
export class ContentSafetyError extends ReplicateError {
  override readonly code = 'REPLICATE_CONTENT_SAFETY'
  readonly predictionId: string
  constructor (message: string, predictionId: string) {
    super(message)
    this.predictionId = predictionId
  }
}

/** The prediction ended `failed` for any other reason. */
export class PredictionFailedError extends ReplicateError {
  override readonly code = 'REPLICATE_PREDICTION_FAILED'
  readonly predictionId: string
  constructor (message: string, predictionId: string) {
    super(message)
    this.predictionId = predictionId
  }
}
