import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.ts'
import { AppError } from '../errors.ts'
import type { Prediction } from '../replicate/types.ts'
import { verifyWebhook } from '../replicate/webhooks.ts'
import type { WebhookVerification } from '../replicate/webhooks.ts'
import type { PredictionTracker } from '../predictions/tracker.ts'

/**
 * Replicate's webhooks (REFERENCE §5) as the quickest news that a prediction ended. Each delivery is
 * verified over its raw bytes, handed over once per `webhook-id` (Replicate retries and may send a
 * message twice), and a terminal prediction goes to the tracker, which finalizes it and stops
 * following it.
 */

export const WEBHOOK_PATH = '/v1/webhooks/replicate'
/** How long a new prediction's tracker waits for the webhook before it polls: FLUX predictions end well within it. */
export const WEBHOOK_GRACE_MS = 60_000
const REMEMBERED_IDS = 10_000

/** The URL creates hand to Replicate. */
export function webhookUrl (config: Pick<Config, 'PUBLIC_BASE_URL'>): string {
  return `${(config.PUBLIC_BASE_URL ?? '').replace(/\/+$/, '')}${WEBHOOK_PATH}`
}

export type WebhookOutcome = 'finalizing' | 'ignored' | 'duplicate'

export interface WebhookReceiverOptions {
  /** The `whsec_…` key: the configured one, or Replicate's, read once and cached. */
  secret: () => Promise<string>
  tracker: Pick<PredictionTracker, 'onUpstreamUpdate'>
  log: FastifyBaseLogger
  /** How many delivered webhook-ids are remembered; the oldest are forgotten first. */
  rememberIds?: number
  nowSeconds?: () => number
}

export interface WebhookReceiver {
  verify: (headers: Record<string, string | string[] | undefined>, rawBody: string | Buffer) => Promise<WebhookVerification>
  /** Hands a verified delivery to the tracker, once per webhook-id; `id` is our prediction's, from the URL. */
  accept: (webhookId: string, prediction: Prediction, id?: string) => Promise<WebhookOutcome>
}

function single (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

export function createWebhookReceiver (opts: WebhookReceiverOptions): WebhookReceiver {
  const limit = opts.rememberIds ?? REMEMBERED_IDS
  // Insertion-ordered, so the first entry is the oldest.
  const seen = new Set<string>()

  return {
    async verify (headers, rawBody) {
      let secret: string
      try {
        secret = await opts.secret()
      } catch (err) {
        opts.log.warn({ code: (err as { code?: string }).code, status: (err as { status?: number }).status }, 'could not read the webhook signing key from Replicate')
        // 503: Replicate retries the terminal webhook, by when the key may be readable.
        throw new AppError('service_unavailable', 'The webhook signing key could not be read; retry later.', {}, { cause: err })
      }
      return verifyWebhook({
        secret,
        headers: { 'webhook-id': single(headers['webhook-id']), 'webhook-timestamp': single(headers['webhook-timestamp']), 'webhook-signature': single(headers['webhook-signature']) },
        rawBody,
        ...(opts.nowSeconds ? { nowSeconds: opts.nowSeconds() } : {})
      })
    },

    async accept (webhookId, prediction, id) {
      if (seen.has(webhookId)) return 'duplicate'
      seen.add(webhookId)
      if (seen.size > limit) seen.delete(seen.values().next().value as string)
      try {
        return await opts.tracker.onUpstreamUpdate(prediction, id)
      } catch (err) {
        // Not handled after all: Replicate's retry of it must get through.
        seen.delete(webhookId)
        throw err
      }
    }
  }
}
