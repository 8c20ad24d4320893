import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { resolvePlan } from '../models/catalog.ts'
import type { ApiKeyRecord, BudgetPeriod, StateStore } from '../stores/types.ts'

/**
 * API keys look like `fgw_<id>_<secret>`. The id finds the record; only a sha256 of the secret is
 * stored, and it is compared in constant time. The full key is shown once, when it is created.
 */

const KEY_PATTERN = /^fgw_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/

export function hashSecret (secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

export function parseKey (key: string): { id: string, secret: string } | undefined {
  const m = KEY_PATTERN.exec(key)
  return m ? { id: m[1]!, secret: m[2]! } : undefined
}

export function secretMatches (record: Pick<ApiKeyRecord, 'secretHash'>, secret: string): boolean {
  const given = Buffer.from(hashSecret(secret), 'hex')
  const stored = Buffer.from(record.secretHash, 'hex')
  return given.length === stored.length && timingSafeEqual(given, stored)
}

export interface NewKeyOptions {
  name?: string
  plan: string
  budgetCredits?: number | null
  budgetPeriod?: BudgetPeriod
  rateLimitPerMinute?: number | null
  now?: number
}

/** Creates and stores a key; the returned `key` is the only time the secret exists outside the caller. */
export async function createApiKey (store: StateStore, o: NewKeyOptions): Promise<{ key: string, record: ApiKeyRecord }> {
  const id = randomBytes(8).toString('hex')
  const secret = randomBytes(24).toString('base64url')
  const record: ApiKeyRecord = {
    id,
    secretHash: hashSecret(secret),
    name: o.name ?? '',
    plan: resolvePlan(o.plan),
    budgetCredits: o.budgetCredits ?? null,
    budgetPeriod: o.budgetPeriod ?? 'month',
    rateLimitPerMinute: o.rateLimitPerMinute ?? null,
    createdAt: o.now ?? Date.now(),
    revokedAt: null,
    webhook: null
  }
  await store.insertKey(record)
  return { key: `fgw_${id}_${secret}`, record }
}
