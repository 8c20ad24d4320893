import { randomBytes } from 'node:crypto'
import { REPLICATE_MODELS } from '../models/replicate-models.ts'

/** A token bucket: `perMinute` refill rate, `burst` capacity. */
export interface RateLimit {
  perMinute: number
  burst: number
}

/** Switches that reproduce API quirks clients have tripped over (REFERENCE §11.14). */
export interface PitfallSwitches {
  /** Fractional digits of every timestamp: 3 (`ms`, default), 6 (`us`) or 9 (`ns`). */
  timestampPrecision?: 'ms' | 'us' | 'ns'
  /** Leave `urls.web` out, as several real 2024 responses did. */
  omitWebUrl?: boolean
  /** Leave `completed_at` out even on terminal predictions. */
  omitCompletedAt?: boolean
  /** Every prediction ends `aborted` when it would have started. */
  abortAll?: boolean
}

/** Deliberately broken webhook deliveries, so a receiver's checks can be tested. */
export interface WebhookQuirks {
  /** Send every delivery twice (same webhook-id). */
  duplicate?: boolean
  /** Sign with a wrong key. */
  badSignature?: boolean
  /** Put a webhook-timestamp ten minutes in the past (and sign it). */
  staleTimestamp?: boolean
}

export interface EmulatorOptions {
  /** Accepted API tokens; the first is `emulator.token`. */
  tokens?: string[]
  /** Tokens that authenticate but get the real 402 "Billing required" on prediction creates. */
  billingRequiredTokens?: string[]
  /** Tokens whose create bucket is the low-credit one: 6/min, burst 1 (REFERENCE §4). */
  lowCreditTokens?: string[]
  /** Multiplies every emulated duration; 1 is real time, tests use e.g. 0.01. */
  timeScale?: number
  /** Time spent in `starting` (min, max), in ms before scaling. */
  startingMs?: [number, number]
  /** Keep predictions in `starting` for 90 s (before scaling): longer than any sync wait. */
  slowStart?: boolean
  /** Seconds of `processing` per model ref; defaults to the model's typical predict time. */
  predictSeconds?: Partial<Record<string, number>>
  /**
   * Time between the output files existing (the prediction still `processing`) and `succeeded`, in ms before
   * scaling; by default 5 % of the predict time, at least 100 ms.
   */
  uploadMs?: number
  /** Lifetime of output URLs, counted from completion, in ms before scaling. */
  deliveryTtlMs?: number
  rateLimits?: { create?: RateLimit, other?: RateLimit }
  /** Substring of the prompt that makes the model's safety checker reject every image. */
  nsfwTrigger?: string
  /** Substring of the prompt that drops about half of the images when `num_outputs` > 1. */
  partialNsfwTrigger?: string
  /** Substring of the prompt that makes the model fail with `failureMessage`. */
  failTrigger?: string
  failureMessage?: string
  /** HTTP status when `Prefer: wait` runs out before the output exists; sources disagree (REFERENCE §2.1). */
  syncTimeoutStatus?: 200 | 201 | 202
  /** `Prefer: wait=N` outside 1–60: clamp it (default) or answer 400. */
  preferWaitOutOfRange?: 'clamp' | 'reject'
  /** `whsec_<base64>`; generated when absent. */
  webhookSecret?: string
  webhookQuirks?: WebhookQuirks
  /** Largest upload or data-URI input, in bytes; above it the API answers 413. */
  maxFileBytes?: number
  /** How long to wait for an http(s) input image before failing the prediction. */
  inputFetchTimeoutMs?: number
  /** Page size of `GET /v1/predictions`; Replicate uses 100. */
  listPageSize?: number
  /** Memory budget for rendered images; evicted ones are rendered again on demand. */
  imageCacheBytes?: number
  /** How many requests `requests` keeps (oldest dropped first); default 10 000. */
  maxRecordedRequests?: number
  pitfalls?: PitfallSwitches
  /** Serve `/_emulator/*` (faults, recorded requests, reset). */
  control?: boolean
  host?: string
  /** 0 picks an ephemeral port. */
  port?: number
  /** Origin used in `urls.*`, delivery and file URLs; defaults to the listening origin. */
  publicUrl?: string
}

export interface ResolvedOptions {
  tokens: readonly string[]
  billingRequiredTokens: ReadonlySet<string>
  lowCreditTokens: ReadonlySet<string>
  timeScale: number
  startingMs: readonly [number, number]
  predictSeconds: Readonly<Record<string, number>>
  uploadMs: number | undefined
  deliveryTtlMs: number
  rateLimits: { create: RateLimit, other: RateLimit, lowCreditCreate: RateLimit }
  nsfwTrigger: string
  partialNsfwTrigger: string
  failTrigger: string
  failureMessage: string
  syncTimeoutStatus: 200 | 201 | 202
  preferWaitOutOfRange: 'clamp' | 'reject'
  webhookSecret: string
  webhookQuirks: WebhookQuirks
  maxFileBytes: number
  inputFetchTimeoutMs: number
  listPageSize: number
  imageCacheBytes: number
  maxRecordedRequests: number
  pitfalls: PitfallSwitches
  control: boolean
  host: string
  port: number
  publicUrl: string | undefined
}

export const DEFAULT_TOKEN = 'r8_emulator_local_token'

function positive (name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`emulator option ${name} must be a positive number, got ${value}`)
  return value
}

function rateLimit (name: string, value: RateLimit): RateLimit {
  positive(`${name}.perMinute`, value.perMinute)
  positive(`${name}.burst`, value.burst)
  return { perMinute: value.perMinute, burst: value.burst }
}

export function resolveOptions (opts: EmulatorOptions = {}): ResolvedOptions {
  const billing = opts.billingRequiredTokens ?? []
  const lowCredit = opts.lowCreditTokens ?? []
  const tokens = opts.tokens ?? [DEFAULT_TOKEN]
  if (tokens.length === 0) throw new TypeError('emulator option tokens must name at least one token')
  const startingMs = opts.slowStart ? [90_000, 90_000] as const : opts.startingMs ?? [100, 500] as const
  if (startingMs[0] < 0 || startingMs[1] < startingMs[0]) throw new TypeError(`emulator option startingMs must be [min, max] with 0 <= min <= max, got [${startingMs.join(', ')}]`)
  const secret = opts.webhookSecret ?? `whsec_${randomBytes(24).toString('base64')}`
  if (!secret.startsWith('whsec_')) throw new TypeError('emulator option webhookSecret must look like whsec_<base64>')
  const predictSeconds: Record<string, number> = {}
  for (const [ref, spec] of Object.entries(REPLICATE_MODELS)) predictSeconds[ref] = spec.typicalPredictSeconds
  for (const [ref, seconds] of Object.entries(opts.predictSeconds ?? {})) {
    if (seconds !== undefined) predictSeconds[ref] = positive(`predictSeconds["${ref}"]`, seconds)
  }
  return {
    // Tokens with special treatment are valid tokens too.
    tokens: [...new Set([...tokens, ...billing, ...lowCredit])],
    billingRequiredTokens: new Set(billing),
    lowCreditTokens: new Set(lowCredit),
    timeScale: positive('timeScale', opts.timeScale ?? 1),
    startingMs,
    predictSeconds,
    uploadMs: opts.uploadMs === undefined ? undefined : positive('uploadMs', opts.uploadMs),
    deliveryTtlMs: positive('deliveryTtlMs', opts.deliveryTtlMs ?? 3_600_000),
    rateLimits: {
      create: rateLimit('rateLimits.create', opts.rateLimits?.create ?? { perMinute: 600, burst: 600 }),
      other: rateLimit('rateLimits.other', opts.rateLimits?.other ?? { perMinute: 3000, burst: 3000 }),
      lowCreditCreate: { perMinute: 6, burst: 1 }
    },
    nsfwTrigger: opts.nsfwTrigger ?? 'nsfw-test',
    partialNsfwTrigger: opts.partialNsfwTrigger ?? 'partial-nsfw-test',
    failTrigger: opts.failTrigger ?? 'fail-test',
    failureMessage: opts.failureMessage ?? 'Prediction interrupted; please retry (code: PA)',
    syncTimeoutStatus: opts.syncTimeoutStatus ?? 201,
    preferWaitOutOfRange: opts.preferWaitOutOfRange ?? 'clamp',
    webhookSecret: secret,
    webhookQuirks: { ...opts.webhookQuirks },
    maxFileBytes: positive('maxFileBytes', opts.maxFileBytes ?? 100 * 1024 * 1024),
    inputFetchTimeoutMs: positive('inputFetchTimeoutMs', opts.inputFetchTimeoutMs ?? 10_000),
    listPageSize: positive('listPageSize', opts.listPageSize ?? 100),
    imageCacheBytes: positive('imageCacheBytes', opts.imageCacheBytes ?? 64 * 1024 * 1024),
    maxRecordedRequests: positive('maxRecordedRequests', opts.maxRecordedRequests ?? 10_000),
    pitfalls: { ...opts.pitfalls },
    control: opts.control ?? false,
    host: opts.host ?? '127.0.0.1',
    port: opts.port ?? 0,
    publicUrl: opts.publicUrl?.replace(/\/+$/, '')
  }
}
