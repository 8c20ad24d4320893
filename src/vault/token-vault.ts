import { createHash } from 'node:crypto'
import { AppError } from '../errors.ts'
import type { TokenSource } from '../replicate/client.ts'
import { failureReason } from './failure.ts'
import { EmptySecretError } from './sources.ts'
import type { SecretSource } from './sources.ts'

/**
 * The Replicate token, cached in memory in front of its source (environment, mounted file or Key Vault).
 *
 * - A token is used for `cacheSeconds`; then the next call reads the source again in the background and keeps
 *   serving the token it has until the read succeeds, so Replicate calls never wait on the vault and a vault
 *   outage fails no request while a token is held. Replicate, not the clock, decides when a token is bad.
 * - Concurrent reads share one fetch, each bounded by `fetchTimeoutMs`.
 * - `invalidate` (after Replicate answers 401) drops the token and reads the source again, so a rotated token is
 *   picked up without a restart. If the source still holds the token Replicate refused, it is not asked again
 *   for `rejectedRecheckMs`, so a bad secret cannot turn every request into a vault read.
 * - With no token at all, calls fail at once with TokenUnavailableError (503); the source is tried again at most
 *   once per `failureBackoffMs`.
 *
 * The token never leaves this module except through `getToken`; logs carry the provider, where the secret lives
 * and a failure reason from a fixed vocabulary, never anything the source returned.
 */

export class TokenUnavailableError extends AppError {
  constructor (retryAfterSeconds: number) {
    super('service_unavailable', 'The service has no Replicate API token at the moment, so nothing was sent to Replicate. Try again shortly.', {
      reason: 'replicate_token_missing',
      retry_after: retryAfterSeconds
    })
  }
}

export interface TokenVaultLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
}

export interface TokenVaultOptions {
  source: SecretSource
  cacheSeconds: number
  fetchTimeoutMs: number
  /** After a failed read with no token held, fail fast for this long before reading again. Default 5 s. */
  failureBackoffMs?: number
  /** How long a token Replicate refused is not re-read when the source gave it back unchanged. Default 30 s. */
  rejectedRecheckMs?: number
  now?: () => number
  log?: TokenVaultLogger
}

export type TokenState = 'fresh' | 'stale' | 'rejected' | 'missing'

export interface TokenStatus {
  /** fresh: within its cache time; stale: past it, re-reading failed or is under way; rejected: Replicate refused it; missing: none. */
  state: TokenState
  provider: SecretSource['kind']
  location: string
  fetchedAt: number | null
  /** How old the token held is, in ms. */
  ageMs: number | null
  /** Why the last read failed (a fixed vocabulary, e.g. `forbidden`, `timeout`), null after a success. */
  lastError: string | null
}

export interface TokenVault {
  readonly provider: SecretSource['kind']
  /** What the Replicate client is given: `invalidate` only for sources that can rotate. */
  readonly tokenSource: TokenSource
  getToken: () => Promise<string>
  invalidate: () => void
  status: () => TokenStatus
  /** Reads the source when no token is held (respecting the backoff) and reports the state. */
  ensure: () => Promise<TokenStatus>
}

interface Entry {
  value: string
  digest: string
  fetchedAt: number
}

const noopLog: TokenVaultLogger = { info: () => {}, warn: () => {} }

function digestOf (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

export function createTokenVault (opts: TokenVaultOptions): TokenVault {
  const { source } = opts
  const now = opts.now ?? Date.now
  const log = opts.log ?? noopLog
  const ttlMs = opts.cacheSeconds * 1000
  const failureBackoffMs = opts.failureBackoffMs ?? 5_000
  const rejectedRecheckMs = opts.rejectedRecheckMs ?? 30_000
  const retryAfterSeconds = Math.max(1, Math.ceil(failureBackoffMs / 1000))
  const where = { provider: source.kind, location: source.location }

  let entry: Entry | undefined
  let loadedDigest: string | undefined
  let inFlight: Promise<Entry> | undefined
  let lastFailure: { at: number, reason: string } | undefined
  let rejected: { digest: string, at: number } | undefined

  function load (): Promise<Entry> {
    if (inFlight) return inFlight
    const attempt = (async (): Promise<Entry> => {
      try {
        const value = (await source.read({ signal: AbortSignal.timeout(opts.fetchTimeoutMs) })).trim()
        if (value === '') throw new EmptySecretError(source.location)
        const next: Entry = { value, digest: digestOf(value), fetchedAt: now() }
        const first = loadedDigest === undefined
        const changed = !first && loadedDigest !== next.digest
        entry = next
        loadedDigest = next.digest
        lastFailure = undefined
        if (first || changed) log.info({ ...where, changed }, first ? 'Replicate token loaded' : 'Replicate token changed at its source')
        return next
      } catch (err) {
        const reason = failureReason(err)
        lastFailure = { at: now(), reason }
        log.warn({ ...where, reason, holdingToken: entry !== undefined }, 'Replicate token could not be read')
        throw new TokenUnavailableError(retryAfterSeconds)
      }
    })()
    inFlight = attempt
    const clear = (): void => { if (inFlight === attempt) inFlight = undefined }
    attempt.then(clear, clear)
    return attempt
  }

  function inBackoff (): boolean {
    return lastFailure !== undefined && now() - lastFailure.at < failureBackoffMs
  }

  function refreshInBackground (): void {
    if (inFlight || inBackoff()) return
    // Failures are logged in load(); the token in hand keeps serving meanwhile.
    load().catch(() => {})
  }

  async function getToken (): Promise<string> {
    const current = entry
    if (current) {
      if (now() - current.fetchedAt >= ttlMs) {
        refreshInBackground()
        return current.value
      }
      if (source.changed && !inBackoff() && await source.changed()) {
        try {
          return (await load()).value
        } catch {
          return current.value
        }
      }
      return current.value
    }
    if (!inFlight && inBackoff()) throw new TokenUnavailableError(retryAfterSeconds)
    return (await load()).value
  }

  function invalidate (): void {
    const current = entry
    if (!current) return
    const at = now()
    if (rejected?.digest === current.digest && at - rejected.at < rejectedRecheckMs) return
    rejected = { digest: current.digest, at }
    entry = undefined
    log.warn(where, 'Replicate rejected the token; reading it again')
    // Started (or joined) now, so the retried request waits for this read rather than reusing the refused token.
    load().catch(() => {})
  }

  function status (): TokenStatus {
    const at = now()
    const base = { ...where, fetchedAt: entry?.fetchedAt ?? null, ageMs: entry ? at - entry.fetchedAt : null, lastError: lastFailure?.reason ?? null }
    if (!entry) return { state: 'missing', ...base }
    if (rejected?.digest === entry.digest && at - rejected.at < rejectedRecheckMs) return { state: 'rejected', ...base }
    return { state: at - entry.fetchedAt < ttlMs ? 'fresh' : 'stale', ...base }
  }

  async function ensure (): Promise<TokenStatus> {
    if (!entry) {
      try {
        await getToken()
      } catch {
        // Reported through status().
      }
    } else if (now() - entry.fetchedAt >= ttlMs) {
      refreshInBackground()
    }
    return status()
  }

  const tokenSource: TokenSource = source.rotatable ? { getToken, invalidate } : { getToken }
  return { provider: source.kind, tokenSource, getToken, invalidate, status, ensure }
}
