import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLocalFeed } from '../../src/predictions/feed.ts'
import { createRedisFeed } from '../../src/stores/redis-feed.ts'
import type { PredictionEntry } from '../../src/stores/types.ts'
import { redisUnavailable, startTestRedis } from '../helpers/redis.ts'
import type { TestRedis } from '../helpers/redis.ts'

const entry = (id: string, seq: number, over: Partial<PredictionEntry> = {}): PredictionEntry => ({
  id, owner: 'k', model: 'flux-schnell', creditsPerImage: 1, numImages: 1, warnings: [], createdAt: 0, ledgerId: `l-${id}`, last: { status: 'starting' }, finalized: false, kept: [], seq, ...over
})

describe('the change feed in one process', () => {
  it('delivers a change to the listeners of that prediction only, without the create\'s input, and stops at unsubscribe', async () => {
    const feed = createLocalFeed()
    const heard: Array<[string, PredictionEntry]> = []
    const offA = feed.subscribe('a', (e) => heard.push(['a1', e]))
    feed.subscribe('a', (e) => heard.push(['a2', e]))
    feed.subscribe('b', (e) => heard.push(['b', e]))
    expect(feed.listeners).toBe(3)
    feed.publish(entry('a', 1, { create: { replicateModel: 'm/n', input: { prompt: 'big' }, inputHash: 'h', sentAt: null } }))
    expect(heard.map(([who]) => who)).toEqual(['a1', 'a2'])
    expect(heard[0]![1].create).toEqual({ replicateModel: 'm/n', inputHash: 'h', sentAt: null })
    offA()
    offA()
    feed.publish(entry('a', 2))
    expect(heard.map(([who]) => who)).toEqual(['a1', 'a2', 'a2'])
    expect(feed.listeners).toBe(2)
  })
})

if (redisUnavailable) {
  describe('the change feed across instances', () => {
    it.skip(`skipped: ${redisUnavailable}`, () => {})
  })
} else {
  describe('the change feed across instances (Redis pub/sub)', () => {
    let redis: TestRedis
    beforeAll(async () => { redis = await startTestRedis() })
    afterAll(async () => { await redis.stop() })

    it('a change published on one instance reaches the other\'s listeners once, and its own listeners once', async () => {
      const prefix = redis.prefix()
      const log = pino({ level: 'silent' })
      const [one, two] = await Promise.all([
        createRedisFeed({ url: redis.url, prefix, instanceId: 'one', log }),
        createRedisFeed({ url: redis.url, prefix, instanceId: 'two', log })
      ])
      // A third on another prefix (another deployment on the same server) hears nothing.
      const other = await createRedisFeed({ url: redis.url, prefix: redis.prefix(), instanceId: 'three', log })
      try {
        const onOne: number[] = []
        const onTwo: number[] = []
        const onOther: number[] = []
        one.subscribe('p', (e) => onOne.push(e.seq!))
        two.subscribe('p', (e) => onTwo.push(e.seq!))
        other.subscribe('p', (e) => onOther.push(e.seq!))
        one.publish(entry('p', 1))
        one.publish(entry('p', 2, { finalized: true }))
        await expect.poll(() => onTwo, { timeout: 5_000 }).toEqual([1, 2])
        // Delivered locally at once, and not again when its own message comes back.
        await new Promise((resolve) => setTimeout(resolve, 100))
        expect(onOne).toEqual([1, 2])
        expect(onOther).toEqual([])
      } finally {
        await Promise.all([one.close(), two.close(), other.close()])
      }
    })
  })
}
