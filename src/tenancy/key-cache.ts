import { timingSafeEqual } from 'node:crypto'
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
 * still checked on every request in constant time: against the stored sha256 on each read of the record, and
 * between reads against the secret that matched it. Unknown ids are not cached, so a key created a moment ago works
 * at once.
 */
export function createKeyVerifier (store: StateStore, o: { ttlMs?: number, now?: () => number } = {}) {
  const ttlMs = o.ttlMs ?? KEY_CACHE_MS
  const now = o.now ?? Date.now
  /** `verified`: the secret that last matched this record's hash, so the next request compares without hashing. */
  interface Entry { record: ApiKeyRecord, readAt: number, verified?: Buffer }
  const cache = new Map<string, Entry>()

  async function entry (id: string): Promise<Entry | undefined> {
    const hit = cache.get(id)
    if (hit && now() - hit.readAt < ttlMs) return hit
    const fresh = await store.getKey(id)
    cache.delete(id)
    if (!fresh) return undefined
    // Oldest first out: a Map iterates in insertion order, and a re-read re-inserts.
    if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!)
    const read: Entry = { record: fresh, readAt: now() }
    cache.set(id, read)
    return read
  }

  /** Whether `secret` is the one that last matched this entry's record: compared in constant time, without a hash. */
  function matchedBefore (found: Entry, secret: string): boolean {
    if (found.verified === undefined) return false
    const given = Buffer.from(secret)
    return found.verified.length === given.length && timingSafeEqual(found.verified, given)
  }

  return {
    /**
     * The active key record a bearer token names, from what is kept alone (no store read, no hash): a fresh entry
     * whose last matching secret this is. Undefined means "ask `verify`", not "refused".
     */
    verifyKept (token: string | undefined): ApiKeyRecord | undefined {
      const parsed = token === undefined ? undefined : parseKey(token)
      if (!parsed) return undefined
      const hit = cache.get(parsed.id)
      if (!hit || now() - hit.readAt >= ttlMs || hit.record.revokedAt !== null) return undefined
      return matchedBefore(hit, parsed.secret) ? hit.record : undefined
    },

    /** The active key record a bearer token names, or undefined. */
    async verify (token: string): Promise<ApiKeyRecord | undefined> {
      const parsed = parseKey(token)
      if (!parsed) return undefined
      const found = await entry(parsed.id)
      if (!found || found.record.revokedAt !== null) return undefined
      // Within the entry's life the secret that matched is compared again in constant time, without a sha256: a
      // client polling with its key pays for the hash once per read of its record, not on every request.
      if (matchedBefore(found, parsed.secret)) return found.record
      if (!secretMatches(found.record, parsed.secret)) return undefined
      found.verified = Buffer.from(parsed.secret)
      return found.record
    }
  }
}
