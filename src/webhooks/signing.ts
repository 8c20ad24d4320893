import { createHmac, randomBytes } from 'node:crypto'

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): the signed content is `id.timestamp.body`, the key is
 * the base64 part of a `whsec_…` secret, and the header lists one `v1,<base64 HMAC-SHA256>` per secret in use, so a
 * receiver still holding the previous secret keeps verifying during a rotation.
 */

export function newWebhookSecret (): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

function signWith (secret: string, content: string): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  return `v1,${createHmac('sha256', key).update(content).digest('base64')}`
}

/** The three headers of one delivery attempt. `timestamp` is in seconds since the epoch. */
export function webhookHeaders (secrets: readonly string[], id: string, timestamp: number, body: string): Record<string, string> {
  const content = `${id}.${timestamp}.${body}`
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((secret) => signWith(secret, content)).join(' ')
  }
}
