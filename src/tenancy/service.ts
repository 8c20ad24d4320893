import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import { assertModelInPlan, getImageToImageModelForPlan, getModel, getModelForPlan } from '../models/catalog.ts'
import { toPublicPrediction } from '../predictions/service.ts'
import type { CreateOptions, CreateResult, PredictionService } from '../predictions/service.ts'
import type { ReplicateClient } from '../replicate/client.ts'
import { ReplicateApiError, ReplicateTimeoutError } from '../replicate/errors.ts'
import { abortableSleep } from '../replicate/retry.ts'
import type { Prediction } from '../replicate/types.ts'
import type { FetchedImage } from '../net/safe-fetch.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { ImageToImageRequest, TextToImageRequest, Warning } from '../schemas/generation.ts'
import type { Balance, KeptImage, PredictionEntry, StateStore, UsageRow } from '../stores/types.ts'
import type { ImageStorage } from './image-storage.ts'
import { createPendingReconciler } from './pending-creates.ts'
import { inputHash } from '../replicate/predictions.ts'
import type { Tenant } from './tenant.ts'
import { withSpan } from '../telemetry.ts'
import { UrlNotAllowedError } from '../net/errors.ts'
import type { WebhookEvent } from '../stores/types.ts'
import type { WebhookDispatcher } from '../webhooks/dispatcher.ts'
import type { PublicWebhookDelivery } from '../schemas/webhooks.ts'

/**
 * Predictions as tenants see them: the plan decides the model, credits are reserved before anything
 * goes upstream, each prediction is recorded with its owner, and when it ends its images are kept
 * and its credits settled (or released) exactly once. A tracker follows every unfinished prediction
 * in the background, and picks them all up again after a restart.
 */

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
const DAY_MS = 86_400_000
const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' }
const FINALS_KEPT = 10_000

export interface TenantServiceOptions {
  inner: PredictionService
  /** Reads only: the tracker's polling. */
  replicate: ReplicateClient
  store: StateStore
  images: ImageStorage
  fetchImage: (url: string, opts?: { signal?: AbortSignal }) => Promise<FetchedImage>
  log: FastifyBaseLogger
  /** Names this process in tracking leases. */
  instanceId?: string
  /** How long a tracker holds a prediction before renewing; another instance takes over once it lapses. */
  leaseMs?: number
  /** How often unfinished predictions without a live tracker are looked for. */
  sweepMs?: number
  poll?: { initialMs?: number, intervalMs?: number, maxIntervalMs?: number }
  /** Follow unfinished predictions in the background (default). Off, they are finalized when read. */
  background?: boolean
  /**
   * When creates ask Replicate for a webhook: how long the tracker of a new prediction waits for it before
   * polling. 0 (default) polls at once.
   */
  webhookGraceMs?: number
  /**
   * Age after which a create left unrecorded (its process died during it) is looked for upstream: longer than
   * any create can take. Default 150 s.
   */
  reconcileAfterMs?: number
  /** Sends the events callers ask for with `webhook`; without it, a create naming a webhook is refused. */
  webhooks?: WebhookDispatcher
  /** Told once of each prediction as it is finalized (metrics). */
  onEnded?: (ended: { model: string, status: string, seconds: number, credits: number }) => void
  now?: () => number
}

export interface TenantCreateOptions extends CreateOptions {
  baseUrl: string
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
  createTextToImage: (tenant: Tenant, body: TextToImageRequest, o: TenantCreateOptions) => Promise<CreateResult>
  createImageToImage: (tenant: Tenant, body: ImageToImageRequest, o: TenantCreateOptions) => Promise<CreateResult>
  get: (tenant: Tenant, id: string, o: { baseUrl: string, waitSeconds?: number | undefined, signal?: AbortSignal }) => Promise<PublicPrediction>
  cancel: (tenant: Tenant, id: string, o: { baseUrl: string, signal?: AbortSignal }) => Promise<PublicPrediction>
  image: (tenant: Tenant, id: string, index: number) => Promise<{ body: NodeJS.ReadableStream, size: number, contentType: string }>
  usage: (tenant: Tenant, days: number) => Promise<UsageSummary>
  /** A prediction's webhook deliveries, oldest first; only its owner may see them. */
  webhookDeliveries: (tenant: Tenant, id: string) => Promise<PublicWebhookDelivery[]>
  /**
   * A prediction's state as Replicate reported it (a verified webhook). A terminal one we own and have not
   * finalized is finalized in the background and its tracker stopped; anything else is ignored.
   */
  onUpstreamUpdate: (prediction: Prediction) => Promise<'finalizing' | 'ignored'>
  /**
   * Starts tracking every unfinished prediction in the store; resolves with how many. Creates a dead process
   * left unrecorded are reconciled in the background, here and at every sweep.
   */
  resume: () => Promise<number>
  /** How many unfinished predictions this instance follows upstream now. */
  tracked: () => number
  /** Resolves when nothing is being finalized (tests and shutdown). */
  idle: () => Promise<void>
  close: () => Promise<void>
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

export function imageUrl (baseUrl: string, id: string, index: number): string {
  return `${baseUrl}/v1/predictions/${id}/images/${index}`
}

export function createTenantService (opts: TenantServiceOptions): TenantService {
  const { store, log } = opts
  const now = opts.now ?? Date.now
  const instanceId = opts.instanceId ?? randomUUID()
  const leaseMs = opts.leaseMs ?? 60_000
  const poll = { initialMs: 500, intervalMs: 1_000, maxIntervalMs: 3_000, ...opts.poll }
  const tracking = new Map<string, AbortController>()
  const finalizing = new Map<string, Promise<PredictionEntry>>()
  let closed = false
  let sweepTimer: NodeJS.Timeout | undefined
  const reconcileAbort = new AbortController()
  let reconciling: Promise<unknown> | undefined

  function present (entry: PredictionEntry, pub: PublicPrediction, baseUrl: string): PublicPrediction {
    const kept = entry.kept.length > 0 && pub.status === 'succeeded'
    return {
      ...pub,
      model: entry.model,
      warnings: entry.warnings as Warning[],
      output: kept ? entry.kept.map((_k, i) => imageUrl(baseUrl, entry.id, i)) : pub.output
    }
  }

  // A finalized prediction never changes again: once read it is kept here (the most recent ones, bounded), so a
  // status GET of a finished prediction reads nothing from the store. Safe across instances for the same reason.
  const finals = new Map<string, PredictionEntry>()
  function rememberFinal (entry: PredictionEntry): void {
    if (finals.size >= FINALS_KEPT) finals.delete(finals.keys().next().value!)
    finals.set(entry.id, entry)
  }

  async function owned (tenant: Tenant, id: string): Promise<PredictionEntry | undefined> {
    const entry = finals.get(id) ?? await store.getPrediction(id)
    // Another key's prediction is indistinguishable from a missing one.
    if (entry && !tenant.anonymous && entry.owner !== tenant.id) throw notFound()
    if (!entry && !tenant.anonymous) throw notFound()
    return entry
  }

  function keepImages (id: string, urls: string[]): Promise<KeptImage[]> {
    return withSpan('keep images', { 'replicate.prediction_id': id, 'images.count': urls.length }, async (span) => {
      const kept = await copyImages(id, urls)
      span.set('images.kept', kept.length)
      return kept
    })
  }

  async function copyImages (id: string, urls: string[]): Promise<KeptImage[]> {
    const kept: KeptImage[] = []
    for (const [index, url] of urls.entries()) {
      let image: FetchedImage | undefined
      for (let attempt = 0; attempt < 3 && !image; attempt++) {
        try {
          image = await opts.fetchImage(url)
        } catch (err) {
          log.warn({ predictionId: id, index, code: (err as { code?: string }).code, attempt }, 'could not download an output image')
          if (attempt < 2) await new Promise((resolve) => setTimeout(resolve, 200 * (attempt + 1)))
        }
      }
      if (!image) return kept
      const ext = EXTENSIONS[image.contentType] ?? 'png'
      const key = `${id}/${index}.${ext}`
      await opts.images.put(key, image.bytes, image.contentType)
      kept.push({ key, contentType: image.contentType, size: image.bytes.length })
    }
    return kept
  }

  /** Keeps the images, then settles or releases the credits, then marks the record final. Safe to repeat. */
  function finalize (entry: PredictionEntry, pub: PublicPrediction): Promise<PredictionEntry> {
    const running = finalizing.get(entry.id)
    if (running) return running
    const work = (async () => {
      const spec = getModel(entry.model)
      const output = pub.output ?? []
      let kept: KeptImage[] = []
      let charged = 0
      // True on the one finalization that moved the ledger entry (another instance may have got there first).
      let ended: boolean
      if (pub.status === 'succeeded') {
        kept = await keepImages(entry.id, output)
        if (kept.length < output.length) log.error({ predictionId: entry.id, kept: kept.length, delivered: output.length }, 'some output images could not be kept')
        charged = spec.creditsPerImage * output.length
        ended = await store.settle(entry.ledgerId, { credits: charged, usd: spec.usdPerImage * output.length, images: output.length }, now())
      } else if (pub.status === 'canceled' && pub.started_at) {
        // Canceled while running: the model worked, so the quote is owed.
        charged = spec.creditsPerImage * entry.numImages
        ended = await store.settle(entry.ledgerId, { credits: charged, usd: spec.usdPerImage * entry.numImages, images: 0 }, now())
      } else {
        ended = await store.release(entry.ledgerId, now())
      }
      // Replicate's sync answers hand the files over while it still says processing, without completed_at:
      // then the prediction completed, for our callers, when we finalized it.
      const last: PublicPrediction = { ...pub, completed_at: pub.completed_at ?? new Date(now()).toISOString() }
      const final: PredictionEntry = { ...entry, last, finalized: true, kept }
      // Recorded before the record is final, so a process dying in between leaves the prediction to be finalized
      // again, and its events recorded then; recording is idempotent, so each is sent once whoever finalizes.
      if (pub.status === 'succeeded') await announce(final, 'output')
      await announce(final, 'completed')
      await store.putPrediction(final)
      log.info({ predictionId: entry.id, status: pub.status, kept: kept.length }, 'prediction finalized')
      if (ended) opts.onEnded?.({ model: entry.model, status: pub.status, seconds: Math.max(0, now() - entry.createdAt) / 1000, credits: charged })
      return final
    })().finally(() => { finalizing.delete(entry.id) })
    finalizing.set(entry.id, work)
    return work
  }

  /** Records a webhook delivery of this event, when the caller asked for it; a store failure is logged, not thrown. */
  async function announce (entry: PredictionEntry, event: WebhookEvent): Promise<void> {
    const hook = entry.webhook
    if (!hook || !hook.events.includes(event) || !opts.webhooks) return
    const payload = present(entry, entry.last as PublicPrediction, hook.baseUrl)
    await opts.webhooks.enqueue({ predictionId: entry.id, owner: entry.owner, url: hook.url, event, payload })
      .catch((err: unknown) => { log.error({ err, predictionId: entry.id, event }, 'could not record a webhook delivery') })
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

  async function presentFinal (entry: PredictionEntry, baseUrl: string): Promise<PublicPrediction> {
    const filled = await withCompletedAt(entry)
    rememberFinal(filled)
    return present(filled, filled.last as PublicPrediction, baseUrl)
  }

  function recordOf (entry: PredictionEntry) {
    return { id: entry.id, model: entry.model, creditsPerImage: entry.creditsPerImage, numImages: entry.numImages, warnings: entry.warnings as Warning[], createdAt: entry.createdAt }
  }

  /** Follows one prediction upstream until it ends, holding a lease so one instance does it at a time. */
  function track (entry: PredictionEntry, graceMs = 0): void {
    if (closed || opts.background === false || tracking.has(entry.id)) return
    const controller = new AbortController()
    tracking.set(entry.id, controller)
    const lease = `track:${entry.id}`
    void (async () => {
      try {
        if (graceMs > 0) {
          // A webhook usually ends the prediction first (and aborts this wait); the poll below is the fallback.
          await abortableSleep(graceMs, controller.signal)
          if ((await store.getPrediction(entry.id))?.finalized) return
        }
        while (!closed && !controller.signal.aborted) {
          if (!(await store.lease(lease, instanceId, leaseMs, now()))) return
          let settled
          try {
            settled = await opts.replicate.waitForCompletion(entry.id, {
              maxWaitTime: Math.max(1_000, leaseMs / 2),
              initialWait: poll.initialMs,
              pollInterval: poll.intervalMs,
              maxInterval: poll.maxIntervalMs,
              cancelOnTimeout: false,
              signal: controller.signal
            })
          } catch (err) {
            if (controller.signal.aborted) return
            if (err instanceof ReplicateTimeoutError) continue
            if (err instanceof ReplicateApiError && err.status === 404) {
              // Replicate no longer knows it: nothing will be delivered, so nothing is owed.
              log.warn({ predictionId: entry.id }, 'tracked prediction is gone upstream')
              await finalize(entry, { ...(entry.last as PublicPrediction), status: 'failed', output: null })
              return
            }
            log.warn({ predictionId: entry.id, code: (err as { code?: string }).code }, 'tracking a prediction failed; retrying')
            await new Promise((resolve) => setTimeout(resolve, poll.maxIntervalMs))
            continue
          }
          const fresh = await store.getPrediction(entry.id)
          if (fresh?.finalized) return
          await finalize(fresh ?? entry, toPublicPrediction(settled, recordOf(entry)))
          return
        }
      } catch (err) {
        if (!controller.signal.aborted) log.error({ err, predictionId: entry.id }, 'tracking a prediction failed')
      } finally {
        tracking.delete(entry.id)
        await store.releaseLease(lease, instanceId).catch(() => {})
      }
    })()
  }

  const reconciler = createPendingReconciler({
    store,
    replicate: opts.replicate,
    log,
    instanceId,
    leaseMs,
    afterMs: opts.reconcileAfterMs ?? 150_000,
    now,
    async adopt (pending, found) {
      const prediction = await opts.replicate.getPrediction(found.id, { signal: reconcileAbort.signal })
      const warnings = (pending.warnings ?? []) as Warning[]
      const pub = toPublicPrediction(prediction, { id: prediction.id, model: pending.model, creditsPerImage: pending.creditsPerImage, numImages: pending.numImages, warnings, createdAt: pending.createdAt })
      const entry: PredictionEntry = {
        id: prediction.id,
        owner: pending.owner,
        model: pending.model,
        creditsPerImage: pending.creditsPerImage,
        numImages: pending.numImages,
        warnings,
        createdAt: pending.createdAt,
        ledgerId: pending.ledgerId,
        last: pub,
        finalized: false,
        kept: [],
        ...(pending.webhook ? { webhook: pending.webhook } : {})
      }
      await store.putPrediction(entry)
      if (TERMINAL.has(pub.status)) {
        finalize(entry, pub).catch((err: unknown) => { log.error({ err, predictionId: entry.id }, 'finalizing a prediction failed') })
      } else {
        track(entry)
      }
    }
  })

  /** One reconciliation at a time on this instance, in the background: a slow upstream must not hold up the start. */
  function reconcilePending (): void {
    if (closed || reconciling) return
    reconciling = reconciler.run(reconcileAbort.signal)
      .catch((err: unknown) => { if (!reconcileAbort.signal.aborted) log.warn({ err }, 'reconciling interrupted creates failed; retried at the next sweep') })
      .finally(() => { reconciling = undefined })
  }

  async function create (tenant: Tenant, kind: 't2i' | 'i2i', request: TextToImageRequest | ImageToImageRequest, o: TenantCreateOptions): Promise<CreateResult> {
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
    const numImages = kind === 't2i' ? ((body as TextToImageRequest).num_outputs ?? 1) : 1
    const credits = spec.creditsPerImage * numImages
    const ledgerId = randomUUID()
    const reserved = await store.reserve({ id: ledgerId, keyId: tenant.id, model: spec.id, credits, usd: spec.usdPerImage * numImages, images: numImages, budget: tenant.budget, now: now() })
    if (!reserved.ok) throw new InsufficientCreditsError(credits, reserved.balance)
    let pendingWritten = false
    const forgetPending = (): void => {
      if (!pendingWritten) return
      // Left behind, the record is reconciled later: the ledger entry or the prediction record says it is done.
      store.deletePendingCreate(ledgerId).catch((err: unknown) => log.warn({ err, ledgerId }, 'could not delete a pending-create record'))
    }
    const inner: CreateOptions = {
      ...o,
      beforeCreate: async (info) => {
        await o.beforeCreate?.(info)
        // Should this process die during the create (a sync one takes up to a minute), this record lets a restart find the prediction.
        await store.putPendingCreate({
          ledgerId,
          owner: tenant.id,
          model: spec.id,
          replicateModel: info.replicateModel,
          inputHash: inputHash(info.input),
          numImages,
          creditsPerImage: spec.creditsPerImage,
          warnings: info.warnings,
          ...(webhook ? { webhook } : {}),
          createdAt: now()
        })
        pendingWritten = true
      }
    }
    let result: CreateResult
    try {
      result = kind === 't2i'
        ? await opts.inner.createTextToImage({ ...(body as TextToImageRequest), model: spec.id }, inner)
        : await opts.inner.createImageToImage({ ...(body as ImageToImageRequest), model: spec.id }, inner)
    } catch (err) {
      // Refused before or by the model (moderation, content safety, a failed create): nothing is owed.
      await store.release(ledgerId, now())
      forgetPending()
      throw err
    }
    const pub = result.prediction
    let entry: PredictionEntry = {
      id: pub.id,
      owner: tenant.id,
      model: spec.id,
      creditsPerImage: spec.creditsPerImage,
      numImages,
      warnings: pub.warnings,
      createdAt: now(),
      ledgerId,
      last: pub,
      finalized: false,
      kept: [],
      ...(webhook ? { webhook } : {})
    }
    await store.putPrediction(entry)
    forgetPending()
    await announce(entry, 'start')
    if (TERMINAL.has(pub.status)) entry = await finalize(entry, pub)
    else track(entry, opts.webhookGraceMs)
    return { prediction: present(entry, entry.last as PublicPrediction, o.baseUrl), settled: result.settled }
  }

  async function sweep (): Promise<number> {
    reconcilePending()
    const open = await store.listUnfinalized()
    for (const entry of open) track(entry)
    return open.length
  }

  return {
    createTextToImage: (tenant, body, o) => create(tenant, 't2i', body, o),
    createImageToImage: (tenant, body, o) => create(tenant, 'i2i', body, o),

    async get (tenant, id, o) {
      const entry = await owned(tenant, id)
      if (!entry) return opts.inner.get(id, o)
      if (entry.finalized) return presentFinal(entry, o.baseUrl)
      const pub = await opts.inner.get(id, o)
      if (!TERMINAL.has(pub.status)) return present(entry, pub, o.baseUrl)
      const final = await finalize(entry, pub)
      return present(final, final.last as PublicPrediction, o.baseUrl)
    },

    async cancel (tenant, id, o) {
      const entry = await owned(tenant, id)
      if (!entry) return opts.inner.cancel(id, o)
      if (entry.finalized) return presentFinal(entry, o.baseUrl)
      const pub = await opts.inner.cancel(id, o)
      if (!TERMINAL.has(pub.status)) return present(entry, pub, o.baseUrl)
      tracking.get(id)?.abort(new Error('canceled'))
      const final = await finalize(entry, pub)
      return present(final, final.last as PublicPrediction, o.baseUrl)
    },

    async image (tenant, id, index) {
      const entry = await owned(tenant, id)
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
      if (!(await owned(tenant, id))) throw notFound()
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
    },

    async onUpstreamUpdate (prediction) {
      // Only an end is acted on: webhooks come twice or out of order, and an earlier state adds nothing.
      if (!TERMINAL.has(prediction.status)) return 'ignored'
      const entry = await store.getPrediction(prediction.id)
      if (!entry || entry.finalized) return 'ignored'
      tracking.get(entry.id)?.abort(new Error('finished upstream'))
      finalize(entry, toPublicPrediction(prediction, recordOf(entry))).catch((err: unknown) => {
        log.error({ err, predictionId: entry.id }, 'finalizing a prediction failed')
      })
      return 'finalizing'
    },

    async resume () {
      if (opts.background === false) return 0
      const count = await sweep()
      if (opts.sweepMs !== 0) {
        // Picks up predictions whose tracker died with another instance (its lease lapses).
        sweepTimer = setInterval(() => { sweep().catch((err: unknown) => log.warn({ err }, 'sweep failed')) }, opts.sweepMs ?? 30_000)
        sweepTimer.unref()
      }
      return count
    },

    tracked: () => tracking.size,

    async idle () {
      while (finalizing.size > 0) await Promise.allSettled([...finalizing.values()])
    },

    async close () {
      closed = true
      clearInterval(sweepTimer)
      for (const c of tracking.values()) c.abort(new Error('closing'))
      reconcileAbort.abort(new Error('closing'))
      await Promise.allSettled([...finalizing.values(), reconciling])
    }
  }
}
