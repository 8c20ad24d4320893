import type { ApiKeyRecord, StateStore } from '../stores/types.ts'
import { parseKey, secretMatches } from './keys.ts'

/**
 * How long a key record read from the store is trusted. A revocation (by `npm run keys`, on any instance) reaches
 * every instance within this time, without a message between them; the README promises 5 s.
 */
export const KEY_CACHE_MS = 2_000
const MAX_ENTRIES = 10_000

/**
 * Verifies bearer tokens against the store, reading each key's record at most once per KEY_CACHE_MS. The secret is
 * still checked on every request (a sha256 and a constant-time compare). Unknown ids are not cached, so a key
 * created a moment ago works at once.
 */
export function createKeyVerifier (store: StateStore, o: { ttlMs?: number, now?: () => number } = {}) {
  const ttlMs = o.ttlMs ?? KEY_CACHE_MS
  const now = o.now ?? Date.now
  const cache = new Map<string, { record: ApiKeyRecord, readAt: number }>()

  async function record (id: string): Promise<ApiKeyRecord | undefined> {
    const hit = cache.get(id)
    if (hit && now() - hit.readAt < ttlMs) return hit.record
    const fresh = await store.getKey(id)
    cache.delete(id)
    if (fresh) {
      // Oldest first out: a Map iterates in insertion order, and a re-read re-inserts.
      if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!)
      cache.set(id, { record: fresh, readAt: now() })
    }
    return fresh
  }

  return {
    /** The active key record a bearer token names, or undefined. */
    async verify (token: string): Promise<ApiKeyRecord | undefined> {
      const parsed = parseKey(token)
      if (!parsed) return undefined
      const found = await record(parsed.id)
      if (!found || found.revokedAt !== null) return undefined
      return secretMatches(found, parsed.secret) ? found : undefined
    }
  }
}
