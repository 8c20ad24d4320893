import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSafePoster } from '../../src/net/safe-fetch.ts'
import { createRedisStore } from '../../src/stores/redis.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createWebhookDispatcher } from '../../src/webhooks/dispatcher.ts'
import type { WebhookDispatcher } from '../../src/webhooks/dispatcher.ts'
import { redisUnavailable, startTestRedis } from '../helpers/redis.ts'
import type { TestRedis } from '../helpers/redis.ts'
import { sleep } from '../tenancy/helpers.ts'

/** Two instances sweeping one Redis store: every due delivery is sent, and sent once. */

if (redisUnavailable) {
  describe('webhook deliveries across instances', () => {
    it.skip(`skipped: ${redisUnavailable}`, () => {})
  })
} else {
  let redis: TestRedis
  beforeAll(async () => { redis = await startTestRedis() })
  afterAll(async () => { await redis.stop() })

  describe('webhook deliveries across instances', () => {
    it('two instances sweeping the same due deliveries send each exactly once', async () => {
      const ids: string[] = []
      // A slow receiver, so both sweeps find the same deliveries due while the first attempts are in flight.
      const receiver = createServer((req, res) => {
        req.resume()
        req.on('end', () => { ids.push(String(req.headers['webhook-id'])); setTimeout(() => res.writeHead(204).end(), 30) })
      })
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
      const prefix = redis.prefix()
      const stores: StateStore[] = [createRedisStore({ url: redis.url, prefix }), createRedisStore({ url: redis.url, prefix })]
      const now = Date.now()
      for (let i = 0; i < 8; i++) {
        await stores[0]!.putWebhookDelivery({ id: `msg_p${i}_completed`, predictionId: `p${i}`, owner: 'k1', url, event: 'completed', payload: { id: `p${i}` }, state: 'pending', attempts: [], nextAt: now, createdAt: now })
      }
      const dispatchers: WebhookDispatcher[] = stores.map((store, n) => createWebhookDispatcher({
        store,
        poster: createSafePoster({ allowedSchemes: ['http:'], allowPrivate: true }),
        log: pino({ level: 'silent' }),
        instanceId: `instance-${n}`,
        sweepMs: 10
      }))
      try {
        for (const d of dispatchers) d.start()
        for (let i = 0; i < 200; i++) {
          const states = await Promise.all(Array.from({ length: 8 }, (_v, n) => stores[1]!.getWebhookDelivery(`msg_p${n}_completed`)))
          if (states.every((s) => s?.state === 'delivered')) break
          await sleep(25)
        }
        // Several more sweeps on both: nothing is sent again.
        await sleep(100)
        for (const d of dispatchers) await d.idle()
        expect(ids.sort()).toEqual(Array.from({ length: 8 }, (_v, n) => `msg_p${n}_completed`).sort())
        for (let n = 0; n < 8; n++) expect((await stores[0]!.getWebhookDelivery(`msg_p${n}_completed`))?.attempts).toHaveLength(1)
      } finally {
        for (const d of dispatchers) await d.close()
        for (const s of stores) await s.close()
        await new Promise((resolve) => receiver.close(resolve))
      }
    })
  })
}
