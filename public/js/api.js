// Calls to the API on this page's own origin, with the key kept for this tab only.

const KEY_STORAGE = 'flux-gateway.api-key'

export function storedKey () {
  try {
    return sessionStorage.getItem(KEY_STORAGE) ?? ''
  } catch {
    return ''
  }
}

export function storeKey (key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key)
  else sessionStorage.removeItem(KEY_STORAGE)
}

export function authHeaders () {
  const key = storedKey()
  return key ? { authorization: `Bearer ${key}` } : {}
}

/** A problem+json answer (or a failure to reach the API, shaped like one) as an Error. */
export class ProblemError extends Error {
  constructor (problem, status, headers) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`)
    this.problem = problem
    this.status = status
    this.headers = headers
  }
}

/**
 * One API call. Resolves with `{ status, headers, body }` for a 2xx answer; rejects with a ProblemError for
 * anything else, including a network failure (code `network_error`) and an answer that is not JSON.
 */
export async function api (method, path, { body, headers = {}, signal } = {}) {
  const init = { method, headers: { accept: 'application/json', ...authHeaders(), ...headers }, signal }
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  let res
  try {
    res = await fetch(path, init)
  } catch (err) {
    if (err.name === 'AbortError') throw err
    throw new ProblemError({ code: 'network_error', title: 'The service could not be reached', detail: 'Check your connection and that the service is running, then try again.' }, 0, new Headers())
  }
  const text = await res.text()
  let parsed
  try {
    parsed = text ? JSON.parse(text) : undefined
  } catch {
    parsed = undefined
  }
  if (res.ok) return { status: res.status, headers: res.headers, body: parsed }
  const problem = parsed && typeof parsed === 'object'
    ? parsed
    : { code: `http_${res.status}`, title: res.statusText || `HTTP ${res.status}`, detail: 'The service answered with something other than a problem document.' }
  throw new ProblemError(problem, res.status, res.headers)
}
