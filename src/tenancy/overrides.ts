import type { StateStore } from '../stores/types.ts'
import type { ImageStorage } from './image-storage.ts'
import type { TenantServiceOptions } from './service.ts'

/** Code-only seams for tenancy (tests, embedding); never read from the environment. */
export interface TenancyOverrides {
  store?: StateStore
  images?: ImageStorage
  service?: Pick<TenantServiceOptions, 'instanceId' | 'leaseMs' | 'sweepMs' | 'poll' | 'background' | 'webhookGraceMs' | 'reconcileAfterMs' | 'now'>
}
