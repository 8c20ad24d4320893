import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import { getModel } from '../models/catalog.ts'
import { toProblem } from '../problems.ts'
import type { ReplicateClient } from '../replicate/client.ts'
import { ReplicateApiError, ReplicateNetworkError, ReplicateTimeoutError } from '../replicate/errors.ts'
import { inputHash, isSettled } from '../replicate/predictions.ts'
import { abortableSleep } from '../replicate/retry.ts'
import { TERMINAL_STATUSES } from '../replicate/types.ts'
import type { Prediction } from '../replicate/types.ts'
import type { FetchedImage } from '../net/safe-fetch.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { Warning } from '../schemas/generation.ts'
import type { KeptImage, PredictionEntry, StateStore, WebhookEvent } from '../stores/types.ts'
import type { ImageStorage } from '../tenancy/image-storage.ts'
import type { UpstreamShaper } from '../tenancy/upstream-shaper.ts'
import { withSpan } from '../telemetry.ts'
import type { WebhookDispatcher } from '../webhooks/dispatcher.ts'
import type { ChangeFeed } from './feed.ts'
import { createWatches } from './watch.ts'
import type { PredictionWatches } from './watch.ts'
import { presentEntry, toPublicPrediction } from './public.ts'
import type { PredictionFacts } from './public.ts'

/**
 * The one owner of every unfinished prediction's state (see README.md for the flow). For each prediction one
 * tracker, on one instance at a time (a lease in the shared store), sends the create, learns how it goes and
 * writes each change: to the store, then to the change feed. Callers never ask Replicate; they read the store
 * and listen to the feed.
 *
 * The tracker hears of a prediction from three sources, cheapest first: the create's own answer (sync mode holds
 * it until the images exist, up to a minute), Replicate's webhook when webhooks are on, and polling with backoff
 * capped at 5 s only when neither has told it the end. With webhooks on it does not poll until a grace period
 * has passed without the webhook.
 */

const EXTENSIONS: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif' }
/** Replicate holds a sync create at most this long. */
const SYNC_WINDOW_SECONDS = 60
/** Our clock and Replicate's need not agree. */
const SKEW_MS = 120_000
/** See `follow`. */
const READ_SLACK_MS = 250

export interface TrackerOptions {
  store: StateStore
  feed: ChangeFeed
  /** Unshaped: a tracker takes its create slot from `shaper` itself, once, when it sends. */
  replicate: ReplicateClient
  shaper: UpstreamShaper
  images: ImageStorage
  fetchImage: (url: string, opts?: { signal?: AbortSignal }) => Promise<FetchedImage>
  log: FastifyBaseLogger
  /** Replicate-side deadline for every prediction (Cancel-After), so nothing abandoned runs for long. */
  cancelAfter: string
  /** How long Replicate holds each create (sync mode); its maximum, 60, unless a test shortens it. */
  syncWindowSeconds?: number
  /** Where Replicate posts a prediction's end, when webhooks are on; the prediction's id is added as `?prediction=`. */
  webhookUrl?: string | undefined
  /** With webhooks on: how long after the create has answered the tracker waits for the webhook before it reads. */
  webhookGraceMs?: number
  /** Names this process in leases. */
  instanceId?: string
  /** How long a tracker holds a prediction before renewing; another instance takes over once it lapses. */
  leaseMs?: number
  /** How often unfinished predictions without a live tracker are looked for. 0: never (tests). */
  sweepMs?: number
  /** Polling once the create has answered without the end: first delay, then ×1.5 up to the cap. */
  poll?: { initialMs?: number, maxIntervalMs?: number }
  /**
   * Age after which a create held by a process that died is looked for upstream: longer than any create can take.
   * Default 150 s.
   */
  reconcileAfterMs?: number
  /** How many accepted creates may wait for an upstream slot on this instance; more are refused with 503. */
  maxQueued?: number
  /** Sends the events callers asked for with `webhook`. */
  webhooks?: WebhookDispatcher | undefined
  /** Told once of each prediction as it is finalized (metrics). */
  onEnded?: (ended: { model: string, status: string, seconds: number, credits: number }) => void
  now?: () => number
}

export interface SubmitOptions {
  /** The caller already took an upstream create slot (a sync create, refused at once when none is near). */
  slotTaken: boolean
}

export interface PredictionTracker {
  /**
   * Takes a new prediction (written with `create` queued) and sends its create. `accepted` resolves once it is in
   * the store; `created` once Replicate has answered the create, with the entry after that answer. A create that
   * fails rejects `created` with its error, and the prediction fails with that error's code, its credits released.
   */
  submit: (entry: PredictionEntry, o: SubmitOptions) => { accepted: Promise<PredictionEntry>, created: Promise<PredictionEntry> }
  /** Resolves with the prediction once it is final, or with its latest state when `ms` pass first; undefined if unknown. */
  waitForFinal: PredictionWatches['waitForFinal']
  /** Every change of a prediction, from its current state on (shared per prediction; see watch.ts). */
  follow: PredictionWatches['follow']
  /** The freshest state of a prediction someone on this instance watches, without a store read. */
  current: PredictionWatches['current']
  /** Stops a prediction: a queued create is never sent, a held one is found and canceled, a created one is canceled upstream. */
  cancel: (entry: PredictionEntry, why: string) => Promise<PredictionEntry>
  /**
   * A prediction's state as Replicate reported it (a verified webhook), for our prediction `id` when the webhook
   * URL named it. A terminal one is finalized; anything else only wakes nobody.
   */
  onUpstreamUpdate: (prediction: Prediction, id?: string) => Promise<'finalizing' | 'ignored'>
  /** Whether an async create would be refused now: the queue for upstream slots is full. */
  queueFull: () => boolean
  /** Starts tracking every unfinished prediction in the store; resolves with how many. Then sweeps for orphans. */
  resume: () => Promise<number>
  /** Predictions this instance follows now. */
  tracked: () => number
  /** Accepted creates waiting for an upstream slot on this instance. */
  queued: () => number
  /** Some of what this instance tracks, with Replicate's ids, for operators. */
  snapshot: (limit: number) => Array<{ id: string, upstream_id: string | null, stage: string }>
  /** Resolves when nothing is being finalized (tests and shutdown). */
  idle: () => Promise<void>
  close: () => Promise<void>
}

/** Our prediction ids: Replicate's alphabet and length (lowercase base32, 26), so they read alike and fit the same routes. */
export function newPredictionId (): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  const bytes = randomBytes(26)
  let id = ''
  for (const b of bytes) id += alphabet[b & 31]
  return id
}

function factsOf (entry: PredictionEntry): PredictionFacts {
  return { id: entry.id, model: entry.model, creditsPerImage: entry.creditsPerImage, numImages: entry.numImages, warnings: entry.warnings as Warning[] }
}

/** Replicate's id for an entry: records from before the gateway had ids of its own use Replicate's. */
function upstreamIdOf (entry: PredictionEntry): string | undefined {
  if (entry.upstreamId) return entry.upstreamId
  return entry.create ? undefined : entry.id
}

class CanceledCreate extends Error {
  readonly code = 'CREATE_CANCELED'
  constructor (why: string) {
    super(why)
    this.name = 'CanceledCreate'
  }
}

interface Track {
  /** What became of a create stopped while held: Replicate's answer to its cancel (or the create's, if it had ended). */
  abandoned: Deferred<Prediction>
  controller: AbortController
  /** Aborts the held create only (the caller left, or a cancel came). */
  createAbort: AbortController
  /** Set while this instance's create is queued or held. */
  stage: 'queued' | 'sending' | 'following' | 'done'
  upstreamId: string | null
  /** Settles when this tracker has stopped. */
  done?: Promise<void>
}

export function createPredictionTracker (opts: TrackerOptions): PredictionTracker {
  const { store, feed, log } = opts
  const now = opts.now ?? Date.now
  const instanceId = opts.instanceId ?? randomUUID()
  const leaseMs = opts.leaseMs ?? 60_000
  const poll = { initialMs: 1_000, maxIntervalMs: 5_000, ...opts.poll }
  const syncWindowSeconds = opts.syncWindowSeconds ?? SYNC_WINDOW_SECONDS
  const graceMs = opts.webhookUrl ? (opts.webhookGraceMs ?? 60_000) : 0
  const reconcileAfterMs = opts.reconcileAfterMs ?? 150_000
  const maxQueued = opts.maxQueued ?? 1_000
  const tracks = new Map<string, Track>()
  const finalizing = new Map<string, Promise<PredictionEntry>>()
  let queued = 0
  let closed = false
  let sweepTimer: NodeJS.Timeout | undefined

  /** The one write of a change: the store, then the feed. A final prediction is never overwritten by an earlier state. */
  async function commit (entry: PredictionEntry): Promise<PredictionEntry> {
    const next: PredictionEntry = { ...entry, seq: (entry.seq ?? 0) + 1 }
    if (!(await store.putPrediction(next))) {
      // Someone finalized it first (a webhook on another instance): theirs stands.
      return (await store.getPrediction(entry.id)) ?? next
    }
    feed.publish(next)
    return next
  }

  function keepImages (id: string, upstreamId: string | undefined, urls: string[]): Promise<KeptImage[]> {
    return withSpan('keep images', { 'prediction.id': id, ...(upstreamId ? { 'replicate.prediction_id': upstreamId } : {}), 'images.count': urls.length }, async (span) => {
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

  /** Records a webhook delivery of this event when the caller asked for it; a store failure is logged, not thrown. */
  async function announce (entry: PredictionEntry, event: WebhookEvent): Promise<void> {
    const hook = entry.webhook
    if (!hook || !hook.events.includes(event) || !opts.webhooks) return
    await opts.webhooks.enqueue({ predictionId: entry.id, owner: entry.owner, url: hook.url, event, payload: presentEntry(entry, hook.baseUrl) })
      .catch((err: unknown) => { log.error({ err, predictionId: entry.id, event }, 'could not record a webhook delivery') })
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
        kept = await keepImages(entry.id, entry.upstreamId, output)
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
      const { create: _create, ...rest } = entry
      const final: PredictionEntry = { ...rest, last, finalized: true, kept }
      // Recorded before the record is final, so a process dying in between leaves the prediction to be finalized
      // again, and its events recorded then; recording is idempotent, so each is sent once whoever finalizes.
      if (pub.status === 'succeeded') await announce(final, 'output')
      await announce(final, 'completed')
      const written = await commit(final)
      log.info({ predictionId: entry.id, upstreamId: entry.upstreamId, status: pub.status, kept: kept.length }, 'prediction finalized')
      if (ended) opts.onEnded?.({ model: entry.model, status: pub.status, seconds: Math.max(0, now() - entry.createdAt) / 1000, credits: charged })
      tracks.get(entry.id)?.controller.abort(new Error('final'))
      return written
    })().finally(() => { finalizing.delete(entry.id) })
    finalizing.set(entry.id, work)
    return work
  }

  /** A prediction that ended before Replicate made it (refused create, canceled in the queue): failed or canceled, nothing owed. */
  function endUnmade (entry: PredictionEntry, status: 'failed' | 'canceled', error: PublicPrediction['error']): Promise<PredictionEntry> {
    const pub: PublicPrediction = { ...(entry.last as PublicPrediction), status, error, output: null, cost_credits: 0, started_at: null }
    return finalize(entry, pub)
  }

  /**
   * What Replicate said about the prediction, applied: the one place its upstream state enters our record. The
   * create's own answer ends the prediction once the files are there (sync mode answers `processing` with them);
   * a read or a webhook ends it only at a terminal status, which carries Replicate's completed_at. Images seen
   * before that are published as output while the prediction still reads processing.
   */
  async function apply (entry: PredictionEntry, prediction: Prediction, source: 'create' | 'read' = 'read'): Promise<PredictionEntry> {
    const settled = source === 'create' ? isSettled(prediction) : TERMINAL_STATUSES.has(prediction.status)
    const pub = toPublicPrediction(prediction, factsOf(entry))
    if (!settled && pub.status === 'succeeded') pub.status = 'processing'
    // Created when we accepted it, not when Replicate got the create a moment later.
    pub.created_at = (entry.last as PublicPrediction | undefined)?.created_at ?? pub.created_at
    const { create: _create, ...rest } = entry
    const next: PredictionEntry = { ...rest, upstreamId: prediction.id, last: pub }
    if (settled) return finalize(next, pub)
    const before = entry.last as PublicPrediction
    // Nothing new: no write, no event.
    if (entry.upstreamId === prediction.id && !entry.create && before.status === pub.status && before.started_at === pub.started_at && (before.output?.length ?? 0) === (pub.output?.length ?? 0)) return entry
    return commit(next)
  }

  function webhookFor (id: string): string | undefined {
    if (!opts.webhookUrl) return undefined
    const url = new URL(opts.webhookUrl)
    url.searchParams.set('prediction', id)
    return url.toString()
  }

  /** Waits for an upstream create slot as long as it takes: an accepted create is a promise. */
  async function takeSlot (signal: AbortSignal): Promise<void> {
    for (;;) {
      try {
        await opts.shaper.acquire(signal)
        return
      } catch (err) {
        if (!(err instanceof AppError) || (err.code !== 'upstream_rate_limited' && err.code !== 'upstream_queue_full')) throw err
        const retry = Number(err.extra.retry_after ?? 1)
        await abortableSleep(Math.max(250, retry * 1000), signal)
      }
    }
  }

  /** Sends a queued create and applies its answer. */
  async function send (entry: PredictionEntry, t: Track, slotTaken: boolean): Promise<PredictionEntry> {
    const create = entry.create!
    if (!slotTaken) {
      queued++
      try {
        await takeSlot(AbortSignal.any([t.controller.signal, t.createAbort.signal]))
      } finally {
        queued--
      }
    }
    // Written before the request goes: a restart then looks for it upstream instead of sending it again. (A create
    // that had its slot when accepted was written with it already: one write less on the busiest path.)
    let current = create.sentAt === null ? await commit({ ...entry, create: { ...create, sentAt: now() } }) : entry
    if (current.finalized) return current
    t.stage = 'sending'
    let prediction: Prediction
    try {
      prediction = await opts.replicate.createPrediction(create.replicateModel, create.input ?? {}, {
        wait: syncWindowSeconds,
        cancelAfter: opts.cancelAfter,
        ...(opts.webhookUrl ? { webhook: webhookFor(entry.id), webhookEventsFilter: ['completed'] } : {}),
        signal: t.createAbort.signal,
        onAbandoned: (p) => t.abandoned.resolve(p)
      })
    } catch (err) {
      if (t.createAbort.signal.aborted) throw t.createAbort.signal.reason
      throw err
    }
    t.upstreamId = prediction.id
    log.info({ predictionId: entry.id, upstreamId: prediction.id, model: entry.model, status: prediction.status }, 'prediction created')
    current = (await store.getPrediction(entry.id)) ?? current
    if (current.finalized) return current
    await announce({ ...current, last: toPublicPrediction(prediction, factsOf(current)) }, 'start')
    return apply(current, prediction, 'create')
  }

  /**
   * A create some process sent and never saw answered (it died): Replicate echoes the input, so the prediction is
   * looked for by model and input near the time it was sent. Found, it is followed. Not found, it never arrived:
   * the prediction fails and its credits are released. (Sending it again could make a second prediction, should
   * the list be behind; a queued create, never sent, is sent after a restart instead.)
   */
  async function findHeld (entry: PredictionEntry, signal: AbortSignal, afterMs = reconcileAfterMs): Promise<PredictionEntry> {
    const create = entry.create!
    const sentAt = create.sentAt!
    const due = sentAt + afterMs - now()
    if (due > 0) await abortableSleep(due, signal)
    const listed = await opts.replicate.listPredictions({ createdAfter: new Date(sentAt - SKEW_MS), createdBefore: new Date(now() + SKEW_MS), signal })
    // A twin (same model and input, another of our predictions) may own a candidate: those are skipped.
    const claimed = new Set((await store.listUnfinalized()).map((e) => e.upstreamId).filter((id): id is string => id !== undefined))
    const found = listed
      .filter((p) => p.model === create.replicateModel && inputHash(p.input) === create.inputHash && !claimed.has(p.id))
      .sort((a, b) => Math.abs(Date.parse(a.created_at) - sentAt) - Math.abs(Date.parse(b.created_at) - sentAt))[0]
    if (found) {
      log.info({ predictionId: entry.id, upstreamId: found.id }, 'found the prediction of an interrupted create')
      return apply(entry, found)
    }
    log.info({ predictionId: entry.id }, 'an interrupted create never reached Replicate; credits released')
    return endUnmade(entry, 'failed', { code: 'upstream_error', message: 'The create was interrupted before it reached Replicate; nothing was charged.' })
  }

  /** Follows a created prediction to its end: the webhook first when there is one, else reads with backoff. */
  async function follow (entry: PredictionEntry, signal: AbortSignal, heldFull: boolean): Promise<void> {
    let current = entry
    if (graceMs > 0) {
      // The webhook ends it first (finalize aborts this wait); past the grace period, a read catches a lost one.
      await abortableSleep(graceMs, signal)
    }
    // A create held for the whole sync window ended a long prediction: no use polling fast. The first read comes a
    // moment after a whole interval: a prediction that ends a whole number of intervals past the window would
    // otherwise end just as a read arrives, and cost one read more.
    let delay = heldFull && graceMs === 0 ? poll.maxIntervalMs : poll.initialMs
    if (graceMs === 0) await abortableSleep(heldFull ? delay + READ_SLACK_MS : delay, signal)
    for (;;) {
      const upstreamId = upstreamIdOf(current)!
      let prediction: Prediction
      try {
        prediction = await opts.replicate.getPrediction(upstreamId, { signal })
      } catch (err) {
        if (signal.aborted) throw err
        if (err instanceof ReplicateApiError && err.status === 404) {
          // Replicate no longer knows it: nothing will be delivered, so nothing is owed.
          log.warn({ predictionId: current.id, upstreamId }, 'tracked prediction is gone upstream')
          await endUnmade(current, 'failed', { code: 'prediction_failed', message: 'Replicate no longer knows this prediction.' })
          return
        }
        log.warn({ predictionId: current.id, code: (err as { code?: string }).code }, 'reading a prediction failed; retrying')
        await abortableSleep(poll.maxIntervalMs, signal)
        continue
      }
      current = await apply(current, prediction)
      if (current.finalized) return
      await abortableSleep(delay, signal)
      delay = Math.min(Math.round(delay * 1.5), poll.maxIntervalMs)
    }
  }

  // Callers watching predictions share one subscription, one read and one record per prediction (watch.ts).
  const watches = createWatches({ feed, read: (id) => store.getPrediction(id), onError: (err, id) => { log.warn({ err, predictionId: id }, 'could not read a watched prediction') } })
  const waitForFinal = watches.waitForFinal

  /** Asks Replicate to cancel a created prediction and applies its answer. */
  async function cancelUpstream (entry: PredictionEntry, why: string): Promise<PredictionEntry> {
    const upstreamId = upstreamIdOf(entry)!
    const prediction = await opts.replicate.cancelPrediction(upstreamId)
    log.info({ predictionId: entry.id, upstreamId, status: prediction.status, why }, 'prediction canceled upstream')
    return apply((await store.getPrediction(entry.id)) ?? entry, prediction)
  }

  /** One prediction's tracker on this instance, while it holds the lease. */
  function track (id: string, start?: { entry: PredictionEntry, slotTaken: boolean, created: Deferred<PredictionEntry> }): void {
    if (closed || tracks.has(id)) return
    const t: Track = { abandoned: deferred(), controller: new AbortController(), createAbort: new AbortController(), stage: start ? 'queued' : 'following', upstreamId: null }
    tracks.set(id, t)
    const lease = `track:${id}`
    let renew: NodeJS.Timeout | undefined
    let unsubscribe = (): void => {}
    t.done = (async () => {
      try {
        if (!(await store.lease(lease, instanceId, leaseMs, now()))) {
          start?.created.reject(new AppError('internal_error', 'Another instance tracks this prediction.'))
          return
        }
        renew = setInterval(() => {
          store.lease(lease, instanceId, leaseMs, now()).then((ok) => {
            if (!ok) t.controller.abort(new Error('lease lost'))
          }).catch(() => {})
        }, Math.max(250, Math.floor(leaseMs / 3)))
        renew.unref()
        // Changes written elsewhere reach this tracker too: a webhook's finalization, a cancel asked on another instance.
        let cancelHeard = false
        unsubscribe = feed.subscribe(id, (e) => {
          if (e.finalized) return t.controller.abort(new Error('final'))
          if (!e.cancelRequested || cancelHeard) return
          cancelHeard = true
          if (t.stage !== 'following') return t.createAbort.abort(new CanceledCreate('canceled'))
          // The create answered just before the cancel was asked elsewhere: it is canceled upstream from here.
          if (t.upstreamId) {
            const { create: _create, ...known } = e
            cancelUpstream({ ...known, upstreamId: t.upstreamId }, 'canceled on another instance')
              .catch((err: unknown) => { log.warn({ err, predictionId: id }, 'could not cancel a prediction upstream') })
          }
        })
        let entry = start?.entry ?? await store.getPrediction(id)
        if (!entry || entry.finalized) return
        let heldFull = false
        if (entry.create?.sentAt != null && !start) {
          t.stage = 'following'
          entry = await findHeld(entry, t.controller.signal)
          if (entry.cancelRequested && !entry.create && !entry.finalized) entry = await cancelUpstream(entry, 'canceled while its create was held')
        }
        if (entry.create && (entry.create.sentAt === null || start)) {
          if (entry.cancelRequested) {
            await endUnmade(entry, 'canceled', null)
            return
          }
          const sentAt = now()
          try {
            entry = await send(entry, t, start?.slotTaken ?? false)
          } catch (err) {
            // Shutting down: a queued create stays queued in the store for the next instance to send.
            if (closed) {
              start?.created.reject(err)
              return
            }
            if (err instanceof CanceledCreate) {
              start?.created.reject(err)
              const current = (await store.getPrediction(id)) ?? entry
              // Stopped while held: once the client has found and canceled it, Replicate says whether it had started
              // (then its quote is owed, as for any cancel) or even finished. Not sent, or never found: nothing is owed.
              const outcome = t.stage === 'sending'
                ? await Promise.race([t.abandoned.promise, abortableSleep((syncWindowSeconds + 10) * 1000, t.controller.signal).then(() => undefined, () => undefined)])
                : undefined
              if (outcome) await apply(current, outcome, 'create')
              else await endUnmade(current, 'canceled', null)
              return
            }
            if (t.controller.signal.aborted) {
              // Final already, or the lease went to another instance, which carries on from the store.
              start?.created.reject(err)
              return
            }
            if (err instanceof ReplicateTimeoutError || (err instanceof ReplicateNetworkError && err.sent)) {
              // No answer, but the create may have reached Replicate: the caller hears so, with our id to read it
              // by, and the prediction is looked for by its input as after a crash, then followed.
              log.warn({ predictionId: id, code: (err as { code?: string }).code }, 'an upstream create went unanswered; looking for it')
              start?.created.reject(new ReplicateTimeoutError('Replicate did not answer the create in time; read the prediction for how it goes.', id, { cause: err }))
              t.stage = 'following'
              // Looked for once any create sent then has surely landed (as after a crash), so a late one is not missed.
              entry = await findHeld((await store.getPrediction(id)) ?? entry, t.controller.signal)
              if (!entry.finalized) await follow(entry, t.controller.signal, false)
              return
            }
            start?.created.reject(err)
            const problem = toProblem(err, '')
            log.warn({ predictionId: id, code: problem.body.code, status: problem.status }, 'upstream create failed')
            await endUnmade((await store.getPrediction(id)) ?? entry, 'failed', { code: problem.body.code, message: problem.body.detail })
            return
          }
          start?.created.resolve(entry)
          heldFull = now() - sentAt >= syncWindowSeconds * 1000 - 1_000
        }
        if (entry.finalized) return
        t.stage = 'following'
        await follow(entry, t.controller.signal, heldFull)
      } catch (err) {
        start?.created.reject(err)
        if (!t.controller.signal.aborted) log.error({ err, predictionId: id }, 'tracking a prediction failed')
      } finally {
        t.stage = 'done'
        clearInterval(renew)
        unsubscribe()
        tracks.delete(id)
        await store.releaseLease(lease, instanceId).catch(() => {})
      }
    })()
  }

  async function sweep (): Promise<number> {
    const open = await store.listUnfinalized()
    for (const entry of open) track(entry.id)
    return open.length
  }

  return {
    submit (entry, o) {
      const created = deferred<PredictionEntry>()
      // With its slot in hand the create goes at once: it is written as sent from the start.
      const accepted = commit(o.slotTaken ? { ...entry, create: { ...entry.create!, sentAt: now() } } : entry)
      accepted.then((written) => { track(written.id, { entry: written, slotTaken: o.slotTaken, created }) }, (err: unknown) => { created.reject(err) })
      // A caller that only awaits `accepted` must not leave an unhandled rejection behind.
      created.promise.catch(() => {})
      return { accepted, created: created.promise }
    },

    waitForFinal,
    follow: watches.follow,
    current: watches.current,

    async cancel (entry, why) {
      if (entry.finalized) return entry
      const local = tracks.get(entry.id)
      if (entry.create) {
        if (local && local.stage !== 'following') {
          // Queued here: never sent. Held here: the client finds it by its input and cancels it upstream.
          local.createAbort.abort(new CanceledCreate(why))
        } else {
          // Its tracker is on another instance (or none yet): the change feed tells it.
          await commit({ ...entry, cancelRequested: true })
          if (!local) track(entry.id)
        }
        return (await waitForFinal(entry.id, 10_000)) ?? entry
      }
      return cancelUpstream(entry, why)
    },

    async onUpstreamUpdate (prediction, id) {
      // Only an end is acted on: webhooks come twice or out of order, and an earlier state adds nothing.
      if (!TERMINAL_STATUSES.has(prediction.status)) return 'ignored'
      const entry = await store.getPrediction(id ?? prediction.id)
      if (!entry || entry.finalized) return 'ignored'
      const known = upstreamIdOf(entry)
      // The signature vouches for the body, not for our id in the URL: the body must be this prediction's.
      if (known !== undefined ? known !== prediction.id : inputHash(prediction.input) !== entry.create?.inputHash) return 'ignored'
      apply(entry, prediction).catch((err: unknown) => { log.error({ err, predictionId: entry.id }, 'finalizing a prediction failed') })
      return 'finalizing'
    },

    queueFull: () => queued >= maxQueued,

    async resume () {
      const count = await sweep()
      if (opts.sweepMs !== 0) {
        // Picks up predictions whose tracker died with another instance (its lease lapses).
        sweepTimer = setInterval(() => { sweep().catch((err: unknown) => log.warn({ err }, 'sweep failed')) }, opts.sweepMs ?? 30_000)
        sweepTimer.unref()
      }
      return count
    },

    tracked: () => tracks.size,
    queued: () => queued,

    snapshot (limit) {
      return [...tracks.entries()].slice(0, limit).map(([id, t]) => ({ id, upstream_id: t.upstreamId, stage: t.stage }))
    },

    async idle () {
      while (finalizing.size > 0) await Promise.allSettled([...finalizing.values()])
    },

    async close () {
      closed = true
      clearInterval(sweepTimer)
      // A create in flight is let finish, so its answer is recorded (and its images kept); the shutdown's grace
      // period bounds the wait. Everything else stops now and is picked up from the store by the next instance.
      const stopping = [...tracks.values()]
      for (const t of stopping) if (t.stage !== 'sending') t.controller.abort(new Error('closing'))
      await Promise.allSettled([...stopping.map((t) => t.done), ...finalizing.values()])
    }
  }
}

interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (err: unknown) => void
}

function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
