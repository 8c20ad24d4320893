import { randomUUID } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createLocalFeed } from '../../src/predictions/feed.ts'
import type { ChangeFeed } from '../../src/predictions/feed.ts'

declare module 'fastify' {
  interface FastifyInstance {
    state: StateStore
    /** Every change to a prediction, as it is written: in process, and across instances over Redis. */
    changes: ChangeFeed
  }
}

/** The durable state, and its change feed: Redis when REDIS_URL is set (many instances), else one embedded SQLite file. */
export default fp(async function state (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const given = opts.overrides?.tenancy?.store
  // ioredis is loaded only where Redis is configured.
  const store = given ?? (config.REDIS_URL
    ? (await import('../../src/stores/redis.ts')).createRedisStore({ url: config.REDIS_URL, prefix: config.REDIS_KEY_PREFIX })
    : createSqliteStore({ path: config.STATE_SQLITE_PATH }))
  await store.ping()
  fastify.log.info({ store: store.kind, ...(store.kind === 'sqlite' ? { path: config.STATE_SQLITE_PATH } : {}) }, 'state store ready')
  fastify.decorate('state', store)
  // The feed follows the store: in one process with SQLite; over Redis pub/sub when instances share Redis.
  const feed = config.REDIS_URL && (!given || given.kind === 'redis')
    ? await (await import('../../src/stores/redis-feed.ts')).createRedisFeed({ url: config.REDIS_URL, prefix: config.REDIS_KEY_PREFIX, instanceId: randomUUID(), log: fastify.log })
    : createLocalFeed()
  fastify.decorate('changes', feed)
  fastify.addHook('onClose', async () => { await feed.close() })
  // Closed last, after the services that write to it have stopped.
  if (!given) fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'state' })
