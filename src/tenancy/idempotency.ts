import { createHash } from 'node:crypto'

/** Responses worth replaying. Refusals that may change on retry (auth, budget, limits, conflicts) and 5xx are not kept. */
export function isReplayable (status: number): boolean {
  return status < 500 && ![401, 402, 403, 408, 409, 429, 499].includes(status)
}

/** The same JSON value in any key order gives the same text. */
export function canonicalJson (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

export function sha256 (text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

/** A first attempt holds its key this long; a holder that died is taken over after it. */
export const IDEMPOTENCY_LOCK_MS = 150_000

export const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/

/** Response headers a replay repeats. */
export const REPLAYED_HEADERS = ['content-type', 'location', 'preference-applied'] as const

/**
 * The store key of an Idempotency-Key: per API key and operation (`POST /v1/text-to-image`), so the same key sent over
 * HTTP and on the queue for the same kind of request names one record, and one prediction.
 */
export function idempotencyScope (tenantId: string, operation: string, key: string): string {
  return sha256(`${tenantId}\n${operation}\n${key}`)
}
