import type { StateStore } from '../stores/types.ts'
import type { ImageStorage } from './image-storage.ts'
import type { TrackerOptions } from '../predictions/tracker.ts'

/** Code-only seams for tenancy (tests, embedding); never read from the environment. */
export interface TenancyOverrides {
  store?: StateStore
  images?: ImageStorage
  tracker?: Pick<TrackerOptions, 'instanceId' | 'leaseMs' | 'sweepMs' | 'poll' | 'webhookGraceMs' | 'reconcileAfterMs' | 'maxQueued' | 'syncWindowSeconds' | 'now'>
}
