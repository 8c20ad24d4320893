import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createSafePoster } from '../../src/net/safe-fetch.ts'
import { buildValidatorCompiler } from '../../src/validation.ts'
import { GenerationEnvelopeSchema } from '../../src/schemas/queue-message.ts'
import { createIdentityCredential, lazyCredential } from '../../src/vault/azure-credential.ts'
import { createMessageProcessor } from '../../src/worker/processor.ts'
import type { Validator } from '../../src/worker/processor.ts'
import { createQueueWorker } from '../../src/worker/queue-worker.ts'
import type { QueueWorker } from '../../src/worker/queue-worker.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Service Bus queue worker, when this process runs one (WORKER=on, or `npm run worker`). */
    queueWorker: QueueWorker | null
  }
}

/**
 * The queue worker: generation requests from a Service Bus queue, taken through the same tenancy service as the
 * routes. It starts receiving once the app is ready, stops receiving as soon as the app begins to close, and has
 * until SHUTDOWN_GRACE_MS later to finish what it holds before abandoning it.
 */
export default fp(async function worker (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  fastify.decorate('queueWorker', null)
  if (config.WORKER !== 'on') return

  const { ServiceBusClient } = await import('@azure/service-bus')
  const client = config.SERVICE_BUS_CONNECTION_STRING
    ? new ServiceBusClient(config.SERVICE_BUS_CONNECTION_STRING)
    : new ServiceBusClient(config.SERVICE_BUS_NAMESPACE!, lazyCredential(() => createIdentityCredential({ kind: config.AZURE_CREDENTIAL, clientId: config.AZURE_CLIENT_ID })))

  // The routes' validator compiler over the registered schemas: the same Ajv options, defaults and messages.
  const compile = buildValidatorCompiler(fastify.getSchemas())
  const validator = (schema: unknown): Validator => compile({ schema, httpPart: 'body' }) as Validator
  const webhooks = createSafePoster(opts.overrides?.worker?.webhook)
  const processor = createMessageProcessor({
    store: fastify.state,
    tenancy: fastify.tenancy,
    imageUrls: fastify.imageUrls,
    validators: {
      envelope: validator(GenerationEnvelopeSchema),
      'text-to-image': validator({ $ref: 'TextToImageRequest' }),
      'image-to-image': validator({ $ref: 'ImageToImageRequest' })
    },
    // Replies link to kept images on the HTTP service, which a worker-only process does not serve itself.
    baseUrl: config.PUBLIC_BASE_URL?.replace(/\/+$/, '') ?? `http://${config.HOST}:${config.PORT}`,
    syncWaitSeconds: config.SYNC_WAIT_SECONDS,
    idempotencyTtlMs: config.IDEMPOTENCY_TTL_HOURS * 3_600_000,
    webhookViolation: (url) => webhooks.violation(url),
    log: fastify.log.child({ component: 'worker' })
  })
  const queueWorker = createQueueWorker({
    client,
    queue: config.SERVICE_BUS_QUEUE!,
    concurrency: config.WORKER_CONCURRENCY,
    maxDeliveries: config.WORKER_MAX_DELIVERIES,
    processor,
    webhooks,
    onSettled: (outcome, reason) => fastify.metrics.queueSettled(outcome, reason),
    ...(opts.overrides?.worker?.sleep ? { sleep: opts.overrides.worker.sleep } : {}),
    log: fastify.log.child({ component: 'worker' })
  })
  fastify.queueWorker = queueWorker
  fastify.metrics.gauges({ queueInFlight: () => queueWorker.status().inFlight })

  let deadline = Infinity
  fastify.addHook('onReady', async () => { queueWorker.start() })
  fastify.addHook('preClose', async () => {
    deadline = Date.now() + config.SHUTDOWN_GRACE_MS
    await queueWorker.stopReceiving()
  })
  // onClose runs before tenancy's (registered earlier), so what the worker finishes still keeps its images.
  fastify.addHook('onClose', async () => {
    await queueWorker.close(Math.min(deadline, Date.now() + config.SHUTDOWN_GRACE_MS))
    await client.close()
  })
}, { name: 'worker', dependencies: ['tenancy', 'state', 'image-urls', 'schemas', 'metrics'] })
