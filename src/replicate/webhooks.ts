import { createHmac, timingSafeEqual } from 'node:crypto'

/**
 * Standard Webhooks signatures, as Replicate sends them (REFERENCE §5): HMAC-SHA256 over
 * `${id}.${timestamp}.${rawBody}` with the base64 key after `whsec_`. The emulator signs with
 * this and the gateway verifies with it, so both sides share one implementation.
 */

function keyOf (secret: string): Buffer {
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret
  return Buffer.from(encoded, 'base64')
}

export function signWebhook (secret: string, id: string, timestamp: number | string, rawBody: string | Buffer): string {
  const mac = createHmac('sha256', keyOf(secret))
  mac.update(`${id}.${timestamp}.`)
  mac.update(rawBody)
  return `v1,${mac.digest('base64')}`
}

export type WebhookVerification =
  | { ok: true }
  | { ok: false, reason: 'missing_headers' | 'stale_timestamp' | 'bad_signature' }

export interface VerifyWebhookOptions {
  secret: string
  headers: { 'webhook-id'?: string, 'webhook-timestamp'?: string, 'webhook-signature'?: string }
  rawBody: string | Buffer
  /** Allowed clock skew in seconds; Standard Webhooks' convention is 5 minutes. */
  toleranceSeconds?: number
  nowSeconds?: number
}

export function verifyWebhook (opts: VerifyWebhookOptions): WebhookVerification {
  const id = opts.headers['webhook-id']
  const ts = opts.headers['webhook-timestamp']
  const sigHeader = opts.headers['webhook-signature']
  if (!id || !ts || !sigHeader) return { ok: false, reason: 'missing_headers' }
  const tolerance = opts.toleranceSeconds ?? 300
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000)
  const tsNum = Number(ts)
  if (!Number.isInteger(tsNum) || Math.abs(now - tsNum) > tolerance) return { ok: false, reason: 'stale_timestamp' }
  const expected = Buffer.from(signWebhook(opts.secret, id, ts, opts.rawBody).slice(3), 'base64')
  // The header may carry several signatures (key rotation, other versions): any v1 match is enough.
  for (const part of sigHeader.split(' ')) {
    const [version, sig] = part.split(',', 2)
    if (version !== 'v1' || !sig) continue
    const given = Buffer.from(sig, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true }
  }
  return { ok: false, reason: 'bad_signature' }
}
