import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import { calculateCost, findCatalogModel, findModelByReplicateRef, getImageToImageModelForPlan, getModelForPlan } from '../models/catalog.ts'
import { mapImageToImage, mapTextToImage } from '../models/mapping.ts'
import type { ModerationProvider, ModerationVerdict } from '../moderation/types.ts'
import type { ReplicateClient } from '../replicate/client.ts'
import { ReplicateTimeoutError } from '../replicate/errors.ts'
import { failureError, isSettled, normalizeOutput } from '../replicate/predictions.ts'
import type { Prediction, WebhookEvent } from '../replicate/types.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { ImageToImageRequest, TextToImageRequest } from '../schemas/generation.ts'
import { createMemoryRecordStore } from './record-store.ts'
import type { PredictionRecord, PredictionRecordStore } from './record-store.ts'

/** An image-to-image input after checks: what to send upstream, and its size when known. */
export interface ResolvedImage {
  uri: string
  width?: number | undefined
  height?: number | undefined
  /** The checked bytes, for image moderation. */
  bytes?: Buffer | undefined
}

export interface PredictionServiceOptions {
  replicate: ReplicateClient
  moderation: ModerationProvider
  /** Judges image-to-image input images before anything is sent; absent or null: images are not judged. */
  imageModeration?: { checkImage: (image: Buffer, opts?: { signal?: AbortSignal }) => Promise<ModerationVerdict> } | null
  resolveImage: (imageUrl: string, signal?: AbortSignal) => Promise<ResolvedImage>
  defaultPlan: string
  /** Replicate-side deadline for every prediction (Cancel-After), so nothing abandoned runs for long. */
  cancelAfter: string
  log: FastifyBaseLogger
  store?: PredictionRecordStore
  /** Poll cadence of long-polls; the defaults suit Replicate's 3000 reads/min budget. */
  poll?: { initialMs?: number, intervalMs?: number, maxIntervalMs?: number }
  /** Where Replicate should post each prediction's events, and which; absent: no webhooks. */
  webhook?: { url: string, events: WebhookEvent[] }
}

export interface CreateOptions {
  /** Seconds to wait for the result in this request; null answers at once. */
  waitSeconds: number | null
  signal?: AbortSignal
  log?: FastifyBaseLogger
  /** Runs after every check, right before the create is sent, with exactly what will be sent; a throw stops the create. */
  beforeCreate?: (info: { replicateModel: string, input: Record<string, unknown>, warnings: unknown[] }) => Promise<void>
}

export interface CreateResult {
  prediction: PublicPrediction
  /** Settled within the wait: the caller gets 200; otherwise 202 with a Location. */
  settled: boolean
}

export interface PredictionService {
  createTextToImage: (body: TextToImageRequest, opts: CreateOptions) => Promise<CreateResult>
  createImageToImage: (body: ImageToImageRequest, opts: CreateOptions) => Promise<CreateResult>
  get: (id: string, opts?: { waitSeconds?: number, signal?: AbortSignal }) => Promise<PublicPrediction>
  cancel: (id: string, opts?: { signal?: AbortSignal }) => Promise<PublicPrediction>
  close: () => void
}

export function predictionUrls (id: string) {
  return { get: `/v1/predictions/${id}`, cancel: `/v1/predictions/${id}/cancel` }
}

function publicStatus (p: Prediction): PublicPrediction['status'] {
  // Sync mode hands over the files while Replicate still says `processing`; for our callers the images are done.
  if (p.status === 'processing' && normalizeOutput(p.output).length > 0) return 'succeeded'
  return p.status
}

function publicError (p: Prediction): PublicPrediction['error'] {
  if (p.status === 'failed') {
    const err = failureError(p)
    return { code: err.code === 'REPLICATE_CONTENT_SAFETY' ? 'content_policy_violation' : 'prediction_failed', message: err.message }
  }
  if (p.status === 'aborted') return { code: 'deadline_exceeded', message: 'The prediction reached its deadline before the model started.' }
  return null
}

/**
 * Credits as the ledger will count them: the quote while running, images delivered on success,
 * nothing for a failure or for a prediction that never started.
 */
function costCredits (p: Prediction, record: Pick<PredictionRecord, 'creditsPerImage' | 'numImages'>): number {
  const status = publicStatus(p)
  if (status === 'succeeded') return record.creditsPerImage * normalizeOutput(p.output).length
  if (status === 'failed' || status === 'aborted') return 0
  if (status === 'canceled') return p.started_at ? record.creditsPerImage * record.numImages : 0
  return record.creditsPerImage * record.numImages
}

export function toPublicPrediction (p: Prediction, record: PredictionRecord | undefined): PublicPrediction {
  const catalogModel = record ? findCatalogModel(record.model) : findModelByReplicateRef(p.model)
  // Without our record (another instance made it, or it aged out) the quote is rebuilt from the catalog.
  const facts = record ?? { creditsPerImage: catalogModel?.creditsPerImage ?? 0, numImages: Number(p.input?.num_outputs ?? 1) || 1 }
  const output = normalizeOutput(p.output)
  return {
    id: p.id,
    status: publicStatus(p),
    model: record?.model ?? catalogModel?.id ?? p.model,
    created_at: p.created_at,
    started_at: p.started_at ?? null,
    completed_at: p.completed_at ?? null,
    output: output.length > 0 ? output : null,
    error: publicError(p),
    cost_credits: costCredits(p, facts),
    warnings: record?.warnings ?? [],
    urls: predictionUrls(p.id)
  }
}

interface Watch {
  promise: Promise<Prediction>
  /** The newest state the poller saw, so a long-poll that runs out answers without another upstream read. */
  latest: Prediction | undefined
  controller: AbortController
  waiters: number
}

export function createPredictionService (opts: PredictionServiceOptions): PredictionService {
  const store = opts.store ?? createMemoryRecordStore()
  const watches = new Map<string, Watch>()
  const poll = { initialMs: 250, intervalMs: 500, maxIntervalMs: 2_000, ...opts.poll }

  /** Blocklist names a provider reported (hosted providers do); the caller only learns that one matched. */
  function blocklistsOf (verdict: ModerationVerdict): string[] {
    const named = (verdict as { blocklists?: unknown }).blocklists
    return Array.isArray(named) ? named.filter((n): n is string => typeof n === 'string') : []
  }

  async function moderate (prompt: string, log: FastifyBaseLogger, signal?: AbortSignal): Promise<void> {
    const verdict = await opts.moderation.checkText(prompt, { signal })
    if (verdict.allowed) return
    const blocklists = blocklistsOf(verdict)
    // The prompt itself is never logged: only which rules matched.
    log.warn({ categories: verdict.categories, provider: verdict.provider, ...(blocklists.length > 0 ? { blocklists } : {}) }, 'prompt refused by the content policy')
    throw new AppError('content_policy_violation', 'The prompt was refused by the content policy.', {
      categories: verdict.categories,
      ...(blocklists.length > 0 ? { blocklist_match: true } : {})
    })
  }

  async function moderateImage (image: ResolvedImage, log: FastifyBaseLogger, signal?: AbortSignal): Promise<void> {
    if (!opts.imageModeration || !image.bytes) return
    const verdict = await opts.imageModeration.checkImage(image.bytes, { signal })
    if (verdict.allowed) return
    log.warn({ categories: verdict.categories, provider: verdict.provider }, 'input image refused by the content policy')
    throw new AppError('content_policy_violation', 'The input image was refused by the content policy.', { categories: verdict.categories, field: 'image_url' })
  }

  async function submit (modelId: string, replicateModel: string, input: Record<string, unknown>, meta: Pick<PredictionRecord, 'creditsPerImage' | 'numImages' | 'warnings'>, o: CreateOptions): Promise<CreateResult> {
    const log = o.log ?? opts.log
    await o.beforeCreate?.({ replicateModel, input, warnings: meta.warnings })
    const prediction = await opts.replicate.createPrediction(replicateModel, input, {
      wait: o.waitSeconds ?? undefined,
      cancelAfter: opts.cancelAfter,
      ...(opts.webhook ? { webhook: opts.webhook.url, webhookEventsFilter: opts.webhook.events } : {}),
      signal: o.signal
    })
    const record: PredictionRecord = { id: prediction.id, model: modelId, createdAt: Date.now(), ...meta }
    store.set(record)
    log.info({ predictionId: prediction.id, model: modelId, status: prediction.status }, 'prediction created')
    if (prediction.status === 'failed') {
      const err = failureError(prediction)
      if (err.code === 'REPLICATE_CONTENT_SAFETY') {
        log.warn({ predictionId: prediction.id }, 'model reported unsafe output')
        throw err
      }
    }
    return { prediction: toPublicPrediction(prediction, record), settled: isSettled(prediction) }
  }

  async function createTextToImage (body: TextToImageRequest, o: CreateOptions): Promise<CreateResult> {
    const log = o.log ?? opts.log
    const modelId = body.model ?? getModelForPlan(opts.defaultPlan)
    const mapped = mapTextToImage(body, modelId)
    const numImages = body.num_outputs ?? 1
    const creditsPerImage = calculateCost(modelId, 1)
    await moderate(body.prompt, log, o.signal)
    return submit(modelId, mapped.replicateModel, mapped.input, { creditsPerImage, numImages, warnings: mapped.warnings }, o)
  }

  async function createImageToImage (body: ImageToImageRequest, o: CreateOptions): Promise<CreateResult> {
    const log = o.log ?? opts.log
    // This service has no plans of its own (tenancy enforces them), so no model is off limits here.
    const modelId = body.model ?? getImageToImageModelForPlan(opts.defaultPlan, { unrestricted: true })
    // Map once with the request's own image_url so every field problem is reported before anything is fetched.
    mapImageToImage(body, modelId, { url: body.image_url })
    await moderate(body.prompt, log, o.signal)
    const image = await opts.resolveImage(body.image_url, o.signal)
    await moderateImage(image, log, o.signal)
    const mapped = mapImageToImage(body, modelId, { url: image.uri, width: image.width, height: image.height })
    const creditsPerImage = calculateCost(modelId, 1)
    return submit(modelId, mapped.replicateModel, mapped.input, { creditsPerImage, numImages: 1, warnings: mapped.warnings }, o)
  }

  /**
   * One upstream poller per prediction, however many callers long-poll it: each extra waiter costs
   * Replicate nothing. The poller stops when the prediction settles or its last waiter leaves.
   */
  function watch (id: string): Watch {
    const existing = watches.get(id)
    if (existing) return existing
    const controller = new AbortController()
    const w: Watch = {
      controller,
      waiters: 0,
      latest: undefined,
      promise: opts.replicate.waitForCompletion(id, {
        maxWaitTime: 60_000,
        initialWait: poll.initialMs,
        pollInterval: poll.intervalMs,
        maxInterval: poll.maxIntervalMs,
        cancelOnTimeout: false,
        signal: controller.signal,
        onPoll: (prediction) => { w.latest = prediction }
      }).finally(() => {
        if (watches.get(id) === w) watches.delete(id)
      })
    }
    // Rejections are delivered to each waiter; this keeps an abandoned poller from being "unhandled".
    w.promise.catch(() => {})
    watches.set(id, w)
    return w
  }

  async function get (id: string, o: { waitSeconds?: number, signal?: AbortSignal } = {}): Promise<PublicPrediction> {
    const current = await opts.replicate.getPrediction(id, { signal: o.signal })
    if (!o.waitSeconds || isSettled(current)) return toPublicPrediction(current, store.get(id))
    const w = watch(id)
    w.waiters++
    let timer: NodeJS.Timeout | undefined
    try {
      const settled = await Promise.race([
        w.promise,
        new Promise<null>((resolve) => { timer = setTimeout(resolve, o.waitSeconds! * 1000, null) }),
        new Promise<never>((_resolve, reject) => {
          o.signal?.addEventListener('abort', () => reject(o.signal?.reason), { once: true })
        })
      ])
      if (settled) return toPublicPrediction(settled, store.get(id))
    } catch (err) {
      if (!(err instanceof ReplicateTimeoutError)) throw err
    } finally {
      clearTimeout(timer)
      if (--w.waiters === 0) w.controller.abort(new Error('no more waiters'))
    }
    // The wait ran out: answer with the newest state seen.
    return toPublicPrediction(w.latest ?? current, store.get(id))
  }

  async function cancel (id: string, o: { signal?: AbortSignal } = {}): Promise<PublicPrediction> {
    const prediction = await opts.replicate.cancelPrediction(id, { signal: o.signal })
    return toPublicPrediction(prediction, store.get(id))
  }

  return {
    createTextToImage,
    createImageToImage,
    get,
    cancel,
    close () {
      for (const w of watches.values()) w.controller.abort(new Error('service closing'))
      watches.clear()
    }
  }
}
