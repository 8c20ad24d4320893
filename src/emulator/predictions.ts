import type { ReplicateModelSpec } from '../models/replicate-models.ts'
import { TERMINAL_STATUSES } from '../replicate/types.ts'
import type { Prediction, PredictionStatus, WebhookEvent } from '../replicate/types.ts'
import { formatTimestamp } from './clock.ts'
import type { Clock } from './clock.ts'
import { newPredictionId, randomSeed } from './ids.ts'
import { moderate, plannedLogs } from './model-behaviour.ts'
import type { PlannedLogs } from './model-behaviour.ts'
import type { ResolvedOptions } from './options.ts'
import { imageInputFields, outputSize, sizeSourceField } from './output-size.ts'
import type { Size } from './output-size.ts'
import type { OutputFormat, RenderSpec } from './render.ts'
import type { WebhookSender } from './webhook-sender.ts'

/**
 * The prediction lifecycle: starting → processing → (outputs uploaded) → succeeded, or failed,
 * canceled, aborted; with sync waiters, deadlines, webhooks and data removal after the TTL.
 * Every duration is emulated time, scaled by the clock.
 */

export const DEFAULT_WEBHOOK_EVENTS: readonly WebhookEvent[] = ['start', 'output', 'logs', 'completed']
const WEBHOOK_THROTTLE_MS = 500

export interface CreateParams {
  model: ReplicateModelSpec
  /** `hidden` for official-model routes, else the version id the caller named. */
  version: string
  input: Record<string, unknown>
  webhook?: string
  webhookEventsFilter?: WebhookEvent[]
  cancelAfterMs?: number
}

type SizeResult = { ok: true, size: Size } | { ok: false, error: string }

interface Plan {
  seed: number
  /** Indexes of the images that pass the safety checker. */
  kept: number[]
  format: OutputFormat
  quality: number
  failure?: { error: string, logs: string }
  startingMs: number
  predictMs: number
  size: Promise<SizeResult>
  logs: PlannedLogs
}

interface PredictionRecord {
  seq: number
  id: string
  model: ReplicateModelSpec
  version: string
  input: Record<string, unknown>
  status: PredictionStatus
  output: unknown
  logs: string
  error: string | null
  createdAt: number
  startedAt?: number
  completedAt?: number
  deadlineAt?: number
  dataRemoved: boolean
  webhook?: string
  webhookEventsFilter?: WebhookEvent[]
  plan: Plan
  size?: Size
  timers: Set<() => void>
  /** Sync waits; called with `true` to end them regardless of state. */
  waiters: Set<(force?: boolean) => void>
  webhookChain: Promise<void>
  lastIntermediateAt: number
  trailingWebhook?: () => void
}

export interface ListQuery {
  createdAfter?: number
  createdBefore?: number
  /** Sequence number: list predictions created before it. */
  before?: number
  limit: number
}

export interface PredictionEngine {
  create(params: CreateParams): Prediction
  get(id: string): Prediction | undefined
  cancel(id: string): Prediction | undefined
  /**
   * Holds until output exists or the prediction is terminal (`ready`), or `emulatedMs` pass;
   * gives the prediction as it was at that moment.
   */
  waitForOutput(id: string, emulatedMs: number): Promise<{ ready: boolean, prediction: Prediction | undefined }>
  list(query: ListQuery): { results: Prediction[], nextBefore?: number }
  /** What to render for `/delivery/<id>/<file>`, if it is (still) served. */
  delivery(id: string, file: string): RenderSpec | undefined
  /**
   * Removes a finished prediction's input, logs and output files now, as its delivery time running out does
   * (`deliveryTtlMs` after completion); false when there is no such finished prediction.
   */
  removeData(id: string): boolean
  /** Ends every sync wait now and forgets every prediction. */
  reset(): void
}

export interface EngineDeps {
  options: ResolvedOptions
  clock: Clock
  publicUrl(): string
  webhooks: WebhookSender
  readImageSize(source: string): Promise<Size>
  onDataRemoved?(id: string): void
}

export function createPredictionEngine (deps: EngineDeps): PredictionEngine {
  const { options, clock } = deps
  const records = new Map<string, PredictionRecord>()
  let seq = 0

  const precision = (): 'ms' | 'us' | 'ns' => options.pitfalls.timestampPrecision ?? 'ms'
  const isTerminal = (r: PredictionRecord): boolean => TERMINAL_STATUSES.has(r.status)
  const outputUrl = (r: PredictionRecord, index: number): string =>
    `${deps.publicUrl()}/delivery/${r.id}/out-${index}.${r.plan.format}`

  function resolveSize (model: ReplicateModelSpec, input: Record<string, unknown>): Promise<SizeResult> {
    const sourceField = sizeSourceField(model.ref, input)
    const reads = imageInputFields(model)
      .filter((field) => typeof input[field] === 'string')
      .map(async (field) => {
        try {
          return { field, size: await deps.readImageSize(input[field] as string) }
        } catch (err) {
          throw new Error(`Failed to read input image "${field}": ${(err as Error).message}`, { cause: err })
        }
      })
    return Promise.all(reads).then(
      (sizes) => ({ ok: true as const, size: outputSize(model.ref, input, sizes.find((s) => s.field === sourceField)?.size) }),
      (err: Error) => ({ ok: false as const, error: err.message })
    )
  }

  function plan (model: ReplicateModelSpec, input: Record<string, unknown>): Plan {
    const seed = typeof input.seed === 'number' ? input.seed : randomSeed()
    const requested = typeof input.num_outputs === 'number' ? input.num_outputs : 1
    const formatDefault = model.input.properties.output_format?.default
    const [minStart, maxStart] = options.startingMs
    const predictMs = (options.predictSeconds[model.ref] ?? model.typicalPredictSeconds) * 1000 * (1 + 0.25 * (requested - 1))
    const outcome = moderate(model, input, requested, options)
    return {
      seed,
      kept: outcome.kept,
      format: (typeof input.output_format === 'string' ? input.output_format : formatDefault ?? 'webp') as OutputFormat,
      quality: typeof input.output_quality === 'number' ? input.output_quality : 80,
      failure: outcome.failure,
      startingMs: minStart + Math.random() * (maxStart - minStart),
      predictMs,
      size: resolveSize(model, input),
      logs: plannedLogs(model, input, { seed, requested, seconds: predictMs / 1000 }, outcome)
    }
  }

  function view (r: PredictionRecord): Prediction {
    const p = precision()
    const base = `${deps.publicUrl()}/v1/predictions/${r.id}`
    const prediction: Prediction = {
      id: r.id,
      model: r.model.ref,
      version: r.version,
      input: r.input,
      logs: r.logs,
      output: r.output,
      data_removed: r.dataRemoved,
      error: r.error,
      status: r.status,
      source: 'api',
      created_at: formatTimestamp(r.createdAt, p),
      urls: {
        cancel: `${base}/cancel`,
        get: base,
        ...(options.pitfalls.omitWebUrl ? {} : { web: `${deps.publicUrl()}/p/${r.id}` })
      }
    }
    if (r.startedAt !== undefined) prediction.started_at = formatTimestamp(r.startedAt, p)
    if (r.completedAt !== undefined && !options.pitfalls.omitCompletedAt) prediction.completed_at = formatTimestamp(r.completedAt, p)
    if (r.deadlineAt !== undefined) prediction.deadline = formatTimestamp(r.deadlineAt, p)
    if (r.completedAt !== undefined) {
      prediction.metrics = {
        ...(r.status === 'succeeded' ? { image_count: r.plan.kept.length } : {}),
        ...(r.startedAt !== undefined ? { predict_time: round((r.completedAt - r.startedAt) / 1000) } : {}),
        total_time: round((r.completedAt - r.createdAt) / 1000)
      }
    }
    if (r.webhook !== undefined) {
      prediction.webhook = r.webhook
      if (r.webhookEventsFilter) prediction.webhook_events_filter = r.webhookEventsFilter
    }
    return prediction
  }

  function schedule (r: PredictionRecord, emulatedMs: number, fn: () => void): void {
    const cancel = clock.after(emulatedMs, () => {
      r.timers.delete(cancel)
      fn()
    })
    r.timers.add(cancel)
  }

  function notify (r: PredictionRecord, force = false): void {
    const waiters = [...r.waiters]
    r.waiters.clear()
    for (const wake of waiters) wake(force)
  }

  function sendWebhook (r: PredictionRecord, terminal: boolean): void {
    const url = r.webhook
    if (url === undefined) return
    const body = JSON.stringify(view(r))
    r.webhookChain = r.webhookChain.then(() => deps.webhooks.deliver(url, body, terminal))
  }

  function emit (r: PredictionRecord, events: WebhookEvent[]): void {
    if (r.webhook === undefined) return
    const filter = r.webhookEventsFilter ?? DEFAULT_WEBHOOK_EVENTS
    const wanted = events.filter((e) => filter.includes(e))
    if (wanted.length === 0) return
    if (wanted.includes('completed')) {
      r.trailingWebhook?.()
      r.trailingWebhook = undefined
      sendWebhook(r, true)
      return
    }
    if (wanted.includes('start')) {
      sendWebhook(r, false)
      return
    }
    // output and logs share one throttle; a throttled message goes out at the end of the window
    // carrying the newest state.
    if (r.trailingWebhook) return
    const gap = clock.scaled(WEBHOOK_THROTTLE_MS)
    const since = Date.now() - r.lastIntermediateAt
    if (since >= gap) {
      r.lastIntermediateAt = Date.now()
      sendWebhook(r, false)
      return
    }
    // Not among r.timers: it must outlive the prediction's end when `completed` is not wanted.
    r.trailingWebhook = clock.after((gap - since) / clock.timeScale, () => {
      r.trailingWebhook = undefined
      r.lastIntermediateAt = Date.now()
      sendWebhook(r, false)
    })
  }

  function finish (r: PredictionRecord, status: PredictionStatus, error: string | null = null): void {
    if (isTerminal(r)) return
    for (const cancel of r.timers) cancel()
    r.timers.clear()
    r.status = status
    r.error = error
    r.completedAt = clock.now()
    if (status !== 'succeeded') r.output = null
    notify(r)
    emit(r, ['completed'])
    schedule(r, options.deliveryTtlMs, () => removeData(r))
  }

  function removeData (r: PredictionRecord): void {
    if (r.dataRemoved) return
    r.dataRemoved = true
    // Inputs can hold megabytes of data URIs; a long-running emulator should not keep them.
    r.input = {}
    r.logs = ''
    r.output = null
    deps.onDataRemoved?.(r.id)
  }

  function start (r: PredictionRecord): void {
    if (r.status !== 'starting') return
    if (options.pitfalls.abortAll) {
      finish(r, 'aborted')
      return
    }
    r.status = 'processing'
    r.startedAt = clock.now()
    r.logs = r.plan.logs.start
    notify(r)
    emit(r, ['start'])
    emit(r, ['logs'])
    if (r.plan.logs.middle !== '') {
      schedule(r, r.plan.predictMs / 2, () => {
        r.logs += r.plan.logs.middle
        emit(r, ['logs'])
      })
    }
    schedule(r, r.plan.predictMs, () => { void produceOutput(r) })
  }

  async function produceOutput (r: PredictionRecord): Promise<void> {
    const size = await r.plan.size
    // Canceled, timed out or forgotten by a reset while the input image was being read.
    if (r.status !== 'processing' || records.get(r.id) !== r) return
    r.logs += r.plan.logs.end
    if (!size.ok) {
      r.logs += `${size.error}\n`
      finish(r, 'failed', size.error)
      return
    }
    if (r.plan.failure) {
      finish(r, 'failed', r.plan.failure.error)
      return
    }
    r.size = size.size
    const urls = r.plan.kept.map((i) => outputUrl(r, i))
    r.output = r.model.output === 'array' ? urls : urls[0]
    notify(r)
    emit(r, ['output', 'logs'])
    // Files are "uploaded" a moment before the prediction is marked complete (REFERENCE §2.1).
    schedule(r, options.uploadMs ?? Math.max(100, r.plan.predictMs * 0.05), () => finish(r, 'succeeded'))
  }

  return {
    create (params) {
      const createdAt = clock.now()
      const r: PredictionRecord = {
        seq: ++seq,
        id: newPredictionId(),
        model: params.model,
        version: params.version,
        input: params.input,
        status: 'starting',
        output: null,
        logs: '',
        error: null,
        createdAt,
        dataRemoved: false,
        webhook: params.webhook,
        webhookEventsFilter: params.webhookEventsFilter,
        plan: plan(params.model, params.input),
        timers: new Set(),
        waiters: new Set(),
        webhookChain: Promise.resolve(),
        lastIntermediateAt: 0
      }
      records.set(r.id, r)
      schedule(r, r.plan.startingMs, () => start(r))
      if (params.cancelAfterMs !== undefined) {
        r.deadlineAt = createdAt + clock.scaled(params.cancelAfterMs)
        schedule(r, params.cancelAfterMs, () => finish(r, r.status === 'starting' ? 'aborted' : 'canceled'))
      }
      return view(r)
    },
    get (id) {
      const r = records.get(id)
      return r && view(r)
    },
    cancel (id) {
      const r = records.get(id)
      if (!r) return undefined
      finish(r, 'canceled')
      return view(r)
    },
    waitForOutput (id, emulatedMs) {
      const r = records.get(id)
      if (!r) return Promise.resolve({ ready: false, prediction: undefined })
      const ready = (): boolean => r.output !== null || isTerminal(r)
      if (ready()) return Promise.resolve({ ready: true, prediction: view(r) })
      return new Promise((resolve) => {
        // The view is taken when the wait ends, before any later transition can happen.
        const wake = (force = false): void => {
          if (!force && !ready()) {
            r.waiters.add(wake)
            return
          }
          cancel()
          resolve({ ready: ready(), prediction: view(r) })
        }
        const cancel = clock.after(emulatedMs, () => {
          r.waiters.delete(wake)
          resolve({ ready: ready(), prediction: view(r) })
        })
        r.waiters.add(wake)
      })
    },
    list (query) {
      const matching = [...records.values()].reverse().filter((r) =>
        (query.before === undefined || r.seq < query.before) &&
        (query.createdAfter === undefined || r.createdAt >= query.createdAfter) &&
        (query.createdBefore === undefined || r.createdAt < query.createdBefore))
      const page = matching.slice(0, query.limit)
      const last = page.at(-1)
      return {
        results: page.map(view),
        ...(matching.length > query.limit && last ? { nextBefore: last.seq } : {})
      }
    },
    delivery (id, file) {
      const r = records.get(id)
      const match = /^out-(\d+)\.(webp|jpg|png)$/.exec(file)
      if (!r || !match || r.dataRemoved || r.output === null || !r.size) return undefined
      const index = Number(match[1])
      if (match[2] !== r.plan.format || !r.plan.kept.includes(index)) return undefined
      return {
        prompt: typeof r.input.prompt === 'string' ? r.input.prompt : '',
        seed: r.plan.seed,
        index,
        width: r.size.width,
        height: r.size.height,
        format: r.plan.format,
        quality: r.plan.quality
      }
    },
    removeData (id) {
      const r = records.get(id)
      if (!r || !isTerminal(r)) return false
      // The delivery-time timer is the only one a finished prediction still holds.
      for (const cancel of r.timers) cancel()
      r.timers.clear()
      removeData(r)
      return true
    },
    reset () {
      for (const r of records.values()) {
        for (const cancel of r.timers) cancel()
        r.trailingWebhook?.()
        // Sync waits answer with whatever state the prediction had.
        notify(r, true)
      }
      records.clear()
    }
  }
}

function round (seconds: number): number {
  return Math.round(seconds * 1e6) / 1e6
}
