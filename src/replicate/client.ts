import { Pool } from 'undici'
import { traceHeaders, withSpan } from '../telemetry.ts'
import type { Dispatcher } from 'undici'
import {
  ReplicateApiError,
  ReplicateAuthError,
  ReplicateNetworkError,
  ReplicateRateLimitError,
  ReplicateTimeoutError
} from './errors.ts'
import type { InvalidField } from './errors.ts'
import { inputHash, isSettled } from './predictions.ts'
import {
  DEFAULT_RETRY_POLICY,
  abortableSleep,
  errorCode,
  parseRetryAfter,
  provablyNotSent,
  withRetries
} from './retry.ts'
import type { AttemptOutcome, RequestKind, RetryPolicy } from './retry.ts'
import type { Account, ModelInfo, Prediction, WebhookEvent } from './types.ts'

export const DEFAULT_BASE_URL = 'https://api.replicate.com/v1'

/** Where the token comes from. A source that can `invalidate` gets one fresh try after a 401 (token rotation). */
export interface TokenSource {
  getToken: () => string | Promise<string>
  invalidate?: () => void
}

export interface ClientLogger {
  warn: (obj: object, msg?: string) => void
  debug?: (obj: object, msg?: string) => void
}

export interface ReplicateClientOptions {
  token: string | TokenSource
  baseUrl?: string
  /** Connections in the keep-alive pool for reads, cancels and lists; bounded so a burst cannot open sockets without limit. */
  connections?: number
  /**
   * Connections for creates, a pool of their own: a sync create holds its connection for up to a minute, and in a
   * shared pool enough of them would starve every read and cancel queued behind.
   */
  createConnections?: number
  /** Timeout of each non-sync call (headers and body alike). */
  timeoutMs?: number
  connectTimeoutMs?: number
  keepAliveTimeoutMs?: number
  /** A sync create waits `Prefer: wait=N` seconds; its HTTP timeout is N s plus this margin. */
  syncMarginMs?: number
  retry?: Partial<RetryPolicy>
  userAgent?: string
  logger?: ClientLogger
  /** Injected in tests to record and skip waits; defaults to a real, abortable sleep. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
  random?: () => number
  now?: () => number
  /** Told of every attempt's outcome, retries included (metrics). */
  onAttempt?: (attempt: { operation: ReplicateOperation, status: number | 'network' | 'timeout' }) => void
}

/** What a request to Replicate is for, as metrics name it. */
export type ReplicateOperation = 'create' | 'get' | 'cancel' | 'list' | 'account' | 'model' | 'webhook_secret'

export interface CreatePredictionOptions {
  /** `true` = Replicate's default hold (60 s); a number of seconds is clamped to 1–60. Absent = answer at once. */
  wait?: boolean | number
  /** Hard deadline for the prediction upstream: seconds (min 5) or a duration such as `2m` or `1h30m`. */
  cancelAfter?: number | string
  webhook?: string
  webhookEventsFilter?: WebhookEvent[]
  signal?: AbortSignal
  /**
   * After an abort: told what became of the prediction, once known: Replicate's answer to the cancel, or the create's
   * own answer when it had already finished. Never called when the prediction was not found.
   */
  onAbandoned?: (prediction: Prediction) => void
}

export interface WaitOptions {
  maxWaitTime?: number
  initialWait?: number
  pollInterval?: number
  backoffFactor?: number
  maxInterval?: number
  /** Fraction of each interval added at random. */
  jitter?: number
  /** Cancel the prediction upstream when the wait runs out (the default: nobody is waiting for it any more). */
  cancelOnTimeout?: boolean
  signal?: AbortSignal
  onPoll?: (prediction: Prediction, delayMs: number | null) => void
}

export interface ListPredictionsOptions extends CallOptions {
  /** Inclusive lower bound on `created_at`. */
  createdAfter?: Date
  /** Exclusive upper bound on `created_at`. */
  createdBefore?: Date
}

export interface CallOptions {
  signal?: AbortSignal
}

export interface ReplicateClient {
  readonly baseUrl: string
  createPrediction: (model: string, input: Record<string, unknown>, opts?: CreatePredictionOptions) => Promise<Prediction>
  getPrediction: (id: string, opts?: CallOptions) => Promise<Prediction>
  cancelPrediction: (id: string, opts?: CallOptions) => Promise<Prediction>
  /** Every prediction of the account created in the window, newest first, across all pages. */
  listPredictions: (opts?: ListPredictionsOptions) => Promise<Prediction[]>
  waitForCompletion: (id: string, opts?: WaitOptions) => Promise<Prediction>
  getModel: (ref: string, opts?: CallOptions) => Promise<ModelInfo>
  getAccount: (opts?: CallOptions) => Promise<Account>
  /** The account's `whsec_…` webhook signing key, read once and then cached (a failed read is retried next time). */
  getWebhookSecret: () => Promise<string>
  close: () => Promise<void>
}

const MAX_SYNC_WAIT_SECONDS = 60
/** A bound on cursor-following, against a server that never stops answering with a `next`. */
const MAX_LIST_PAGES = 200
/** While an abandoned create is held, how often Replicate's list is searched for it, and how far back. */
const HELD_CREATE_LOOKUP_MS = 1_000
const HELD_CREATE_SKEW_MS = 60_000
const MIN_CANCEL_AFTER_SECONDS = 5

function cancelAfterHeader (value: number | string): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError('cancelAfter must be a positive number of seconds')
    return `${Math.max(MIN_CANCEL_AFTER_SECONDS, Math.ceil(value))}s`
  }
  if (!/^(\d+h)?(\d+m)?(\d+s)?$|^\d+$/.test(value) || value === '') throw new RangeError(`cancelAfter "${value}" is not a duration such as 30s, 5m or 1h30m`)
  return value
}

function waitSeconds (wait: boolean | number): number {
  if (wait === true) return MAX_SYNC_WAIT_SECONDS
  return Math.min(MAX_SYNC_WAIT_SECONDS, Math.max(1, Math.ceil(Number(wait))))
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

interface RawRequest {
  method: 'GET' | 'POST'
  path: string
  operation: ReplicateOperation
  kind: RequestKind
  body?: unknown
  headers?: Record<string, string>
  timeoutMs: number
  /** Abort the HTTP exchange itself with this signal (reads). Creates are never torn down mid-flight. */
  requestSignal?: AbortSignal | undefined
  /** Stops the retry loop's waits. */
  loopSignal?: AbortSignal | undefined
}

function parseJson (text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

export function createReplicateClient (opts: ReplicateClientOptions): ReplicateClient {
  const baseUrl = (opts.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '')
  const url = new URL(baseUrl)
  const basePath = url.pathname.replace(/\/+$/, '')
  const tokenSource: TokenSource = typeof opts.token === 'string' ? { getToken: () => opts.token as string } : opts.token
  const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, ...opts.retry }
  const timeoutMs = opts.timeoutMs ?? 30_000
  const syncMarginMs = opts.syncMarginMs ?? 5_000
  const sleep = opts.sleep ?? abortableSleep
  const now = opts.now ?? Date.now
  const random = opts.random ?? Math.random
  const userAgent = opts.userAgent ?? 'flux-gateway'
  const poolOf = (connections: number): Pool => new Pool(url.origin, {
    connections,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    keepAliveTimeout: opts.keepAliveTimeoutMs ?? 30_000,
    // Per-request timeouts are always set below; these only guard against a forgotten one.
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs
  })
  const pool = poolOf(opts.connections ?? 16)
  const createPool = poolOf(opts.createConnections ?? 1024)

  type Outcome = AttemptOutcome<{ status: number, body: unknown, headers: Dispatcher.ResponseData['headers'] }>

  /** One HTTP exchange, in a span of its own when tracing is on (the `traceparent` it sends names that span). */
  function attempt (req: RawRequest): Promise<Outcome> {
    return withSpan(`replicate ${req.operation}`, { 'http.request.method': req.method, 'replicate.operation': req.operation }, async (span) => {
      const outcome = await exchange(req)
      if (outcome.kind === 'done') {
        span.set('http.response.status_code', outcome.value.status)
        const id = (outcome.value.body as { id?: unknown } | null)?.id
        if (typeof id === 'string') span.set('replicate.prediction_id', id)
      } else if (outcome.kind === 'retryable-status') {
        span.set('http.response.status_code', outcome.status)
      }
      return outcome
    })
  }

  async function exchange (req: RawRequest): Promise<Outcome> {
    const token = await tokenSource.getToken()
    const headers: Record<string, string> = {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      'user-agent': userAgent,
      ...traceHeaders(),
      ...req.headers
    }
    let payload: string | undefined
    if (req.body !== undefined) {
      payload = JSON.stringify(req.body)
      headers['content-type'] = 'application/json'
    }
    let res: Dispatcher.ResponseData
    let text: string
    try {
      res = await (req.operation === 'create' ? createPool : pool).request({
        method: req.method,
        path: basePath + req.path,
        headers,
        body: payload,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
        signal: req.requestSignal
      })
      text = await res.body.text()
    } catch (err) {
      if (req.requestSignal?.aborted) return { kind: 'fatal', error: req.requestSignal.reason as Error }
      const code = errorCode(err)
      opts.onAttempt?.({ operation: req.operation, status: code && TIMEOUT_CODES.has(code) ? 'timeout' : 'network' })
      if (code && TIMEOUT_CODES.has(code)) {
        return { kind: 'network', error: err, wrapped: new ReplicateTimeoutError(`${req.method} ${req.path} timed out after ${req.timeoutMs} ms`, undefined, { cause: err }) }
      }
      const sent = !provablyNotSent(err)
      return { kind: 'network', error: err, wrapped: new ReplicateNetworkError(`${req.method} ${req.path} failed: ${code ?? (err as Error).message}`, sent, { cause: err }) }
    }
    const body = parseJson(text)
    const status = res.statusCode
    opts.onAttempt?.({ operation: req.operation, status })
    if (status >= 200 && status < 300) return { kind: 'done', value: { status, body, headers: res.headers } }
    const problem = (body && typeof body === 'object' ? body : {}) as { title?: string, detail?: string, invalid_fields?: InvalidField[], retry_after?: unknown }
    if (status === 401) return { kind: 'fatal', error: new ReplicateAuthError(status, problem) }
    if (status === 429 || status >= 500) {
      const headerMs = parseRetryAfter(res.headers['retry-after'], now())
      const bodySeconds = typeof problem.retry_after === 'number' ? problem.retry_after : undefined
      const retryAfterSeconds = Math.ceil(Math.max(headerMs ?? 0, (bodySeconds ?? 0) * 1000) / 1000)
      const error = status === 429 ? new ReplicateRateLimitError(retryAfterSeconds, problem) : new ReplicateApiError(status, problem)
      return { kind: 'retryable-status', status, hints: { retryAfterHeaderMs: headerMs, bodyRetryAfterSeconds: bodySeconds }, error }
    }
    return { kind: 'fatal', error: new ReplicateApiError(status, problem) }
  }

  function send (req: RawRequest) {
    return withRetries((n) => attempt(req).then((outcome) => {
      if (n > 1) opts.logger?.debug?.({ path: req.path, attempt: n }, 'replicate request retried')
      return outcome
    }), {
      kind: req.kind,
      policy,
      signal: req.loopSignal,
      sleep,
      random,
      onRetry: ({ attempt: n, delayMs, reason }) => {
        opts.logger?.warn({ method: req.method, path: req.path, attempt: n, delayMs, reason }, 'replicate request will be retried')
      },
      tooLongWait: (delayMs, outcome) => {
        const seconds = Math.ceil(delayMs / 1000)
        const e = outcome.error
        return e instanceof ReplicateRateLimitError ? new ReplicateRateLimitError(seconds, { title: e.title, detail: e.detail }) : e
      }
    })
  }

  /** One fresh token after a 401, for sources that can rotate; then the 401 stands. */
  async function call (req: RawRequest) {
    try {
      return await send(req)
    } catch (err) {
      if (!(err instanceof ReplicateAuthError) || !tokenSource.invalidate) throw err
      tokenSource.invalidate()
      opts.logger?.warn({ path: req.path }, 'replicate rejected the token; retrying once with a fresh one')
      return await send(req)
    }
  }

  async function getPrediction (id: string, o: CallOptions = {}): Promise<Prediction> {
    const res = await call({ method: 'GET', path: `/predictions/${encodeURIComponent(id)}`, operation: 'get', kind: 'idempotent', timeoutMs, requestSignal: o.signal, loopSignal: o.signal })
    return res.body as Prediction
  }

  async function cancelPrediction (id: string, o: CallOptions = {}): Promise<Prediction> {
    const res = await call({ method: 'POST', path: `/predictions/${encodeURIComponent(id)}/cancel`, operation: 'cancel', kind: 'idempotent', timeoutMs, requestSignal: o.signal, loopSignal: o.signal })
    return res.body as Prediction
  }

  async function listPredictions (o: ListPredictionsOptions = {}): Promise<Prediction[]> {
    const query = new URLSearchParams()
    if (o.createdAfter) query.set('created_after', o.createdAfter.toISOString())
    if (o.createdBefore) query.set('created_before', o.createdBefore.toISOString())
    let path: string | null = `/predictions${query.size > 0 ? `?${query}` : ''}`
    const all: Prediction[] = []
    for (let page = 0; path !== null && page < MAX_LIST_PAGES; page++) {
      const res = await call({ method: 'GET', path, operation: 'list', kind: 'idempotent', timeoutMs, requestSignal: o.signal, loopSignal: o.signal })
      const body = (res.body ?? {}) as { results?: Prediction[], next?: string | null }
      all.push(...(body.results ?? []))
      path = null
      if (body.next) {
        const next = new URL(body.next, url)
        // The token goes only where the client was pointed.
        if (next.origin !== url.origin || !next.pathname.startsWith(`${basePath}/`)) {
          throw new ReplicateApiError(res.status, { title: 'Unexpected next page', detail: `The list points elsewhere: ${next.origin}${next.pathname}` })
        }
        path = next.pathname.slice(basePath.length) + next.search
      }
    }
    // A cut-off listing would read as "not there"; better no answer.
    if (path !== null) throw new ReplicateApiError(200, { title: 'Too many pages', detail: `The list goes on past ${MAX_LIST_PAGES} pages; narrow the window.` })
    return all
  }

  async function createPrediction (model: string, input: Record<string, unknown>, o: CreatePredictionOptions = {}): Promise<Prediction> {
    const [owner, name, ...rest] = model.split('/')
    if (!owner || !name || rest.length > 0) throw new TypeError(`model must be "owner/name", got "${model}"`)
    const headers: Record<string, string> = {}
    let callTimeout = timeoutMs
    if (o.wait !== undefined && o.wait !== false) {
      const seconds = waitSeconds(o.wait)
      headers.prefer = `wait=${seconds}`
      callTimeout = seconds * 1000 + syncMarginMs
    }
    if (o.cancelAfter !== undefined) headers['cancel-after'] = cancelAfterHeader(o.cancelAfter)
    const body: Record<string, unknown> = { input }
    if (o.webhook !== undefined) {
      // Replicate does not follow redirects and wants an absolute URL; fail here rather than upstream.
      body.webhook = new URL(o.webhook).toString()
      if (o.webhookEventsFilter) body.webhook_events_filter = o.webhookEventsFilter
    }
    o.signal?.throwIfAborted()
    // The create is never torn down mid-flight: once sent, the only way to stop paying for it is to
    // learn its id and cancel it. So an abort answers the caller at once, and the response, when it
    // comes, is used to cancel the prediction.
    const pending = call({
      method: 'POST',
      path: `/models/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/predictions`,
      operation: 'create',
      kind: 'create',
      body,
      headers,
      timeoutMs: callTimeout,
      loopSignal: o.signal
    }).then((res) => res.body as Prediction)
    if (!o.signal) return pending
    const signal = o.signal
    const sentAt = now()
    return await new Promise<Prediction>((resolve, reject) => {
      const onAbort = (): void => {
        reject(signal.reason)
        let canceled: string | undefined
        const cancelOnce = async (id: string, how: string): Promise<void> => {
          if (canceled !== undefined) return
          canceled = id
          const after = await cancelPrediction(id)
          opts.logger?.warn({ predictionId: id, found: how }, 'caller went away during create; prediction canceled upstream')
          o.onAbandoned?.(after)
        }
        const answered = new AbortController()
        void pending.finally(() => answered.abort()).catch(() => {})
        // While the create is held (up to a minute in sync mode) its id is unknown; Replicate lists the prediction
        // with the input it echoes, so it is looked for by model and input and canceled without waiting.
        const hash = inputHash(input)
        void (async () => {
          while (!answered.signal.aborted && canceled === undefined && now() - sentAt < callTimeout) {
            // A real timer, not the injectable retry sleep: a test that skips retry waits must not turn this into a busy loop.
            await abortableSleep(HELD_CREATE_LOOKUP_MS, answered.signal).catch(() => {})
            if (answered.signal.aborted) return
            const listed = await listPredictions({ createdAfter: new Date(sentAt - HELD_CREATE_SKEW_MS) }).catch(() => [])
            const ours = listed.filter((p) => p.model === model && !isSettled(p) && inputHash(p.input) === hash)
            // A twin (another caller's create with the same model and input) would match too: only a single match
            // is ours for sure; otherwise the create's answer names it.
            if (ours.length === 1) await cancelOnce(ours[0]!.id, 'listed')
          }
        })().catch((err: unknown) => {
          opts.logger?.warn({ err: { message: (err as Error)?.message } }, 'abandoned create could not be looked for')
        })
        pending.then((prediction) => {
          if (canceled === prediction.id) return
          if (isSettled(prediction)) return o.onAbandoned?.(prediction)
          return cancelOnce(prediction.id, 'answered')
        }).catch((err: unknown) => {
          opts.logger?.warn({ err: { message: (err as Error)?.message, code: (err as { code?: string })?.code } }, 'abandoned create could not be canceled')
        })
      }
      signal.addEventListener('abort', onAbort, { once: true })
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  async function waitForCompletion (id: string, o: WaitOptions = {}): Promise<Prediction> {
    const maxWait = o.maxWaitTime ?? 60_000
    const factor = o.backoffFactor ?? 1.5
    const maxInterval = o.maxInterval ?? 5_000
    const jitter = o.jitter ?? 0.1
    const deadline = now() + maxWait
    let interval = o.pollInterval ?? 500
    const first = Math.min(o.initialWait ?? 1_000, maxWait)
    if (first > 0) await sleep(first, o.signal)
    for (;;) {
      const prediction = await getPrediction(id, { signal: o.signal })
      if (isSettled(prediction)) {
        o.onPoll?.(prediction, null)
        return prediction
      }
      const remaining = deadline - now()
      if (remaining <= 0) break
      const delay = Math.max(0, Math.min(Math.round(interval * (1 + jitter * random())), maxInterval, remaining))
      o.onPoll?.(prediction, delay)
      await sleep(delay, o.signal)
      interval = Math.min(interval * factor, maxInterval)
    }
    if (o.cancelOnTimeout ?? true) {
      try {
        await cancelPrediction(id)
      } catch (err) {
        opts.logger?.warn({ predictionId: id, err: { message: (err as Error).message } }, 'timed-out prediction could not be canceled')
      }
    }
    throw new ReplicateTimeoutError(`prediction ${id} did not finish within ${maxWait} ms`, id)
  }

  async function getModel (ref: string, o: CallOptions = {}): Promise<ModelInfo> {
    const [owner, name] = ref.split('/')
    if (!owner || !name) throw new TypeError(`model must be "owner/name", got "${ref}"`)
    const res = await call({ method: 'GET', path: `/models/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`, operation: 'model', kind: 'idempotent', timeoutMs, requestSignal: o.signal, loopSignal: o.signal })
    return res.body as ModelInfo
  }

  async function getAccount (o: CallOptions = {}): Promise<Account> {
    const res = await call({ method: 'GET', path: '/account', operation: 'account', kind: 'idempotent', timeoutMs, requestSignal: o.signal, loopSignal: o.signal })
    return res.body as Account
  }

  let webhookSecret: Promise<string> | undefined
  function getWebhookSecret (): Promise<string> {
    if (webhookSecret) return webhookSecret
    const pending = call({ method: 'GET', path: '/webhooks/default/secret', operation: 'webhook_secret', kind: 'idempotent', timeoutMs }).then((res) => {
      const key = (res.body as { key?: unknown } | undefined)?.key
      if (typeof key !== 'string' || !key.startsWith('whsec_')) throw new ReplicateApiError(res.status, { title: 'Unexpected webhook secret', detail: 'The answer carries no whsec_ key.' })
      return key
    })
    webhookSecret = pending
    pending.catch(() => { if (webhookSecret === pending) webhookSecret = undefined })
    return pending
  }

  return {
    baseUrl,
    createPrediction,
    getPrediction,
    cancelPrediction,
    listPredictions,
    waitForCompletion,
    getModel,
    getAccount,
    getWebhookSecret,
    close: async () => { await Promise.all([pool.close(), createPool.close()]) }
  }
}
