import type { PredictionEntry } from '../stores/types.ts'

/**
 * The change feed: every change the tracker writes to a prediction is published here, and whoever waits on the
 * prediction (a long-poll, an event stream, a sync create) hears of it at once instead of asking Replicate. In one
 * process it is a map of listeners; across instances (Redis) each change also travels over pub/sub, so a waiter
 * on one instance hears of a change written on another.
 *
 * A change carries the whole entry as written (without the create's input, which can be megabytes): listeners
 * need no store read, and a change that overtakes another is recognised by its `seq`.
 */
export type ChangeListener = (entry: PredictionEntry) => void

export interface ChangeFeed {
  /** Delivers to this instance's listeners at once and, across instances, to theirs. */
  publish: (entry: PredictionEntry) => void
  /** Listens to one prediction's changes; returns the unsubscribe. */
  subscribe: (id: string, listener: ChangeListener) => () => void
  /** Listeners now registered on this instance (metrics, tests). */
  readonly listeners: number
  close: () => Promise<void>
}

/** What a change carries: the entry without the create's input. */
export function publishable (entry: PredictionEntry): PredictionEntry {
  if (entry.create?.input === undefined) return entry
  const { input: _input, ...create } = entry.create
  return { ...entry, create }
}

/** The local half every feed shares: listeners by prediction id. */
export function createLocalFeed (): ChangeFeed & { deliver: (entry: PredictionEntry) => void } {
  const byId = new Map<string, Set<ChangeListener>>()
  let count = 0
  function deliver (entry: PredictionEntry): void {
    const set = byId.get(entry.id)
    if (!set) return
    // A copy: a listener may unsubscribe (itself or another) while being told.
    for (const listener of [...set]) listener(entry)
  }
  return {
    deliver,
    publish (entry) { deliver(publishable(entry)) },
    subscribe (id, listener) {
      let set = byId.get(id)
      if (!set) byId.set(id, set = new Set())
      set.add(listener)
      count++
      let subscribed = true
      return () => {
        if (!subscribed) return
        subscribed = false
        count--
        set.delete(listener)
        if (set.size === 0 && byId.get(id) === set) byId.delete(id)
      }
    },
    get listeners () { return count },
    async close () { byId.clear(); count = 0 }
  }
}
