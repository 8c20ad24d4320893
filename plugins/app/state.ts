import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'

declare module 'fastify' {
  interface FastifyInstance {
    state: StateStore
  }
}

/** The durable state: Redis when REDIS_URL is set (many instances), else one embedded SQLite file. */
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
  // Closed last, after the services that write to it have stopped.
  if (!given) fastify.addHook('onClose', async () => { await store.close() })
}, { name: 'state' })
