import { resolvePlan } from '../models/catalog.ts'
import type { PlanId } from '../models/catalog.ts'
import type { ApiKeyRecord, Budget } from '../stores/types.ts'

/** Who is calling: a key's id, plan, budget and rate limit, or the anonymous caller when auth is off. */
export interface Tenant {
  id: string
  plan: PlanId
  /** Anonymous callers (auth off, outside production) may use every model; their plan only picks the default. */
  anonymous: boolean
  budget: Budget | null
  rateLimitPerMinute: number | null
  /** The key's default webhook, used when a create names none. */
  webhook?: string | null
}

export const ANONYMOUS_ID = 'anonymous'

/** The tenant an active key record stands for: the same for a bearer key over HTTP and a key id on the queue. */
export function tenantOf (key: ApiKeyRecord): Tenant {
  return {
    id: key.id,
    plan: resolvePlan(key.plan),
    anonymous: false,
    budget: key.budgetCredits === null ? null : { credits: key.budgetCredits, period: key.budgetPeriod },
    rateLimitPerMinute: key.rateLimitPerMinute,
    webhook: key.webhook ?? null
  }
}
