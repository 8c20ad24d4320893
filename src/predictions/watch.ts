import type { PredictionEntry } from '../stores/types.ts'
import type { ChangeFeed } from './feed.ts'

/**
 * Callers watching predictions (long-polls, event streams, sync creates), shared per prediction: however many
 * callers watch one prediction, this instance holds one subscription to the change feed, reads the store once,
 * and keeps one copy of the record. Ten thousand waiters on a hundred predictions cost a hundred of each.
 */
export type WatchListener = (entry: PredictionEntry) => void

export interface PredictionWatches {
  /** The freshest state of a prediction someone here watches; undefined when nobody does. */
  current: (id: string) => PredictionEntry | undefined
  /**
   * Calls `listener` with the prediction's state as soon as it is known, then with each newer change, in seq order.
   * Returns the unsubscribe.
   */
  follow: (id: string, listener: WatchListener) => () => void
  /** Resolves with the prediction once it is final, or with its latest state when `ms` pass first; undefined if unknown. */
  waitForFinal: (id: string, ms: number, signal?: AbortSignal) => Promise<PredictionEntry | undefined>
}

interface Watch {
  latest: PredictionEntry | undefined
  listeners: Set<WatchListener>
  unsubscribe: () => void
}

export function createWatches (o: { feed: ChangeFeed, read: (id: string) => Promise<PredictionEntry | undefined>, onError?: (err: unknown, id: string) => void }): PredictionWatches {
  const watches = new Map<string, Watch>()

  function offer (w: Watch, entry: PredictionEntry): void {
    // Changes can overtake one another (the store read against the feed, or pub/sub): older ones are dropped.
    if (w.latest !== undefined && (entry.seq ?? 0) < (w.latest.seq ?? 0)) return
    w.latest = entry
    for (const listener of [...w.listeners]) listener(entry)
  }

  function follow (id: string, listener: WatchListener): () => void {
    let w = watches.get(id)
    if (!w) {
      const made: Watch = { latest: undefined, listeners: new Set(), unsubscribe: () => {} }
      // Subscribed first, read second: a change between the two is not missed.
      made.unsubscribe = o.feed.subscribe(id, (entry) => offer(made, entry))
      watches.set(id, made)
      o.read(id).then((entry) => { if (entry) offer(made, entry) }, (err: unknown) => o.onError?.(err, id))
      w = made
    }
    const watch = w
    watch.listeners.add(listener)
    if (watch.latest !== undefined) listener(watch.latest)
    let following = true
    return () => {
      if (!following) return
      following = false
      watch.listeners.delete(listener)
      if (watch.listeners.size === 0 && watches.get(id) === watch) {
        watch.unsubscribe()
        watches.delete(id)
      }
    }
  }

  return {
    current: (id) => watches.get(id)?.latest,
    follow,
    waitForFinal (id, ms, signal) {
      return new Promise((resolve, reject) => {
        let latest: PredictionEntry | undefined
        let done = false
        let stop = (): void => {}
        const finish = (value: PredictionEntry | undefined, err?: unknown): void => {
          if (done) return
          done = true
          stop()
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          if (err !== undefined) reject(err)
          else resolve(value)
        }
        const onAbort = (): void => finish(undefined, signal?.reason)
        const timer = setTimeout(() => finish(latest), ms)
        if (signal?.aborted) return onAbort()
        signal?.addEventListener('abort', onAbort, { once: true })
        stop = follow(id, (entry) => {
          latest = entry
          if (entry.finalized) finish(entry)
        })
        // Already final when followed: the listener ran before `stop` was set.
        if (done) stop()
      })
    }
  }
}
