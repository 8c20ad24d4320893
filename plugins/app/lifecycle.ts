import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'

export interface Lifecycle {
  readonly startedAt: number
  readonly draining: boolean
  /** The server is closing: new requests are turned away with 503 while in-flight ones finish. */
  readonly closing: boolean
  /** Turn readiness to 503 and give load balancers the configured moment to notice before the server stops accepting. */
  drain: () => Promise<void>
  /** From now on, new requests are answered 503 (called by the preClose hook). */
  beginClosing: () => void
}

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle
  }
}

export default fp(async function lifecycle (fastify: FastifyInstance, opts: AppOptions) {
  let draining = false
  let closing = false
  const state: Lifecycle = {
    startedAt: Date.now(),
    get draining () { return draining },
    get closing () { return closing },
    beginClosing () {
      draining = true
      closing = true
    },
    async drain () {
      if (draining) return
      draining = true
      fastify.log.info({ delayMs: opts.config.SHUTDOWN_DRAIN_DELAY_MS }, 'draining: readiness now 503')
      if (opts.config.SHUTDOWN_DRAIN_DELAY_MS > 0) await new Promise((resolve) => setTimeout(resolve, opts.config.SHUTDOWN_DRAIN_DELAY_MS))
    }
  }
  fastify.decorate('lifecycle', state)
  fastify.addHook('preClose', async () => {
    state.beginClosing()
  })
}, { name: 'lifecycle' })
