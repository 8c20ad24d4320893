/**
 * The one retry loop of the Replicate client.
 *
 * What may be retried depends on whether repeating the request can cost money:
 * - reads and cancels (`idempotent`) retry on 429, 5xx and any network error;
 * - prediction creates (`create`) retry only on 429 and on network errors that prove the request
 *   never left this process (connection refused, DNS failure, connect timeout). A create that may
 *   have been received (reset after sending, a timeout waiting for the answer, a 5xx) is never
 *   repeated: Replicate has no idempotency key, so a second create is a second bill.
 *
 * Each delay is the largest of the Retry-After header, the body's `retry_after` and capped
 * exponential backoff with jitter.
 */

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number
  /** Backoff before retry n (1-based) is base·2^(n-1), capped, then jittered. */
  baseDelayMs: number
  maxDelayMs: number
  /** Fraction of the backoff added at random (0.2 → up to +20 %); spreads a crowd of clients apart. */
  jitter: number
  /** A server that asks us to wait longer than this is not waited for: the rate-limit error surfaces. */
  maxRetryAfterMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  jitter: 0.2,
  maxRetryAfterMs: 60_000
}

export type RequestKind = 'create' | 'idempotent'

/** Network error codes raised before a single byte of the request could reach the server. */
const NEVER_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_NONAME',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT'
])

export function errorCode (err: unknown): string | undefined {
  let e: unknown = err
  // undici wraps system errors; look through `cause` a few levels.
  for (let i = 0; i < 4 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** True when the failure proves the request never reached the server. */
export function provablyNotSent (err: unknown): boolean {
  const code = errorCode(err)
  return code !== undefined && NEVER_SENT_CODES.has(code)
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter (value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (text === '') return undefined
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  // Only an HTTP-date (IMF-fixdate and its obsolete forms) is a date here; Date.parse would read "-3" as a year.
  if (!/^[A-Za-z]{3},? /.test(text)) return undefined
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - now)
}

/** Capped exponential backoff with jitter for retry number `retry` (1-based). */
export function backoffDelay (retry: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exp = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1))
  return Math.round(Math.min(policy.maxDelayMs, exp * (1 + policy.jitter * random())))
}

export interface RetryHints {
  retryAfterHeaderMs?: number | undefined
  bodyRetryAfterSeconds?: number | undefined
}

/** The wait before retry `retry`: the largest of what the server asked and our own backoff. */
export function retryDelay (retry: number, hints: RetryHints, policy: RetryPolicy, random?: () => number): number {
  const body = hints.bodyRetryAfterSeconds !== undefined && Number.isFinite(hints.bodyRetryAfterSeconds)
    ? hints.bodyRetryAfterSeconds * 1000
    : 0
  return Math.max(hints.retryAfterHeaderMs ?? 0, body, backoffDelay(retry, policy, random))
}

/** What one attempt produced, as the loop sees it. */
export type AttemptOutcome<T> =
  | { kind: 'done', value: T }
  /** A retryable HTTP answer (429, 5xx) with the server's hints, and the error to throw if we stop. */
  | { kind: 'retryable-status', status: number, hints: RetryHints, error: Error }
  /** A network failure (no HTTP answer). */
  | { kind: 'network', error: unknown, wrapped: Error }
  /** Anything else: thrown as is. */
  | { kind: 'fatal', error: Error }

export interface RetryContext {
  kind: RequestKind
  policy: RetryPolicy
  signal?: AbortSignal | undefined
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  random?: () => number
  /** Called before each wait, e.g. to log it. */
  onRetry?: (info: { attempt: number, delayMs: number, reason: string }) => void
  /** Builds the error thrown when the server wants a longer wait than the policy allows. */
  tooLongWait?: (delayMs: number, outcome: AttemptOutcome<unknown> & { kind: 'retryable-status' }) => Error
}

function shouldRetry (outcome: AttemptOutcome<unknown>, kind: RequestKind): boolean {
  if (outcome.kind === 'retryable-status') return kind === 'idempotent' || outcome.status === 429
  if (outcome.kind === 'network') return kind === 'idempotent' || provablyNotSent(outcome.error)
  return false
}

export async function withRetries<T> (attempt: (n: number) => Promise<AttemptOutcome<T>>, ctx: RetryContext): Promise<T> {
  for (let n = 1; ; n++) {
    ctx.signal?.throwIfAborted()
    const outcome = await attempt(n)
    if (outcome.kind === 'done') return outcome.value
    if (outcome.kind === 'fatal') throw outcome.error
    const error = outcome.kind === 'network' ? outcome.wrapped : outcome.error
    if (!shouldRetry(outcome, ctx.kind) || n >= ctx.policy.maxAttempts) throw error
    const hints = outcome.kind === 'retryable-status' ? outcome.hints : {}
    const delayMs = retryDelay(n, hints, ctx.policy, ctx.random)
    if (outcome.kind === 'retryable-status' && delayMs > ctx.policy.maxRetryAfterMs) {
      throw ctx.tooLongWait ? ctx.tooLongWait(delayMs, outcome) : error
    }
    ctx.onRetry?.({
      attempt: n,
      delayMs,
      reason: outcome.kind === 'network' ? `network error ${errorCode(outcome.error) ?? ''}`.trim() : `status ${outcome.status}`
    })
    await ctx.sleep(delayMs, ctx.signal)
  }
}

/** A sleep that an AbortSignal ends at once (with the signal's reason). Uses the global timers so fake timers work. */
export function abortableSleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
