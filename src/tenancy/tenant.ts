import type { PlanId } from '../models/catalog.ts'
import type { Budget } from '../stores/types.ts'

/** Who is calling: a key's id, plan, budget and rate limit, or the anonymous caller when auth is off. */
export interface Tenant {
  id: string
  plan: PlanId
  /** Anonymous callers (auth off, outside production) may use every model; their plan only picks the default. */
  anonymous: boolean
  budget: Budget | null
  rateLimitPerMinute: number | null
}

export const ANONYMOUS_ID = 'anonymous'
