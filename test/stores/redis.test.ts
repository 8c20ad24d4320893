import { afterAll, beforeAll, describe, it } from 'vitest'
import { createRedisStore } from '../../src/stores/redis.ts'
import { redisUnavailable, startTestRedis } from '../helpers/redis.ts'
import type { TestRedis } from '../helpers/redis.ts'
import { storeConformance } from './conformance.ts'

if (redisUnavailable) {
  describe('redis store', () => {
    it.skip(`skipped: ${redisUnavailable}`, () => {})
  })
} else {
  let redis: TestRedis
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis.stop() })
  storeConformance('redis', async () => createRedisStore({ url: redis.url, prefix: redis.prefix() }))
}
