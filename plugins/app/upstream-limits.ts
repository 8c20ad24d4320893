import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createUpstreamShaper } from '../../src/tenancy/upstream-shaper.ts'
import type { UpstreamShaper } from '../../src/tenancy/upstream-shaper.ts'

declare module 'fastify' {
  interface FastifyInstance {
    upstreamShaper: UpstreamShaper
  }
}

/** REPLICATE_CREATE_RATE across all instances, through the shared store (see upstream-shaper.ts). */
export default fp(async function upstreamLimits (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  fastify.decorate('upstreamShaper', createUpstreamShaper(fastify.state, {
    perMinute: config.REPLICATE_CREATE_RATE,
    burst: config.REPLICATE_CREATE_BURST,
    maxWaitMs: config.REPLICATE_CREATE_QUEUE_MS,
    maxQueue: config.REPLICATE_CREATE_QUEUE_SIZE
  }))
}, { name: 'upstream-limits', dependencies: ['state'] })
