/**
 * Replicate's error bodies, verbatim where a real one was captured (REFERENCE §3.1, §4). Each is
 * served as application/problem+json.
 */
export interface InvalidField {
  type: string
  field: string
  description: string
}

export interface Problem {
  status: number
  body: Record<string, unknown>
  headers?: Record<string, string>
}

export const notFound = (): Problem => ({
  status: 404,
  body: { detail: 'The requested resource could not be found.', status: 404 }
})

export const missingToken = (): Problem => ({
  status: 401,
  body: { title: 'Unauthenticated', detail: 'You did not pass an authentication token', status: 401 }
})

export const invalidToken = (): Problem => ({
  status: 401,
  body: { title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 }
})

export const billingRequired = (): Problem => ({
  status: 402,
  body: {
    title: 'Billing required',
    detail: 'You need to set up billing to run this model. Go to https://replicate.com/account/billing#billing to set it up. If you have recently set up billing, please wait a few minutes before trying again.',
    status: 402
  }
})

export const invalidVersion = (): Problem => ({
  status: 422,
  body: {
    title: 'Invalid version or not permitted',
    detail: "The specified version does not exist (or perhaps you don't have permission to use it?)",
    status: 422
  }
})

/** The shape of invalid_fields is real ([CL-val]); the title and detail wording are the emulator's. */
export const validationFailed = (fields: InvalidField[]): Problem => ({
  status: 422,
  body: {
    title: 'Input validation failed',
    detail: fields.map((f) => `- ${f.field || '(root)'}: ${f.description}`).join('\n'),
    status: 422,
    invalid_fields: fields
  }
})

function sizeLabel (bytes: number): string {
  const mib = 1024 * 1024
  if (bytes % mib === 0) return `${bytes / mib}MB`
  if (bytes % 1024 === 0) return `${bytes / 1024}KB`
  return `${bytes} bytes`
}

/** Real body is `{"detail":"Files must be less than 100MB in size"}`, without `status`. */
export const fileTooLarge = (limitBytes: number): Problem => ({
  status: 413,
  body: { detail: `Files must be less than ${sizeLabel(limitBytes)} in size` }
})

export const badRequest = (detail: string, title?: string): Problem => ({
  status: 400,
  body: { ...(title ? { title } : {}), detail, status: 400 }
})

export function throttled (retryAfterSeconds: number, lowCredit = false): Problem {
  const reason = lowCredit
    ? ' Your rate limit for creating predictions is reduced to 6 requests per minute with a burst of 1 requests while you have less than $5.0 in credit.'
    : ''
  return {
    status: 429,
    body: {
      detail: `Request was throttled.${reason} Your rate limit resets in ~${retryAfterSeconds}s.`,
      status: 429,
      retry_after: retryAfterSeconds
    },
    headers: { 'retry-after': String(retryAfterSeconds) }
  }
}

const SERVER_ERROR_DETAILS: Record<number, string> = {
  500: 'Internal server error',
  502: 'Bad gateway',
  503: 'Service unavailable',
  504: 'Gateway timeout'
}

/** Any other status a fault asks for; 5xx bodies are unspecified, the JS client's tests use this one. */
export const genericProblem = (status: number, detail?: string): Problem => ({
  status,
  body: { detail: detail ?? SERVER_ERROR_DETAILS[status] ?? `Request failed with status ${status}`, status }
})
