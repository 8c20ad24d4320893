import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createWebhookReceiver, webhookUrl } from '../../src/tenancy/webhook-receiver.ts'
import type { WebhookReceiver } from '../../src/tenancy/webhook-receiver.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Null while REPLICATE_WEBHOOKS is off. */
    webhookReceiver: WebhookReceiver | null
  }
}

/** Replicate's webhooks, when REPLICATE_WEBHOOKS is on: the signing key and the receiver behind POST /v1/webhooks/replicate. */
export default fp(async function webhooks (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  if (config.REPLICATE_WEBHOOKS !== 'on') {
    fastify.decorate('webhookReceiver', null)
    return
  }
  const configured = config.REPLICATE_WEBHOOK_SECRET
  const receiver = createWebhookReceiver({
    secret: configured ? async () => configured : () => fastify.replicate.getWebhookSecret(),
    tracker: fastify.tracker,
    log: fastify.log.child({ component: 'webhooks' })
  })
  fastify.decorate('webhookReceiver', receiver)
  fastify.log.info({ url: webhookUrl(config), secret: configured ? 'configured' : 'read from Replicate' }, 'Replicate webhooks are on')
}, { name: 'webhooks', dependencies: ['tenancy', 'replicate'] })
