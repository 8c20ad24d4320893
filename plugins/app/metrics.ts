import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { createMetrics, mayScrape } from '../../src/metrics.ts'
import type { Metrics } from '../../src/metrics.ts'
import { toProblem } from '../../src/problems.ts'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
    /** The port METRICS_PORT serves /metrics on (the one bound, when 0 was asked for); undefined without it. */
    metricsPort: () => number | undefined
  }
}

/**
 * Prometheus metrics: the registry (src/metrics.ts), the request histogram, and `GET /metrics`, on the API's port or,
 * with METRICS_PORT, on a port of its own so it can stay off the public listener.
 */
export default fp(async function metrics (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const m = createMetrics()
  fastify.decorate('metrics', m)

  fastify.addHook('onResponse', (request, reply, done) => {
    // The route's pattern, never the path: ids stay out of the labels.
    m.observeRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })

  let ownPort: number | undefined
  fastify.decorate('metricsPort', () => ownPort)
  if (config.METRICS_PORT === undefined) {
    fastify.get('/metrics', {
      config: { public: true },
      logLevel: 'warn',
      schema: { hide: true }
    }, async (request, reply) => {
      if (!mayScrape(request.socket.remoteAddress, request.headers.authorization, config.METRICS_TOKEN)) {
        const { status, body } = toProblem(new AppError('unauthorized', 'Metrics need `Authorization: Bearer <METRICS_TOKEN>` from outside this host.'), String(request.id))
        return reply.code(status).type('application/problem+json').send(body)
      }
      return reply.type(m.registry.contentType).send(await m.registry.metrics())
    })
    return
  }
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') return res.writeHead(404).end()
    if (!mayScrape(req.socket.remoteAddress, req.headers.authorization, config.METRICS_TOKEN)) return res.writeHead(401, { 'www-authenticate': 'Bearer' }).end()
    m.registry.metrics().then((text) => res.writeHead(200, { 'content-type': m.registry.contentType }).end(text), () => res.writeHead(500).end())
  })
  fastify.addHook('onReady', async () => {
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(config.METRICS_PORT, config.HOST, resolve))
    ownPort = (server.address() as AddressInfo).port
  })
  fastify.addHook('onClose', async () => { await new Promise((resolve) => server.close(resolve)) })
}, { name: 'metrics' })
