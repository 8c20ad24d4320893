import { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { createLocalFeed, publishable } from '../predictions/feed.ts'
import type { ChangeFeed } from '../predictions/feed.ts'
import type { PredictionEntry } from './types.ts'

export interface RedisFeedOptions {
  url: string
  prefix?: string
  /** Names this process: its own messages come back over pub/sub and are skipped (they were delivered locally). */
  instanceId: string
  log: FastifyBaseLogger
}

/**
 * The change feed across instances: one pub/sub channel for all predictions. Every instance hears every change
 * and hands it to its own listeners of that prediction, if any; a change is small (one entry), and one channel
 * costs one subscription per instance however many predictions are watched. Pub/sub delivers to whoever is
 * connected: a waiter that misses a message (a reconnect) still ends by its own timeout, reading the store.
 */
export async function createRedisFeed (o: RedisFeedOptions): Promise<ChangeFeed> {
  const channel = `${o.prefix ?? 'fgw:'}prediction-changes`
  const local = createLocalFeed()
  const pub = new Redis(o.url, { maxRetriesPerRequest: 3, enableAutoPipelining: true })
  // A connection in subscriber mode can do nothing else, hence the second one.
  const sub = new Redis(o.url, { maxRetriesPerRequest: null })
  sub.on('message', (_channel: string, message: string) => {
    let change: { from: string, entry: PredictionEntry }
    try {
      change = JSON.parse(message) as { from: string, entry: PredictionEntry }
    } catch {
      return
    }
    if (change.from !== o.instanceId) local.deliver(change.entry)
  })
  sub.on('error', (err: Error) => { o.log.warn({ err: { message: err.message } }, 'change feed subscription error; reconnecting') })
  await sub.subscribe(channel)
  return {
    publish (entry) {
      const change = publishable(entry)
      local.deliver(change)
      pub.publish(channel, JSON.stringify({ from: o.instanceId, entry: change })).catch((err: unknown) => {
        o.log.warn({ err: { message: (err as Error).message }, predictionId: entry.id }, 'could not publish a prediction change')
      })
    },
    subscribe: local.subscribe,
    get listeners () { return local.listeners },
    async close () {
      await local.close()
      await Promise.all([pub, sub].map((r) => r.status === 'end' ? undefined : r.quit().catch(() => r.disconnect())))
    }
  }
}
