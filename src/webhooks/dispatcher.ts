import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import type { SafePoster } from '../net/safe-fetch.ts'
import { abortableSleep } from '../replicate/retry.ts'
import type { StateStore, WebhookDelivery, WebhookEvent } from '../stores/types.ts'
import { RETRY_DELAYS_MS } from './schedule.ts'
import { webhookSecrets } from './secrets.ts'
import { webhookHeaders } from './signing.ts'

/**
 * Prediction events to the webhooks callers gave, signed per Standard Webhooks with the calling key's secret.
 * Each delivery is written to the store before its first attempt and after each one, and is worked on under a lease,
 * so it is sent by one instance at a time and survives a restart: short retry waits are slept here (holding the
 * lease), longer ones are left to the sweep, which any instance runs.
 */

export type DeliveryOutcome = 'delivered' | 'retrying' | 'failed'

export interface WebhookDispatcherOptions {
  store: StateStore
  poster: SafePoster
  log: FastifyBaseLogger
  /** Signs the kept-image URLs of a payload afresh for each attempt (they expire). */
  signPayload?: (payload: unknown) => unknown
  /** Waits after a failed attempt; tests record the waits instead. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  now?: () => number
  instanceId?: string
  /** How long a delivery's lease outlives the wait in hand; another instance takes over once it lapses. Default 30 s. */
  leaseMs?: number
  /** How often due deliveries (a longer wait, or a dead instance's) are looked for. Default 5 s; 0: never. */
  sweepMs?: number
  /** Waits longer than this are left to the sweep rather than slept in-process. Default 60 s. */
  inlineWaitMs?: number
  schedule?: readonly number[]
  onOutcome?: (outcome: DeliveryOutcome) => void
}

export interface WebhookDispatcher {
  /** Why a caller's webhook URL is refused (no DNS involved), or undefined. */
  violation: (url: string) => string | undefined
  /** Records a delivery, unless one of this prediction and event exists, and starts sending it in the background. */
  enqueue: (o: { predictionId: string, owner: string, url: string, event: WebhookEvent, payload: unknown }) => Promise<void>
  /** The secrets a key's deliveries are signed with (the current one first, then one just rotated out), made on first need. */
  secrets: (owner: string) => Promise<string[]>
  /** Starts the sweep. */
  start: () => void
  /** Resolves once no delivery is being worked on in this process. */
  idle: () => Promise<void>
  close: () => Promise<void>
}

/** Longer than the poster's deadline for one POST (10 s). */
const ATTEMPT_MS = 15_000

export function createWebhookDispatcher (opts: WebhookDispatcherOptions): WebhookDispatcher {
  const { store, poster, log } = opts
  const now = opts.now ?? Date.now
  const sleep = opts.sleep ?? abortableSleep
  const instanceId = opts.instanceId ?? randomUUID()
  const leaseMs = opts.leaseMs ?? 30_000
  const inlineWaitMs = opts.inlineWaitMs ?? 60_000
  const schedule = opts.schedule ?? RETRY_DELAYS_MS
  const running = new Map<string, Promise<void>>()
  const abort = new AbortController()
  let sweepTimer: NodeJS.Timeout | undefined
  let closed = false

  const secrets = (owner: string): Promise<string[]> => webhookSecrets(store, owner, now())

  /** One attempt; the delivery as it stands after it. */
  async function attempt (d: WebhookDelivery): Promise<WebhookDelivery> {
    const body = JSON.stringify({ type: `prediction.${d.event}`, timestamp: new Date(now()).toISOString(), data: opts.signPayload?.(d.payload) ?? d.payload })
    const headers = webhookHeaders(await secrets(d.owner), d.id, Math.floor(now() / 1000), body)
    let status: number | null = null
    let error: string | null = null
    let permanent = false
    try {
      status = await poster.post(d.url, body, headers)
      if (status < 200 || status >= 300) error = `answered ${status}`
    } catch (err) {
      // A URL the policy refuses stays refused (its name resolves to a private address): retrying will not help.
      permanent = err instanceof AppError && err.code === 'url_not_allowed'
      error = permanent ? (err as Error).message : `not reached (${(err as { code?: string }).code ?? (err as Error).name})`
    }
    const attempts = [...d.attempts, { at: now(), status, error }]
    if (error === null) return { ...d, attempts, state: 'delivered' }
    const wait = schedule[attempts.length - 1]
    if (permanent || wait === undefined) return { ...d, attempts, state: 'failed' }
    return { ...d, attempts, nextAt: now() + wait }
  }

  /** Works on one delivery until it ends or its next wait is long, holding its lease. */
  async function work (id: string): Promise<void> {
    const lease = `webhook:${id}`
    // Held past the longest an attempt can take (the poster's deadline), so no other instance sends it meanwhile.
    if (!(await store.lease(lease, instanceId, leaseMs + ATTEMPT_MS, now()))) return
    try {
      let d = await store.getWebhookDelivery(id)
      while (d !== undefined && d.state === 'pending' && !closed) {
        const due = d.nextAt - now()
        if (due > 0) {
          if (due > inlineWaitMs) return
          if (!(await store.lease(lease, instanceId, due + leaseMs, now()))) return
          await sleep(due, abort.signal)
          if (!(await store.lease(lease, instanceId, leaseMs + ATTEMPT_MS, now()))) return
        }
        d = await attempt(d)
        await store.putWebhookDelivery(d)
        const outcome: DeliveryOutcome = d.state === 'pending' ? 'retrying' : d.state
        opts.onOutcome?.(outcome)
        const last = d.attempts.at(-1)
        log[outcome === 'delivered' ? 'info' : 'warn']({ predictionId: d.predictionId, webhookId: d.id, event: d.event, attempt: d.attempts.length, status: last?.status, error: last?.error, outcome }, 'webhook delivery')
      }
    } catch (err) {
      if (!abort.signal.aborted) log.error({ err, webhookId: id }, 'webhook delivery failed')
    } finally {
      await store.releaseLease(lease, instanceId).catch(() => {})
    }
  }

  function run (id: string): void {
    if (closed || running.has(id)) return
    running.set(id, work(id).finally(() => { running.delete(id) }))
  }

  async function sweep (): Promise<void> {
    for (const d of await store.listDueWebhookDeliveries(now(), 100)) run(d.id)
  }

  return {
    violation: (url) => poster.violation(url),

    async enqueue (o) {
      const at = now()
      // One delivery per prediction and event: its id is the `webhook-id`, the same on every attempt.
      const delivery: WebhookDelivery = { id: `msg_${o.predictionId}_${o.event}`, ...o, state: 'pending', attempts: [], nextAt: at, createdAt: at }
      // Already there when an earlier finalization recorded it (then it is sent, or being sent, from that record).
      await store.addWebhookDelivery(delivery)
      run(delivery.id)
    },

    secrets,

    start () {
      if (opts.sweepMs === 0 || sweepTimer) return
      sweepTimer = setInterval(() => { sweep().catch((err: unknown) => log.warn({ err }, 'webhook sweep failed')) }, opts.sweepMs ?? 5_000)
      sweepTimer.unref()
      sweep().catch((err: unknown) => log.warn({ err }, 'webhook sweep failed'))
    },

    async idle () {
      while (running.size > 0) await Promise.allSettled([...running.values()])
    },

    async close () {
      closed = true
      clearInterval(sweepTimer)
      abort.abort(new Error('closing'))
      await Promise.allSettled([...running.values()])
      await poster.close()
    }
  }
}
