/**
 * The durable state of the gateway behind one interface: API keys, prediction records (with their
 * owner), the usage ledger, idempotency records, rate-limit buckets and leases. Two implementations
 * pass one conformance suite (test/stores): embedded SQLite for one instance, Redis for many.
 *
 * Every operation that decides something (reserve, settle, idempotency begin, a rate-limit take, a
 * lease) is atomic in the store itself, so concurrent requests on any number of instances agree.
 */

export type BudgetPeriod = 'month' | 'total'

export interface ApiKeyRecord {
  /** Public identifier, also the middle part of the key (`fgw_<id>_<secret>`). */
  id: string
  /** sha256 of the secret part, hex. The key itself is never stored. */
  secretHash: string
  name: string
  plan: string
  /** Credits the key may spend per `budgetPeriod`; null is unlimited. */
  budgetCredits: number | null
  budgetPeriod: BudgetPeriod
  /** Requests per minute; null is unlimited. */
  rateLimitPerMinute: number | null
  createdAt: number
  revokedAt: number | null
  /** Where this key's predictions' events go when a create names no `webhook`. */
  webhook?: string | null
}

export interface KeptImage {
  /** Storage key of the kept copy. */
  key: string
  contentType: string
  size: number
}

/** What the gateway records about a prediction beyond Replicate's object. */
export interface PredictionEntry {
  id: string
  /** The API key id that created it; `anonymous` when auth is off. */
  owner: string
  model: string
  creditsPerImage: number
  numImages: number
  warnings: unknown[]
  createdAt: number
  /** The ledger entry holding this prediction's credits. */
  ledgerId: string
  /** The public prediction at its last sighting (terminal once `finalized`), with upstream output URLs. */
  last: unknown
  /** The images are kept and the ledger settled; nothing more to track. */
  finalized: boolean
  kept: KeptImage[]
  /** Where the caller asked for the prediction's events, and the origin its image URLs are built on. */
  webhook?: { url: string, events: WebhookEvent[], baseUrl: string }
  /**
   * Replicate's id for it, once the create has answered (or the prediction was found by its input). Internal: callers
   * only ever see `id`, the gateway's own. Absent on records made before the gateway had ids of its own: there `id`
   * is Replicate's.
   */
  upstreamId?: string
  /** The upstream create until it has answered: queued (not sent yet) or held (sent, no answer yet). */
  create?: UpstreamCreate
  /** A cancel was asked while the create was queued or held on another instance: its tracker stops it. */
  cancelRequested?: boolean
  /** Bumped by every change; orders the change feed and the event stream. Absent (0) on older records. */
  seq?: number
}

/**
 * A create accepted but not yet answered by Replicate. Queued ones (`sentAt` null) are sent by whichever instance
 * tracks the prediction, after a restart too. A held one whose answer never came (its process died) is found again
 * by model and input in Replicate's list, since the id was never learned.
 */
export interface UpstreamCreate {
  replicateModel: string
  /** What is sent; dropped once the create has answered (an image-to-image input can be megabytes). */
  input?: Record<string, unknown>
  /** sha256 of the canonical JSON of the input. */
  inputHash: string
  /** When it was sent (ms epoch); null while queued. Written before the request goes, so a restart never sends it twice. */
  sentAt: number | null
}

export type LedgerState = 'reserved' | 'settled' | 'released'

export interface LedgerEntry {
  id: string
  keyId: string
  model: string
  state: LedgerState
  /** Credits held while reserved; the final credits once settled; 0 once released. */
  credits: number
  usd: number
  images: number
  /** The budget month the entry counts against (`YYYY-MM`, UTC), fixed at reservation. */
  month: string
  createdAt: number
  settledAt: number | null
}

export interface Budget {
  credits: number
  period: BudgetPeriod
}

export interface ReserveRequest {
  id: string
  keyId: string
  model: string
  credits: number
  usd: number
  images: number
  budget: Budget | null
  now: number
}

export interface Balance {
  budget_credits: number | null
  period: BudgetPeriod
  /** Settled credits in the period. */
  used_credits: number
  /** Credits held by predictions still running. */
  reserved_credits: number
  remaining_credits: number | null
}

/** A balance from what a store counted; both stores build it here, so they report it alike. */
export function toBalance (budget: Budget | null, used: number, reserved: number): Balance {
  return {
    budget_credits: budget?.credits ?? null,
    period: budget?.period ?? 'month',
    used_credits: used,
    reserved_credits: reserved,
    remaining_credits: budget ? Math.max(0, budget.credits - used - reserved) : null
  }
}

export type ReserveResult = { ok: true } | { ok: false, balance: Balance }

export interface UsageRow {
  predictions: number
  images: number
  credits: number
  usd: number
}

export interface UsageReport {
  byModel: Record<string, UsageRow>
  /** `YYYY-MM-DD` (UTC, the day the usage settled) → totals. */
  byDay: Record<string, UsageRow>
}

export interface StoredResponse {
  status: number
  headers: Record<string, string>
  body: string
}

export type IdempotencyBegin =
  | { state: 'started' }
  | { state: 'in_flight' }
  | { state: 'mismatch' }
  | { state: 'completed', response: StoredResponse }

export interface RateTake {
  allowed: boolean
  /** When allowed: how long the caller must wait before acting (0 for inbound limits). */
  waitMs: number
  /** When refused: how long until a request would be allowed (within `maxWaitMs`). */
  retryAfterMs: number
  remaining: number
  /** Until the bucket is full again. */
  resetMs: number
}

export interface RateSpec {
  /** Tokens per minute. */
  perMinute: number
  /** Bucket size. */
  burst: number
  /** A request may be scheduled this far into the future instead of refused (upstream shaping). */
  maxWaitMs: number
}

/** Where a page of a key's predictions continues: after this one, newest first. */
export interface PredictionCursor {
  createdAt: number
  id: string
}

export interface PredictionQuery {
  /** Page size (the caller bounds it). */
  limit: number
  cursor?: PredictionCursor | undefined
  /** The public status as last recorded (`starting`, `succeeded`…). */
  status?: string | undefined
  model?: string | undefined
  /** Created strictly after / before these instants (ms epoch). */
  createdAfter?: number | undefined
  createdBefore?: number | undefined
}

export interface PredictionPage {
  entries: PredictionEntry[]
  /** Where the next page starts; null when there is none. A page may hold fewer than `limit` entries and still have a next. */
  next: PredictionCursor | null
}

export type WebhookEvent = 'start' | 'output' | 'completed'

export interface WebhookAttempt {
  at: number
  /** The receiver's HTTP status; null when none came (refused, unreachable, timed out). */
  status: number | null
  error: string | null
}

/** One event of one prediction to its caller's webhook, with every attempt made so far. */
export interface WebhookDelivery {
  /** The `webhook-id`: the same on every attempt, so receivers can drop duplicates. */
  id: string
  predictionId: string
  owner: string
  url: string
  event: WebhookEvent
  /** The prediction as the event saw it; image URLs are signed afresh at each attempt. */
  payload: unknown
  state: 'pending' | 'delivered' | 'failed'
  attempts: WebhookAttempt[]
  /** When the next attempt is due (ms epoch), while pending. */
  nextAt: number
  createdAt: number
}

export interface StateStore {
  readonly kind: 'sqlite' | 'redis'

  insertKey: (key: ApiKeyRecord) => Promise<void>
  getKey: (id: string) => Promise<ApiKeyRecord | undefined>
  listKeys: () => Promise<ApiKeyRecord[]>
  /** False when there is no such key or it was already revoked. */
  revokeKey: (id: string, now: number) => Promise<boolean>
  countActiveKeys: () => Promise<number>
  /** Sets (or, with null, clears) a key's default webhook. False when there is no such key. */
  setKeyWebhook: (id: string, url: string | null) => Promise<boolean>
  /** Every key ever created, revoked ones included: once this is above 0, authentication stays on. */
  countKeys: () => Promise<number>

  /**
   * Writes the entry; false (and nothing written) when the stored one is finalized and this one is not: a final
   * prediction never goes back, whichever instance writes late.
   */
  putPrediction: (entry: PredictionEntry) => Promise<boolean>
  getPrediction: (id: string) => Promise<PredictionEntry | undefined>
  /** Every prediction not yet finalized, oldest first. */
  listUnfinalized: () => Promise<PredictionEntry[]>
  /** One owner's predictions, newest first (ties by id, descending), filtered, a page at a time. */
  listPredictions: (owner: string, query: PredictionQuery) => Promise<PredictionPage>

  /** Records a new delivery; false (and nothing changed) when one with its id exists. */
  addWebhookDelivery: (delivery: WebhookDelivery) => Promise<boolean>
  /** Writes a delivery after an attempt. */
  putWebhookDelivery: (delivery: WebhookDelivery) => Promise<void>
  getWebhookDelivery: (id: string) => Promise<WebhookDelivery | undefined>
  /** One prediction's deliveries, oldest first. */
  listWebhookDeliveries: (predictionId: string) => Promise<WebhookDelivery[]>
  /** Pending deliveries due by `now`, soonest first, at most `limit`. */
  listDueWebhookDeliveries: (now: number, limit: number) => Promise<WebhookDelivery[]>

  /** Holds credits against the key's budget, atomically: concurrent reserves never overspend it. */
  reserve: (req: ReserveRequest) => Promise<ReserveResult>
  /** Reserved → settled with the final figures. False when it was not reserved (settled or released before). */
  settle: (id: string, final: { credits: number, usd: number, images: number }, now: number) => Promise<boolean>
  /** Reserved → released. False when it was not reserved. */
  release: (id: string, now: number) => Promise<boolean>
  getLedgerEntry: (id: string) => Promise<LedgerEntry | undefined>
  balance: (keyId: string, budget: Budget | null, now: number) => Promise<Balance>
  /** Settled usage since `since` (ms epoch). */
  usage: (keyId: string, since: number) => Promise<UsageReport>

  /**
   * Starts an idempotent request, or says why not: another holds it (`in_flight`), it was done with
   * another body (`mismatch`), or it was done (`completed`, with the response to replay).
   */
  idempotencyBegin: (scope: string, fingerprint: string, opts: { lockMs: number, ttlMs: number, now: number }) => Promise<IdempotencyBegin>
  idempotencyComplete: (scope: string, fingerprint: string, response: StoredResponse, opts: { ttlMs: number, now: number }) => Promise<void>
  /** Forgets an unfinished attempt so a retry may run. */
  idempotencyAbandon: (scope: string) => Promise<void>

  /** One token from a GCRA bucket, or a refusal (nothing is taken then). */
  rateTake: (bucket: string, spec: RateSpec, now: number) => Promise<RateTake>

  /** Takes or renews a lease; false when another holder has it. */
  lease: (name: string, holder: string, ttlMs: number, now: number) => Promise<boolean>
  releaseLease: (name: string, holder: string) => Promise<void>

  /** The secret kept under `name`; when there is none yet, `candidate` is kept and returned. Atomic: every caller gets the same one. */
  getOrCreateSecret: (name: string, candidate: string) => Promise<string>
  getSecret: (name: string) => Promise<string | undefined>
  /** Replaces (or makes) the secret kept under `name`: rotations. */
  putSecret: (name: string, value: string) => Promise<void>

  ping: () => Promise<void>
  close: () => Promise<void>
}

export function monthOf (ms: number): string {
  return new Date(ms).toISOString().slice(0, 7)
}

export function dayOf (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** Rounds float noise away (micro-dollars). */
export function roundUsd (usd: number): number {
  return Math.round(usd * 1e6) / 1e6
}

/** GCRA arithmetic shared by both stores (Redis runs the same steps in Lua). */
export function gcra (tat: number | undefined, spec: RateSpec, now: number): { take: RateTake, newTat: number | undefined } {
  const interval = 60_000 / spec.perMinute
  const newTat = Math.max(tat ?? now, now) + interval
  const allowAt = newTat - spec.burst * interval
  const wait = allowAt - now
  if (wait > spec.maxWaitMs) {
    return {
      newTat: undefined,
      take: { allowed: false, waitMs: 0, retryAfterMs: Math.ceil(wait - spec.maxWaitMs), remaining: 0, resetMs: Math.ceil(Math.max(tat ?? now, now) - now) }
    }
  }
  const remaining = Math.max(0, Math.floor((now - allowAt) / interval))
  return { newTat, take: { allowed: true, waitMs: Math.max(0, Math.ceil(wait)), retryAfterMs: 0, remaining, resetMs: Math.ceil(newTat - now) } }
}
