/**
 * An Azure SDK RestError, by shape: what @azure/core-rest-pipeline's isRestError checks too, without importing the
 * pipeline on every start-up for one predicate.
 */
export function isRestError (err: unknown): err is Error & { statusCode?: number } {
  return err instanceof Error && err.name === 'RestError'
}

/**
 * Why a call to Azure (or a secret file read) failed, in our own words: a fixed vocabulary built from the HTTP
 * status, the error class or the local errno. Never the message or body the service sent back, so it is safe to
 * log and to show in readiness, whatever a vault or an error page puts in its answer.
 */
export function failureReason (err: unknown): string {
  if (isRestError(err)) return err.statusCode === undefined ? 'unreachable' : statusReason(err.statusCode)
  const name = (err as { name?: unknown })?.name
  if (name === 'AbortError' || name === 'TimeoutError') return 'timeout'
  // @azure/identity's errors, by class name (the module is loaded lazily, so no instanceof).
  if (name === 'CredentialUnavailableError' || name === 'AggregateAuthenticationError') return 'credential_unavailable'
  if (name === 'AuthenticationError' || name === 'AuthenticationRequiredError') return 'authentication_failed'
  if (name === 'EmptySecretError') return 'empty_secret'
  const code = (err as { code?: unknown })?.code
  if (code === 'ENOENT') return 'file_not_found'
  if (code === 'EACCES' || code === 'EPERM') return 'file_not_readable'
  if (code === 'EISDIR') return 'not_a_file'
  return 'error'
}

/** The failure reason for an HTTP error status from an Azure service. */
export function statusReason (status: number): string {
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'forbidden'
  if (status === 404) return 'not_found'
  if (status === 408) return 'timeout'
  if (status === 429) return 'throttled'
  if (status >= 500) return `server_error_${status}`
  return `http_${status}`
}
