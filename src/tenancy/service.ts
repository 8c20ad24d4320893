import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import { assertModelInPlan, getImageToImageModelForPlan, getModel, getModelForPlan } from '../models/catalog.ts'
import type { PredictionPreparer, PreparedCreate } from '../predictions/prepare.ts'
import { acceptedPrediction, presentEntry } from '../predictions/public.ts'
import { newPredictionId } from '../predictions/tracker.ts'
import type { PredictionTracker } from '../predictions/tracker.ts'
import { ContentSafetyError } from '../replicate/errors.ts'
import { inputHash } from '../replicate/predictions.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { ImageToImageRequest, TextToImageRequest } from '../schemas/generation.ts'
import type { Balance, PredictionEntry, StateStore, UsageRow } from '../stores/types.ts'
import type { ImageStorage } from './image-storage.ts'
import type { UpstreamShaper } from './upstream-shaper.ts'
import type { Tenant } from './tenant.ts'
import { UrlNotAllowedError } from '../net/errors.ts'
import type { WebhookDispatcher } from '../webhooks/dispatcher.ts'
import type { PublicWebhookDelivery } from '../schemas/webhooks.ts'

/**
 * Predictions as tenants see them: the plan decides the model, credits are reserved before anything goes
 * upstream, each prediction is recorded with its owner under the gateway's own id. The prediction tracker
 * (src/predictions/tracker.ts) owns everything that happens after: this service only reads the store, and
 * waits on the change feed when a caller wants to wait.
 */

const DAY_MS = 86_400_000
const FINALS_KEPT = 10_000

export interface TenantServiceOptions {
  preparer: PredictionPreparer
  tracker: PredictionTracker
  /** Sync creates take their upstream slot in the request: refused at once (429/503) when none is near. */
  shaper: UpstreamShaper
  store: StateStore
  images: ImageStorage
  log: FastifyBaseLogger
  /** Throws when Replicate cannot be called at all now (no token): a create is refused rather than accepted in vain. */
  ensureUpstream?: () => Promise<void>
  /** Checks the `webhook` a create names; without it, a create naming a webhook is refused. */
  webhooks?: Pick<WebhookDispatcher, 'violation'> | undefined
  now?: () => number
}

export interface CreateOptions {
  /** Seconds to wait for the result in this request; null answers at once (202). */
  waitSeconds: number | null
  /** The caller's departure: its prediction is canceled (callers with an Idempotency-Key pass none). */
  signal?: AbortSignal | undefined
  log?: FastifyBaseLogger | undefined
  baseUrl: string
}

export interface CreateResult {
  prediction: PublicPrediction
  /** Final within the wait: the caller gets 200; otherwise 202 with a Location. */
  settled: boolean
}

export interface UsageSummary {
  key_id: string
  plan: string
  since: string
  balance: Balance
  by_model: Array<UsageRow & { model: string }>
  by_day: Array<UsageRow & { date: string }>
}

export interface TenantService {
  createTextToImage: (tenant: Tenant, body: TextToImageRequest, o: CreateOptions) => Promise<CreateResult>
  createImageToImage: (tenant: Tenant, body: ImageToImageRequest, o: CreateOptions) => Promise<CreateResult>
  get: (tenant: Tenant, id: string, o: { baseUrl: string, waitSeconds?: number | undefined, signal?: AbortSignal }) => Promise<PublicPrediction>
  /** The owned prediction as stored (for the event stream); 404 when it is not the caller's. */
  entry: (tenant: Tenant, id: string) => Promise<PredictionEntry>
  cancel: (tenant: Tenant, id: string, o: { baseUrl: string, signal?: AbortSignal }) => Promise<PublicPrediction>
  image: (tenant: Tenant, id: string, index: number) => Promise<{ body: NodeJS.ReadableStream, size: number, contentType: string }>
  usage: (tenant: Tenant, days: number) => Promise<UsageSummary>
  /** A prediction's webhook deliveries, oldest first; only its owner may see them. */
  webhookDeliveries: (tenant: Tenant, id: string) => Promise<PublicWebhookDelivery[]>
  /** A stored prediction as its owner sees it: kept images as our URLs. */
  present: (entry: PredictionEntry, baseUrl: string) => PublicPrediction
}

export class InsufficientCreditsError extends AppError {
  constructor (required: number, balance: Balance) {
    super('insufficient_credits', `This needs ${required} credits; ${balance.remaining_credits ?? 0} remain in the key's ${balance.period === 'month' ? 'monthly' : 'total'} budget.`, {
      required_credits: required,
      balance
    })
  }
}

function notFound (): AppError {
  return new AppError('not_found', 'No such prediction.')
}

export function createTenantService (opts: TenantServiceOptions): TenantService {
  const { store, tracker, log } = opts
  const now = opts.now ?? Date.now

  const present = presentEntry

  // A finalized prediction never changes again: once read it is kept here (the most recent ones, bounded), so a
  // status GET of a finished prediction reads nothing from the store. Safe across instances for the same reason.
  const finals = new Map<string, PredictionEntry>()
  function rememberFinal (entry: PredictionEntry): void {
    if (finals.size >= FINALS_KEPT) finals.delete(finals.keys().next().value!)
    finals.set(entry.id, entry)
  }

  async function owned (tenant: Tenant, id: string): Promise<PredictionEntry> {
    // A prediction someone here already watches is known without a read.
    const entry = finals.get(id) ?? tracker.current(id) ?? await store.getPrediction(id)
    // Another key's prediction is indistinguishable from a missing one.
    if (!entry || (!tenant.anonymous && entry.owner !== tenant.id)) throw notFound()
    return entry
  }

  /**
   * A finalized record stored before completed_at was always filled gets it on read, once: the ledger's settlement
   * time (written in the same step that finalized it), else when it started, else when it was created.
   */
  async function withCompletedAt (entry: PredictionEntry): Promise<PredictionEntry> {
    const last = entry.last as PublicPrediction
    if (!entry.finalized || last.completed_at) return entry
    const ledger = await store.getLedgerEntry(entry.ledgerId)
    const completedAt = ledger?.settledAt != null ? new Date(ledger.settledAt).toISOString() : (last.started_at ?? last.created_at ?? new Date(entry.createdAt).toISOString())
    const filled: PredictionEntry = { ...entry, last: { ...last, completed_at: completedAt } }
    await store.putPrediction(filled)
    return filled
  }

  async function presentStored (entry: PredictionEntry, baseUrl: string): Promise<PublicPrediction> {
    if (!entry.finalized) return present(entry, baseUrl)
    const filled = await withCompletedAt(entry)
    rememberFinal(filled)
    return present(filled, baseUrl)
  }

  async function create (tenant: Tenant, kind: 't2i' | 'i2i', request: TextToImageRequest | ImageToImageRequest, o: CreateOptions): Promise<CreateResult> {
    const { webhook: asked, webhook_events_filter: events, ...body } = request
    const webhookUrl = asked ?? tenant.webhook ?? undefined
    let webhook: PredictionEntry['webhook']
    if (webhookUrl !== undefined) {
      // Checked before anything is reserved or created: a refused URL leaves nothing behind.
      const why = opts.webhooks ? opts.webhooks.violation(webhookUrl) : 'Webhooks are not available here.'
      if (why !== undefined) throw new UrlNotAllowedError(why, { field: 'webhook' })
      webhook = { url: webhookUrl, events: events ?? ['completed'], baseUrl: o.baseUrl }
    }
    const modelId = body.model ?? (kind === 't2i' ? getModelForPlan(tenant.plan) : getImageToImageModelForPlan(tenant.plan, { unrestricted: tenant.anonymous }))
    if (!tenant.anonymous) assertModelInPlan(tenant.plan, modelId)
    const spec = getModel(modelId)
    const sync = o.waitSeconds !== null
    // An accepted async create is a promise: refused here, before anything is reserved, when it cannot be kept.
    if (!sync && tracker.queueFull()) throw new AppError('upstream_queue_full', 'Too many generations are waiting for Replicate; try again shortly.', { retry_after: 5 })
    await opts.ensureUpstream?.()
    const numImages = kind === 't2i' ? ((body as TextToImageRequest).num_outputs ?? 1) : 1
    const credits = spec.creditsPerImage * numImages
    const ledgerId = randomUUID()
    const reserved = await store.reserve({ id: ledgerId, keyId: tenant.id, model: spec.id, credits, usd: spec.usdPerImage * numImages, images: numImages, budget: tenant.budget, now: now() })
    if (!reserved.ok) throw new InsufficientCreditsError(credits, reserved.balance)
    let prepared: PreparedCreate
    try {
      const p = { signal: o.signal, log: o.log }
      prepared = kind === 't2i'
        ? await opts.preparer.textToImage({ ...(body as TextToImageRequest), model: spec.id }, p)
        : await opts.preparer.imageToImage({ ...(body as ImageToImageRequest), model: spec.id }, p)
      // A sync caller hears "later" now rather than waiting in a queue behind its own wait.
      if (sync) await opts.shaper.acquire(o.signal)
    } catch (err) {
      // Refused before anything was recorded (moderation, the input image, the create rate): nothing is owed.
      await store.release(ledgerId, now())
      throw err
    }
    const id = newPredictionId()
    const at = now()
    const facts = { id, model: spec.id, creditsPerImage: spec.creditsPerImage, numImages, warnings: prepared.warnings }
    const entry: PredictionEntry = {
      ...facts,
      owner: tenant.id,
      createdAt: at,
      ledgerId,
      last: acceptedPrediction(facts, at),
      finalized: false,
      kept: [],
      ...(webhook ? { webhook } : {}),
      create: { replicateModel: prepared.replicateModel, input: prepared.input, inputHash: inputHash(prepared.input), sentAt: null }
    }
    const { accepted, created } = tracker.submit(entry, { slotTaken: sync })
    const written = await accepted
    ;(o.log ?? log).info({ predictionId: id, model: spec.id, wait: o.waitSeconds }, 'prediction accepted')
    if (!sync) return { prediction: present(written, o.baseUrl), settled: false }

    // The caller leaving cancels it (unless it can come back with its Idempotency-Key: then it has no signal).
    const onGone = (): void => {
      tracker.cancel(written, 'caller went away').catch((err: unknown) => { log.warn({ err, predictionId: id }, 'could not cancel after the caller left') })
    }
    o.signal?.addEventListener('abort', onGone, { once: true })
    try {
      // The create's own failure (Replicate refused it) is the caller's answer, as an error: it wins the race.
      const final = await Promise.race([created.then(() => new Promise<never>(() => {})), tracker.waitForFinal(id, o.waitSeconds! * 1000, o.signal)])
      const current = final ?? written
      const pub = current.last as PublicPrediction
      if (current.finalized && pub.status === 'failed' && pub.error?.code === 'content_policy_violation') {
        // The model flagged its own output: for a waiting caller that is a refusal, as a refused prompt is.
        ;(o.log ?? log).warn({ predictionId: id, upstreamId: current.upstreamId }, 'model reported unsafe output')
        throw new ContentSafetyError(pub.error.message, id)
      }
      return { prediction: present(current, o.baseUrl), settled: current.finalized }
    } finally {
      o.signal?.removeEventListener('abort', onGone)
    }
  }

  return {
    createTextToImage: (tenant, body, o) => create(tenant, 't2i', body, o),
    createImageToImage: (tenant, body, o) => create(tenant, 'i2i', body, o),
    present,

    async get (tenant, id, o) {
      let entry = await owned(tenant, id)
      if (!entry.finalized && o.waitSeconds) entry = (await tracker.waitForFinal(id, o.waitSeconds * 1000, o.signal)) ?? entry
      return presentStored(entry, o.baseUrl)
    },

    entry: owned,

    async cancel (tenant, id, o) {
      const entry = await owned(tenant, id)
      return presentStored(await tracker.cancel(entry, 'canceled by its owner'), o.baseUrl)
    },

    async image (tenant, id, index) {
      const entry = await owned(tenant, id).catch(() => undefined)
      const kept = entry?.kept[index]
      if (!entry || !kept) throw new AppError('not_found', 'No such image.')
      const stored = await opts.images.get(kept.key)
      if (!stored) throw new AppError('not_found', 'No such image.')
      return { body: stored.body, size: stored.size, contentType: kept.contentType }
    },

    async usage (tenant, days) {
      const at = now()
      const since = Date.parse(new Date(at - (days - 1) * DAY_MS).toISOString().slice(0, 10))
      const [balance, report] = await Promise.all([store.balance(tenant.id, tenant.budget, at), store.usage(tenant.id, since)])
      return {
        key_id: tenant.id,
        plan: tenant.plan,
        since: new Date(since).toISOString(),
        balance,
        by_model: Object.entries(report.byModel).sort(([a], [b]) => a.localeCompare(b)).map(([model, row]) => ({ model, ...row })),
        by_day: Object.entries(report.byDay).sort(([a], [b]) => a.localeCompare(b)).map(([date, row]) => ({ date, ...row }))
      }
    },

    async webhookDeliveries (tenant, id) {
      await owned(tenant, id)
      const iso = (ms: number): string => new Date(ms).toISOString()
      return (await store.listWebhookDeliveries(id)).map((d) => ({
        id: d.id,
        event: d.event,
        url: d.url,
        status: d.state,
        created_at: iso(d.createdAt),
        next_attempt_at: d.state === 'pending' ? iso(d.nextAt) : null,
        attempts: d.attempts.map((a) => ({ at: iso(a.at), status: a.status, error: a.error }))
      }))
    }
  }
}
