import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isIP } from 'node:net'
import type { AppOptions } from '../../src/app.ts'
import { createSafeFetcher, createSafePoster } from '../../src/net/safe-fetch.ts'
import type { PublicPrediction } from '../../src/schemas/common.ts'
import { createWebhookDispatcher } from '../../src/webhooks/dispatcher.ts'
import type { WebhookDispatcher } from '../../src/webhooks/dispatcher.ts'
import { createHostAllowList, policyHost } from '../../src/net/url-policy.ts'
import { createAzureBlobImageStorage, createLocalImageStorage } from '../../src/tenancy/image-storage.ts'
import type { ImageStorage } from '../../src/tenancy/image-storage.ts'
import { createTenantService } from '../../src/tenancy/service.ts'
import type { TenantService } from '../../src/tenancy/service.ts'
import { createPredictionTracker } from '../../src/predictions/tracker.ts'
import type { PredictionTracker } from '../../src/predictions/tracker.ts'
import { WEBHOOK_GRACE_MS, webhookUrl } from '../../src/tenancy/webhook-receiver.ts'

declare module 'fastify' {
  interface FastifyInstance {
    tenancy: TenantService
    /** The one owner of unfinished predictions' state. */
    tracker: PredictionTracker
    /** Callers' webhooks: deliveries, their retries and the keys' signing secrets. */
    webhooks: WebhookDispatcher
    /** The origin our own URLs (kept images) are built on for this request. */
    publicBaseUrl: (request: FastifyRequest) => string
  }
}

/**
 * Tenant-aware predictions (plans, ownership, the ledger, kept images), and the tracker that owns every
 * unfinished prediction's state, resumed from the store at start.
 */
export default fp(async function tenancy (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  const images: ImageStorage = overrides.tenancy?.images ?? (config.IMAGE_STORAGE === 'azure-blob'
    ? await createAzureBlobImageStorage({
      container: config.IMAGE_STORAGE_AZURE_CONTAINER,
      connectionString: config.IMAGE_STORAGE_AZURE_CONNECTION_STRING,
      accountUrl: config.IMAGE_STORAGE_AZURE_ACCOUNT_URL
    })
    : createLocalImageStorage(config.IMAGE_STORAGE_DIR))

  // Outputs come from replicate.delivery, or from the configured upstream itself (the emulator serves its own files).
  const upstream = new URL(fastify.upstream.baseUrl)
  const upstreamHost = policyHost(upstream)
  const fetcher = createSafeFetcher({
    allowedSchemes: upstream.protocol === 'http:' ? ['https:', 'http:'] : ['https:'],
    allowedHosts: createHostAllowList(['replicate.delivery', '*.replicate.delivery', upstreamHost]),
    // An upstream the operator configured by IP (a local emulator) is trusted at that address only.
    allowAddresses: isIP(upstreamHost) !== 0 ? [upstreamHost] : [],
    maxBytes: config.KEPT_IMAGE_MAX_BYTES,
    timeoutMs: 60_000
  })

  const { poster: posterOptions, ...dispatcherOverrides } = overrides.webhooks ?? {}
  const insecure = config.WEBHOOK_ALLOW_INSECURE
  const webhooks = createWebhookDispatcher({
    store: fastify.state,
    poster: createSafePoster({ allowedSchemes: insecure ? ['https:', 'http:'] : ['https:'], allowPrivate: insecure, ...posterOptions }),
    log: fastify.log.child({ component: 'webhooks' }),
    // Image URLs in a payload are signed at each attempt: a retry hours later still hands out working ones.
    signPayload: (payload) => fastify.imageUrls.signOutput(payload as PublicPrediction),
    leaseMs: config.TRACKER_LEASE_MS,
    onOutcome: fastify.metrics.webhookDelivery,
    ...dispatcherOverrides
  })
  fastify.decorate('webhooks', webhooks)

  const tracker = createPredictionTracker({
    store: fastify.state,
    feed: fastify.changes,
    replicate: fastify.replicate,
    shaper: fastify.upstreamShaper,
    images,
    fetchImage: (url, o) => fetcher.fetch(url, o),
    log: fastify.log.child({ component: 'tracker' }),
    cancelAfter: config.REPLICATE_CANCEL_AFTER,
    webhookUrl: config.REPLICATE_WEBHOOKS === 'on' ? webhookUrl(config) : undefined,
    webhookGraceMs: WEBHOOK_GRACE_MS,
    // A dead instance's predictions are picked up by another within about one lease.
    leaseMs: config.TRACKER_LEASE_MS,
    sweepMs: config.TRACKER_LEASE_MS,
    reconcileAfterMs: config.CREATE_RECONCILE_AFTER_MS,
    maxQueued: config.REPLICATE_CREATE_QUEUE_SIZE,
    onEnded: fastify.metrics.predictionEnded,
    webhooks,
    ...overrides.tenancy?.tracker
  })
  fastify.decorate('tracker', tracker)
  const service = createTenantService({
    preparer: fastify.predictions,
    tracker,
    shaper: fastify.upstreamShaper,
    store: fastify.state,
    images,
    log: fastify.log.child({ component: 'tenancy' }),
    webhooks,
    ensureUpstream: async () => { await fastify.tokenVault?.getToken() }
  })
  fastify.decorate('tenancy', service)
  fastify.metrics.gauges({ tracked: tracker.tracked, queueDepth: () => fastify.upstreamShaper.waiting + tracker.queued() })

  const configured = config.PUBLIC_BASE_URL?.replace(/\/+$/, '')
  fastify.decorate('publicBaseUrl', (request: FastifyRequest) => configured ?? `${request.protocol}://${request.host}`)

  fastify.addHook('onReady', async () => {
    webhooks.start()
    const resumed = await tracker.resume()
    if (resumed > 0) fastify.log.info({ predictions: resumed }, 'resumed tracking unfinished predictions')
  })
  // onClose, not preClose: it runs once in-flight requests have ended, so a sync create still waiting on Replicate
  // keeps its images and settles its credits first. Fastify runs onClose hooks in reverse order of registration,
  // so this runs before the Replicate client, the in-process emulator (which serves the images) and the store close.
  fastify.addHook('onClose', async () => {
    await tracker.close()
    await webhooks.close()
    await fetcher.close()
  })
}, { name: 'tenancy', dependencies: ['predictions', 'state', 'replicate', 'token-vault', 'metrics', 'upstream-limits', 'image-urls'] })
