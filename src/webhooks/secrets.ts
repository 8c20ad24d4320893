import type { StateStore } from '../stores/types.ts'
import { newWebhookSecret } from './signing.ts'

/**
 * Each key signs its deliveries with its own `whsec_…` secret, made on first need and kept in the store. A rotation
 * keeps the previous secret valid for a day: deliveries then carry both signatures, so receivers can switch over.
 */

export const PREVIOUS_SECRET_VALID_MS = 86_400_000

const currentName = (owner: string): string => `webhook:${owner}`
const previousName = (owner: string): string => `webhook:${owner}:previous`

/** The secrets deliveries are signed with now: the current one first, then the previous one while it is valid. */
export async function webhookSecrets (store: StateStore, owner: string, now: number): Promise<string[]> {
  const current = await store.getOrCreateSecret(currentName(owner), newWebhookSecret())
  const previous = await store.getSecret(previousName(owner))
  if (previous === undefined) return [current]
  const { secret, until } = JSON.parse(previous) as { secret: string, until: number }
  return until > now && secret !== current ? [current, secret] : [current]
}

/** Makes a new current secret; the one it replaces stays valid until the returned instant. */
export async function rotateWebhookSecret (store: StateStore, owner: string, now: number): Promise<{ secret: string, previousValidUntil: number }> {
  const [old] = await webhookSecrets(store, owner, now)
  const until = now + PREVIOUS_SECRET_VALID_MS
  await store.putSecret(previousName(owner), JSON.stringify({ secret: old, until }))
  const secret = newWebhookSecret()
  await store.putSecret(currentName(owner), secret)
  return { secret, previousValidUntil: until }
}
