import { gcra } from '../stores/types.ts'
import type { RateSpec, RateTake, StateStore } from '../stores/types.ts'

/**
 * Per-key request limits. With SQLite the service runs as one instance, so the buckets live in memory and a request
 * costs no write; they start full again after a restart, which only forgives a minute's burst. With Redis every
 * instance shares the buckets in the store (one round trip, as the Lua script is atomic).
 */
export function createKeyRateLimiter (store: StateStore): { take: (bucket: string, spec: RateSpec, now: number) => Promise<RateTake> } {
  if (store.kind !== 'sqlite') return { take: (bucket, spec, now) => store.rateTake(bucket, spec, now) }
  const tats = new Map<string, number>()
  let sweptAt = 0
  return {
    async take (bucket, spec, now) {
      // Buckets whose theoretical arrival time has passed are full again, the same as absent: drop them now and
      // then, so the map holds only the keys active in the last minute.
      if (now - sweptAt > 60_000) {
        sweptAt = now
        for (const [k, tat] of tats) if (tat <= now) tats.delete(k)
      }
      const tat = tats.get(bucket)
      const { take, newTat } = gcra(tat !== undefined && tat > now ? tat : undefined, spec, now)
      if (newTat !== undefined) tats.set(bucket, newTat)
      return take
    }
  }
}
