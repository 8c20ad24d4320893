import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { refTo } from '../../src/schemas/common.ts'
import { HealthSchema, ReadinessSchema } from '../../src/schemas/health.ts'

/**
 * Probes. Liveness checks nothing outside the process; readiness checks what serving needs (a token,
 * an upstream that answers a free call, not draining), cached briefly so probes cost Replicate little.
 * They log only at warn, so a probe every second does not flood the log.
 */
const health: FastifyPluginAsyncTypebox = async (fastify) => {
  // Probes answer small documents we build ourselves: JSON.stringify serves them, so the first probe after start
  // does not wait for the schema serializer to be loaded and compiled (about 100 ms). The schemas still document them.
  fastify.setSerializerCompiler(() => (data) => JSON.stringify(data))

  fastify.get('/live', {
    logLevel: 'warn',
    schema: {
      operationId: 'getLiveness',
      tags: ['health'],
      summary: 'Liveness: the process is up',
      description: 'Checks nothing outside the process.',
      response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'Alive.' }) }
    }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    logLevel: 'warn',
    schema: {
      operationId: 'getReadiness',
      tags: ['health'],
      summary: 'Readiness: able to serve',
      description: '503 while draining, without a token, or when Replicate does not answer a non-billable call (cached briefly).',
      response: {
        200: refTo(ReadinessSchema, { description: 'Ready.' }),
        503: refTo(ReadinessSchema, { description: 'Not ready.' })
      }
    }
  }, async (_request, reply) => {
    const report = await fastify.readiness.check()
    return reply.code(report.status === 'ready' ? 200 : 503).send(report)
  })

  // '' rather than '/', so the path is /health, not /health/.
  fastify.get('', {
    logLevel: 'warn',
    schema: {
      operationId: 'getHealth',
      tags: ['health'],
      summary: 'Details for operators',
      description: 'Readiness plus version, uptime, which upstream is in use (the emulator or Replicate) and the last upstream check.',
      response: { 200: refTo(HealthSchema, { description: 'Service detail.' }) }
    }
  }, async () => fastify.readiness.detail())
}

export default health
