import { AppError } from '../errors.ts'
import type { ReplicateClient } from '../replicate/client.ts'
import type { StateStore } from '../stores/types.ts'

/**
 * Keeps every instance together under Replicate's create limit. Each create takes a slot from one
 * GCRA bucket in the shared store; a slot up to `maxWaitMs` ahead is waited for (the bounded queue),
 * anything later is refused with 429 and a Retry-After, and more than `maxQueue` waiters on this
 * instance is 503: callers hear "later" from us instead of meeting Replicate's own 429s.
 */
export interface UpstreamShaperOptions {
  perMinute: number
  burst: number
  maxWaitMs: number
  maxQueue: number
  now?: () => number
}

export interface UpstreamShaper {
  acquire: (signal?: AbortSignal) => Promise<void>
  readonly waiting: number
}

export const UPSTREAM_CREATE_BUCKET = 'upstream:create'

function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(resolve, ms)
    signal?.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason) }, { once: true })
  })
}

export function createUpstreamShaper (store: StateStore, o: UpstreamShaperOptions): UpstreamShaper {
  const now = o.now ?? Date.now
  let waiting = 0
  return {
    get waiting () { return waiting },
    async acquire (signal) {
      // A full queue only matters when a wait is needed: then only an immediate slot is asked for.
      // The place in the queue is held across the store call, so concurrent requests cannot all pass
      // the bound while the first of them is still asking the store.
      const queueFull = waiting >= o.maxQueue
      if (!queueFull) waiting++
      let holdsPlace = !queueFull
      try {
        const take = await store.rateTake(UPSTREAM_CREATE_BUCKET, { perMinute: o.perMinute, burst: o.burst, maxWaitMs: queueFull ? 0 : o.maxWaitMs }, now())
        if (!take.allowed && queueFull) {
          throw new AppError('upstream_queue_full', 'Too many generations are waiting for Replicate; try again shortly.', { retry_after: Math.max(1, Math.ceil(o.maxWaitMs / 1000)) })
        }
        if (!take.allowed) {
          throw new AppError('upstream_rate_limited', 'The service is at its Replicate create rate; try again later.', { retry_after: Math.max(1, Math.ceil(take.retryAfterMs / 1000)) })
        }
        if (take.waitMs <= 0) return
        if (!holdsPlace) {
          // Only possible with maxWaitMs 0 asked, which never grants a wait; kept for safety.
          waiting++
          holdsPlace = true
        }
        await sleep(take.waitMs, signal)
      } finally {
        if (holdsPlace) waiting--
      }
    }
  }
}

/** The client with every create shaped; reads are untouched. */
export function shapeCreates (client: ReplicateClient, shaper: UpstreamShaper): ReplicateClient {
  return {
    ...client,
    async createPrediction (model, input, opts) {
      await shaper.acquire(opts?.signal)
      return client.createPrediction(model, input, opts)
    }
  }
}
