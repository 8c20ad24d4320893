import { describe, expect, it } from 'vitest'
import type { ApiKeyRecord, PredictionCursor, PredictionEntry, StateStore, WebhookDelivery } from '../../src/stores/types.ts'

/** One behaviour for every store: the SQLite and Redis suites both run this. */
export function storeConformance (name: string, open: () => Promise<StateStore>): void {
  const T0 = Date.UTC(2026, 10, 26, 12, 0, 0)

  function key (id: string, over: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
    return { id, secretHash: `hash-${id}`, name: id, plan: 'basic', budgetCredits: null, budgetPeriod: 'month', rateLimitPerMinute: null, createdAt: T0, revokedAt: null, webhook: null, ...over }
  }

  function prediction (id: string, over: Partial<PredictionEntry> = {}): PredictionEntry {
    return { id, owner: 'k1', model: 'flux-schnell', creditsPerImage: 1, numImages: 1, warnings: [], createdAt: T0, ledgerId: `l-${id}`, last: { status: 'starting' }, finalized: false, kept: [], ...over }
  }

  async function withStore (fn: (s: StateStore) => Promise<void>): Promise<void> {
    const store = await open()
    try { await fn(store) } finally { await store.close() }
  }

  describe(`${name} store conformance`, () => {
    it('keys: insert, get, list, revoke once, count active and ever created', () => withStore(async (s) => {
      expect(await s.countKeys()).toBe(0)
      await s.insertKey(key('a', { createdAt: T0 + 1, budgetCredits: 500, rateLimitPerMinute: 60 }))
      await s.insertKey(key('b'))
      expect(await s.getKey('a')).toEqual(key('a', { createdAt: T0 + 1, budgetCredits: 500, rateLimitPerMinute: 60 }))
      expect(await s.getKey('nope')).toBeUndefined()
      expect((await s.listKeys()).map((k) => k.id)).toEqual(['b', 'a'])
      expect(await s.countActiveKeys()).toBe(2)
      expect(await s.revokeKey('a', T0 + 5)).toBe(true)
      expect(await s.revokeKey('a', T0 + 6)).toBe(false)
      expect(await s.revokeKey('nope', T0 + 6)).toBe(false)
      expect((await s.getKey('a'))?.revokedAt).toBe(T0 + 5)
      expect(await s.countActiveKeys()).toBe(1)
      expect(await s.countKeys()).toBe(2)
    }))

    it('keys: a store whose every key was revoked still says keys existed', () => withStore(async (s) => {
      await s.insertKey(key('only'))
      expect(await s.revokeKey('only', T0 + 1)).toBe(true)
      expect(await s.countActiveKeys()).toBe(0)
      // Authentication stays on for such a store: "no active key" must not read as "never had a key".
      expect(await s.countKeys()).toBe(1)
      await s.insertKey(key('born-revoked', { revokedAt: T0 + 2 }))
      expect(await s.countActiveKeys()).toBe(0)
      expect(await s.countKeys()).toBe(2)
    }))

    it('predictions: put, get, update, list the unfinalized oldest first', () => withStore(async (s) => {
      await s.putPrediction(prediction('p2', { createdAt: T0 + 2 }))
      await s.putPrediction(prediction('p1', { createdAt: T0 + 1 }))
      await s.putPrediction(prediction('p3', { createdAt: T0 + 3, finalized: true }))
      expect((await s.listUnfinalized()).map((e) => e.id)).toEqual(['p1', 'p2'])
      await s.putPrediction(prediction('p1', { createdAt: T0 + 1, finalized: true, kept: [{ key: 'p1/0.webp', contentType: 'image/webp', size: 10 }] }))
      expect((await s.listUnfinalized()).map((e) => e.id)).toEqual(['p2'])
      expect(await s.getPrediction('p1')).toMatchObject({ owner: 'k1', finalized: true, kept: [{ key: 'p1/0.webp', size: 10 }] })
      expect(await s.getPrediction('zz')).toBeUndefined()
    }))

    it('predictions: a finalized one is never overwritten by an earlier state', () => withStore(async (s) => {
      const final = prediction('f1', { finalized: true, last: { status: 'succeeded' } })
      expect(await s.putPrediction(prediction('f1'))).toBe(true)
      expect(await s.putPrediction(final)).toBe(true)
      expect(await s.putPrediction(prediction('f1', { last: { status: 'processing' } }))).toBe(false)
      expect(await s.getPrediction('f1')).toEqual(final)
      expect(await s.listUnfinalized()).toEqual([])
      const again = { ...final, kept: [{ key: 'f1/0.png', contentType: 'image/png', size: 3 }] }
      expect(await s.putPrediction(again)).toBe(true)
      expect(await s.getPrediction('f1')).toEqual(again)
    }))

    it('predictions: a queued create keeps its input until answered, then its upstream id', () => withStore(async (s) => {
      const input = { prompt: 'a fox', num_outputs: 2, image: `data:image/png;base64,${'A'.repeat(200_000)}` }
      const queued = prediction('q1', { createdAt: T0, seq: 1, create: { replicateModel: 'black-forest-labs/flux-schnell', input, inputHash: 'h', sentAt: null } })
      await s.putPrediction(queued)
      expect(await s.getPrediction('q1')).toEqual(queued)
      expect((await s.listUnfinalized()).map((e) => [e.id, e.create?.sentAt])).toEqual([['q1', null]])
      const answered = prediction('q1', { createdAt: T0, seq: 3, upstreamId: 'rep123' })
      await s.putPrediction(answered)
      expect(await s.getPrediction('q1')).toEqual(answered)
    }))

    it('ledger: reserve, settle exactly once, release exactly once, balance and usage', () => withStore(async (s) => {
      const budget = { credits: 10, period: 'month' as const }
      expect(await s.reserve({ id: 'r1', keyId: 'k', model: 'flux-dev', credits: 4, usd: 0.05, images: 2, budget, now: T0 })).toEqual({ ok: true })
      expect(await s.reserve({ id: 'r2', keyId: 'k', model: 'flux-schnell', credits: 3, usd: 0.009, images: 3, budget, now: T0 })).toEqual({ ok: true })
      expect(await s.balance('k', budget, T0)).toEqual({ budget_credits: 10, period: 'month', used_credits: 0, reserved_credits: 7, remaining_credits: 3 })
      const refused = await s.reserve({ id: 'r3', keyId: 'k', model: 'flux-dev', credits: 4, usd: 0.05, images: 2, budget, now: T0 })
      expect(refused).toEqual({ ok: false, balance: { budget_credits: 10, period: 'month', used_credits: 0, reserved_credits: 7, remaining_credits: 3 } })
      expect(await s.getLedgerEntry('r3')).toBeUndefined()

      // Partial delivery settles for what was delivered.
      expect(await s.settle('r1', { credits: 2, usd: 0.025, images: 1 }, T0 + 10)).toBe(true)
      expect(await s.settle('r1', { credits: 2, usd: 0.025, images: 1 }, T0 + 11)).toBe(false)
      expect(await s.release('r1', T0 + 12)).toBe(false)
      expect(await s.release('r2', T0 + 12)).toBe(true)
      expect(await s.release('r2', T0 + 13)).toBe(false)
      expect(await s.settle('r2', { credits: 3, usd: 0.009, images: 3 }, T0 + 13)).toBe(false)
      expect(await s.getLedgerEntry('r1')).toMatchObject({ keyId: 'k', model: 'flux-dev', state: 'settled', credits: 2, usd: 0.025, images: 1, month: '2026-11', settledAt: T0 + 10 })
      expect(await s.getLedgerEntry('r2')).toMatchObject({ state: 'released', credits: 0 })
      expect(await s.balance('k', budget, T0)).toEqual({ budget_credits: 10, period: 'month', used_credits: 2, reserved_credits: 0, remaining_credits: 8 })
      expect(await s.balance('k', null, T0)).toMatchObject({ budget_credits: null, used_credits: 2, remaining_credits: null })
      // Another month starts from zero; the total does not.
      const next = Date.UTC(2026, 11, 2)
      expect(await s.balance('k', budget, next)).toMatchObject({ used_credits: 0, remaining_credits: 10 })
      expect(await s.balance('k', { credits: 10, period: 'total' }, next)).toMatchObject({ used_credits: 2, remaining_credits: 8 })

      const usage = await s.usage('k', T0 - 86_400_000)
      expect(usage.byModel).toEqual({ 'flux-dev': { predictions: 1, images: 1, credits: 2, usd: 0.025 } })
      expect(usage.byDay).toEqual({ '2026-11-26': { predictions: 1, images: 1, credits: 2, usd: 0.025 } })
      expect(await s.usage('other', T0 - 86_400_000)).toEqual({ byModel: {}, byDay: {} })
    }))

    it('ledger: concurrent reserves never overspend a budget', () => withStore(async (s) => {
      const budget = { credits: 10, period: 'total' as const }
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) =>
        s.reserve({ id: `c${i}`, keyId: 'k', model: 'flux-dev', credits: 2, usd: 0.05, images: 1, budget, now: T0 })))
      expect(results.filter((r) => r.ok)).toHaveLength(5)
      expect(await s.balance('k', budget, T0)).toMatchObject({ reserved_credits: 10, remaining_credits: 0 })
    }))

    it('idempotency: start, in flight, mismatch, replay, abandon, take-over after the lock', () => withStore(async (s) => {
      const now = Date.now()
      const o = { lockMs: 60_000, ttlMs: 60_000, now }
      expect(await s.idempotencyBegin('k:a', 'f1', o)).toEqual({ state: 'started' })
      expect(await s.idempotencyBegin('k:a', 'f1', o)).toEqual({ state: 'in_flight' })
      expect(await s.idempotencyBegin('k:a', 'f2', o)).toEqual({ state: 'mismatch' })
      const response = { status: 202, headers: { location: '/v1/predictions/x' }, body: '{"id":"x"}' }
      await s.idempotencyComplete('k:a', 'f1', response, o)
      expect(await s.idempotencyBegin('k:a', 'f1', o)).toEqual({ state: 'completed', response })
      expect(await s.idempotencyBegin('k:a', 'f2', o)).toEqual({ state: 'mismatch' })
      await s.idempotencyAbandon('k:a')
      expect(await s.idempotencyBegin('k:a', 'f1', o)).toEqual({ state: 'completed', response })

      expect(await s.idempotencyBegin('k:b', 'f1', o)).toEqual({ state: 'started' })
      await s.idempotencyAbandon('k:b')
      expect(await s.idempotencyBegin('k:b', 'f1', o)).toEqual({ state: 'started' })

      expect(await s.idempotencyBegin('k:c', 'f1', { lockMs: 1, ttlMs: 60_000, now })).toEqual({ state: 'started' })
      expect(await s.idempotencyBegin('k:c', 'f1', { ...o, now: now + 5 })).toEqual({ state: 'started' })
    }))

    it('idempotency: records expire after their TTL', () => withStore(async (s) => {
      const now = Date.now()
      expect(await s.idempotencyBegin('k:t', 'f1', { lockMs: 30, ttlMs: 30, now })).toEqual({ state: 'started' })
      await s.idempotencyComplete('k:t', 'f1', { status: 200, headers: {}, body: '{}' }, { ttlMs: 30, now })
      await new Promise((resolve) => setTimeout(resolve, 80))
      expect(await s.idempotencyBegin('k:t', 'f2', { lockMs: 1000, ttlMs: 1000, now: Date.now() })).toEqual({ state: 'started' })
    }))

    it('idempotency: of many concurrent starts exactly one wins', () => withStore(async (s) => {
      const o = { lockMs: 60_000, ttlMs: 60_000, now: Date.now() }
      const results = await Promise.all(Array.from({ length: 40 }, () => s.idempotencyBegin('k:race', 'f', o)))
      expect(results.filter((r) => r.state === 'started')).toHaveLength(1)
      expect(results.filter((r) => r.state === 'in_flight')).toHaveLength(39)
    }))

    it('rate buckets: GCRA burst, refusal with retry-after, refill, and scheduling within maxWait', () => withStore(async (s) => {
      const now = Date.now()
      const spec = { perMinute: 60, burst: 3, maxWaitMs: 0 }
      const takes = []
      for (let i = 0; i < 4; i++) takes.push(await s.rateTake('in', spec, now))
      expect(takes.map((t) => t.allowed)).toEqual([true, true, true, false])
      expect(takes.map((t) => t.remaining)).toEqual([2, 1, 0, 0])
      expect(takes[3]).toMatchObject({ retryAfterMs: 1000, resetMs: 3000 })
      expect(takes[0]?.resetMs).toBe(1000)
      expect(await s.rateTake('in', spec, now + 1000)).toMatchObject({ allowed: true, remaining: 0 })
      expect(await s.rateTake('other', spec, now)).toMatchObject({ allowed: true, remaining: 2 })

      const shaping = { perMinute: 600, burst: 1, maxWaitMs: 250 }
      const waits = []
      for (let i = 0; i < 5; i++) waits.push(await s.rateTake('up', shaping, now))
      expect(waits.map((t) => t.allowed)).toEqual([true, true, true, false, false])
      expect(waits.map((t) => t.waitMs)).toEqual([0, 100, 200, 0, 0])
      expect(waits[3]?.retryAfterMs).toBe(50)
    }))

    it('predictions: one owner\'s history, newest first, paged by cursor and filtered', () => withStore(async (s) => {
      // p0…p6 for k1 a second apart (p3 and p4 at the same instant), one for k2, statuses and models mixed.
      const mine = [
        prediction('p0', { createdAt: T0, last: { status: 'succeeded' } }),
        prediction('p1', { createdAt: T0 + 1000, model: 'flux-dev', last: { status: 'failed' } }),
        prediction('p2', { createdAt: T0 + 2000, last: { status: 'succeeded' } }),
        prediction('p3', { createdAt: T0 + 3000, last: { status: 'succeeded' } }),
        prediction('p4', { createdAt: T0 + 3000, model: 'flux-dev', last: { status: 'processing' } }),
        prediction('p5', { createdAt: T0 + 5000, last: { status: 'succeeded' } }),
        prediction('p6', { createdAt: T0 + 6000, last: { status: 'starting' } })
      ]
      for (const e of mine) await s.putPrediction(e)
      await s.putPrediction(prediction('x1', { owner: 'k2', createdAt: T0 + 4000 }))
      // An update keeps the prediction's place (and counts once).
      await s.putPrediction({ ...mine[6]!, last: { status: 'succeeded' }, finalized: true })

      const ids = (page: { entries: PredictionEntry[] }) => page.entries.map((e) => e.id)
      const all = await s.listPredictions('k1', { limit: 100 })
      expect(ids(all)).toEqual(['p6', 'p5', 'p4', 'p3', 'p2', 'p1', 'p0'])
      expect(all.next).toBeNull()
      expect(all.entries[0]).toMatchObject({ last: { status: 'succeeded' }, finalized: true })

      const walked: string[] = []
      let cursor: PredictionCursor | undefined
      for (let pages = 0; pages < 10; pages++) {
        const page = await s.listPredictions('k1', { limit: 2, cursor })
        walked.push(...ids(page))
        if (!page.next) break
        cursor = page.next
      }
      expect(walked).toEqual(['p6', 'p5', 'p4', 'p3', 'p2', 'p1', 'p0'])
      // A full last page says so: no empty page after it.
      const exact = await s.listPredictions('k1', { limit: 7 })
      expect(exact.next).toBeNull()
      const first = await s.listPredictions('k1', { limit: 3 })
      expect(first.next).toEqual({ createdAt: T0 + 3000, id: 'p4' })

      expect(ids(await s.listPredictions('k1', { limit: 100, status: 'succeeded' }))).toEqual(['p6', 'p5', 'p3', 'p2', 'p0'])
      expect(ids(await s.listPredictions('k1', { limit: 100, model: 'flux-dev' }))).toEqual(['p4', 'p1'])
      expect(ids(await s.listPredictions('k1', { limit: 100, model: 'flux-dev', status: 'failed' }))).toEqual(['p1'])
      expect(ids(await s.listPredictions('k1', { limit: 100, createdAfter: T0 + 1000, createdBefore: T0 + 5000 }))).toEqual(['p4', 'p3', 'p2'])
      expect(ids(await s.listPredictions('k1', { limit: 1, status: 'succeeded', cursor: { createdAt: T0 + 3000, id: 'p4' } }))).toEqual(['p3'])
      expect(ids(await s.listPredictions('k1', { limit: 100, createdBefore: T0 + 3000, cursor: { createdAt: T0 + 5000, id: 'p5' } }))).toEqual(['p2', 'p1', 'p0'])
      expect(ids(await s.listPredictions('k2', { limit: 100 }))).toEqual(['x1'])
      expect(await s.listPredictions('nobody', { limit: 100 })).toEqual({ entries: [], next: null })
    }))

    it('secrets: the first one kept wins, for every caller', () => withStore(async (s) => {
      const got = await Promise.all(['a'.repeat(40), 'b'.repeat(40), 'c'.repeat(40)].map((c) => s.getOrCreateSecret('signing', c)))
      expect(new Set(got).size).toBe(1)
      expect(await s.getOrCreateSecret('signing', 'd'.repeat(40))).toBe(got[0])
      expect(await s.getOrCreateSecret('other', 'e'.repeat(40))).toBe('e'.repeat(40))
    }))

    it('webhook deliveries: put, update, list by prediction oldest first, list the pending ones due soonest first', () => withStore(async (s) => {
      const delivery = (id: string, over: Partial<WebhookDelivery> = {}): WebhookDelivery => ({
        id, predictionId: 'p1', owner: 'k1', url: 'https://hooks.example.com/x', event: 'completed', payload: { id: 'p1' }, state: 'pending', attempts: [], nextAt: T0, createdAt: T0, ...over
      })
      await s.putWebhookDelivery(delivery('msg_b', { createdAt: T0 + 1, nextAt: T0 + 5_000 }))
      await s.putWebhookDelivery(delivery('msg_a', { event: 'start', nextAt: T0 + 1_000 }))
      await s.putWebhookDelivery(delivery('msg_c', { predictionId: 'p2', nextAt: T0 + 500 }))
      expect((await s.listWebhookDeliveries('p1')).map((d) => d.id)).toEqual(['msg_a', 'msg_b'])
      expect((await s.listDueWebhookDeliveries(T0 + 1_000, 10)).map((d) => d.id)).toEqual(['msg_c', 'msg_a'])
      expect((await s.listDueWebhookDeliveries(T0 + 10_000, 2)).map((d) => d.id)).toEqual(['msg_c', 'msg_a'])
      const attempt = { at: T0 + 1_000, status: 200, error: null }
      await s.putWebhookDelivery(delivery('msg_a', { event: 'start', nextAt: T0 + 1_000, state: 'delivered', attempts: [attempt] }))
      expect(await s.getWebhookDelivery('msg_a')).toMatchObject({ state: 'delivered', attempts: [attempt], payload: { id: 'p1' } })
      expect((await s.listDueWebhookDeliveries(T0 + 10_000, 10)).map((d) => d.id)).toEqual(['msg_c', 'msg_b'])
      expect(await s.getWebhookDelivery('msg_none')).toBeUndefined()
      // Adding never overwrites: a second finalization cannot reset a delivered one.
      expect(await s.addWebhookDelivery(delivery('msg_a', { nextAt: T0 }))).toBe(false)
      expect(await s.getWebhookDelivery('msg_a')).toMatchObject({ state: 'delivered', event: 'start' })
      expect(await s.addWebhookDelivery(delivery('msg_d', { nextAt: T0 }))).toBe(true)
      expect((await s.listDueWebhookDeliveries(T0, 10)).map((d) => d.id)).toEqual(['msg_d'])
      expect(await s.listWebhookDeliveries('p9')).toEqual([])
    }))

    it('keys: a default webhook is set, cleared, and only on a key that exists', () => withStore(async (s) => {
      await s.insertKey(key('kw'))
      expect((await s.getKey('kw'))?.webhook ?? null).toBeNull()
      expect(await s.setKeyWebhook('kw', 'https://hooks.example.com/a')).toBe(true)
      expect((await s.getKey('kw'))?.webhook).toBe('https://hooks.example.com/a')
      expect((await s.listKeys()).find((k) => k.id === 'kw')?.webhook).toBe('https://hooks.example.com/a')
      expect(await s.setKeyWebhook('kw', null)).toBe(true)
      expect((await s.getKey('kw'))?.webhook ?? null).toBeNull()
      expect(await s.setKeyWebhook('nokey', 'https://hooks.example.com/a')).toBe(false)
    }))

    it('secrets: read without making, and replaced', () => withStore(async (s) => {
      expect(await s.getSecret('rotating')).toBeUndefined()
      await s.putSecret('rotating', 'one')
      expect(await s.getSecret('rotating')).toBe('one')
      await s.putSecret('rotating', 'two')
      expect(await s.getOrCreateSecret('rotating', 'three')).toBe('two')
    }))

    it('leases: one holder at a time, renewal, release, expiry', () => withStore(async (s) => {
      const now = Date.now()
      expect(await s.lease('p1', 'a', 60_000, now)).toBe(true)
      expect(await s.lease('p1', 'b', 60_000, now)).toBe(false)
      expect(await s.lease('p1', 'a', 60_000, now)).toBe(true)
      await s.releaseLease('p1', 'b')
      expect(await s.lease('p1', 'b', 60_000, now)).toBe(false)
      await s.releaseLease('p1', 'a')
      expect(await s.lease('p1', 'b', 30, now)).toBe(true)
      await new Promise((resolve) => setTimeout(resolve, 80))
      expect(await s.lease('p1', 'a', 60_000, Date.now())).toBe(true)
    }))
  })
}
