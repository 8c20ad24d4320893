import type { RateLimit } from './options.ts'

/**
 * Token buckets per API token, one for prediction creates and one for everything else
 * (REFERENCE §4). Buckets run in real time, not emulated time: the seconds a 429 reports are the
 * seconds a client really has to wait.
 */
export type BucketKind = 'create' | 'other'

export interface RateDecision {
  allowed: boolean
  /** Whole requests left in the bucket after this one. */
  remaining: number
  /** Seconds until the bucket is full again. */
  resetSeconds: number
  /** Seconds until one more request is allowed (at least 1). */
  retryAfterSeconds: number
  lowCredit: boolean
}

interface Bucket {
  tokens: number
  updatedAt: number
  limit: RateLimit
}

export interface RateLimiterConfig {
  create: RateLimit
  other: RateLimit
  lowCreditCreate: RateLimit
  lowCreditTokens: ReadonlySet<string>
  now?: () => number
}

export interface RateLimiter {
  take(token: string, kind: BucketKind): RateDecision
  peek(token: string, kind: BucketKind): RateDecision
  reset(): void
}

export function createRateLimiter (config: RateLimiterConfig): RateLimiter {
  const now = config.now ?? Date.now
  const buckets = new Map<string, Bucket>()

  function limitFor (token: string, kind: BucketKind): RateLimit {
    if (kind === 'other') return config.other
    return config.lowCreditTokens.has(token) ? config.lowCreditCreate : config.create
  }

  function bucket (token: string, kind: BucketKind): Bucket {
    const key = `${kind}\u0000${token}`
    let found = buckets.get(key)
    if (!found) {
      const limit = limitFor(token, kind)
      found = { tokens: limit.burst, updatedAt: now(), limit }
      buckets.set(key, found)
    }
    const t = now()
    const perMs = found.limit.perMinute / 60_000
    found.tokens = Math.min(found.limit.burst, found.tokens + (t - found.updatedAt) * perMs)
    found.updatedAt = t
    return found
  }

  function describe (b: Bucket, allowed: boolean, token: string, kind: BucketKind): RateDecision {
    const perSecond = b.limit.perMinute / 60
    return {
      allowed,
      remaining: Math.floor(b.tokens),
      resetSeconds: Math.ceil((b.limit.burst - b.tokens) / perSecond),
      retryAfterSeconds: Math.max(1, Math.ceil((1 - b.tokens) / perSecond)),
      lowCredit: kind === 'create' && config.lowCreditTokens.has(token)
    }
  }

  return {
    take (token, kind) {
      const b = bucket(token, kind)
      if (b.tokens < 1) return describe(b, false, token, kind)
      b.tokens -= 1
      return describe(b, true, token, kind)
    },
    peek (token, kind) {
      return describe(bucket(token, kind), true, token, kind)
    },
    reset () {
      buckets.clear()
    }
  }
}
