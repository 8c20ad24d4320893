import { signWebhook } from '../replicate/webhooks.ts'
import type { Clock } from './clock.ts'
import { newWebhookMessageId } from './ids.ts'
import type { WebhookQuirks } from './options.ts'
import type { OutboundFetch } from './outbound.ts'

/**
 * Webhook delivery as Replicate does it (REFERENCE §5): a signed POST of the prediction JSON,
 * redirects not followed, and only the terminal message retried with exponential backoff, the
 * last attempt about a minute after completion (emulated time).
 */

/** Emulated ms between attempts of a terminal message: 1+2+4+8+16+29 = 60 s. */
export const TERMINAL_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000, 16_000, 29_000] as const
const ATTEMPT_TIMEOUT_MS = 10_000
const WRONG_KEY = 'whsec_d3JvbmcgZW11bGF0b3Iga2V5IGZvciB0ZXN0cw=='

export interface WebhookSender {
  /** Sends one message; resolves once its first attempt has finished (retries continue on their own). */
  deliver(url: string, body: string, terminal: boolean): Promise<void>
  /** Stops retries and aborts requests in flight. */
  close(): void
}

export interface WebhookSenderDeps {
  clock: Clock
  secret: string
  quirks: WebhookQuirks
  fetch: OutboundFetch
}

export function createWebhookSender (deps: WebhookSenderDeps): WebhookSender {
  let controller = new AbortController()

  async function post (url: string, messageId: string, body: string): Promise<number | undefined> {
    const nowSeconds = Math.floor(Date.now() / 1000)
    const timestamp = deps.quirks.staleTimestamp ? nowSeconds - 600 : nowSeconds
    const signature = signWebhook(deps.quirks.badSignature ? WRONG_KEY : deps.secret, messageId, timestamp, body)
    try {
      const response = await deps.fetch(url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Replicate-Webhooks/1.0 (emulator)',
          'webhook-id': messageId,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': signature
        },
        body,
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)])
      })
      await response.body?.cancel()
      return response.status
    } catch {
      return undefined
    }
  }

  async function attempt (url: string, messageId: string, body: string, terminal: boolean, n: number): Promise<void> {
    const signal = controller.signal
    const status = await post(url, messageId, body)
    if (signal.aborted) return
    const ok = status !== undefined && status >= 200 && status < 300
    if (ok || !terminal || n > TERMINAL_RETRY_DELAYS_MS.length) return
    deps.clock.after(TERMINAL_RETRY_DELAYS_MS[n - 1]!, () => {
      if (!signal.aborted) void attempt(url, messageId, body, terminal, n + 1)
    })
  }

  return {
    async deliver (url, body, terminal) {
      const messageId = newWebhookMessageId()
      await attempt(url, messageId, body, terminal, 1)
      if (deps.quirks.duplicate && !controller.signal.aborted) await post(url, messageId, body)
    },
    close () {
      controller.abort()
      controller = new AbortController()
    }
  }
}
