import { afterEach, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createKeyVerifier, KEY_CACHE_MS } from '../../src/tenancy/key-cache.ts'
import { createKeyRateLimiter } from '../../src/tenancy/key-rate-limiter.ts'
import { createApiKey } from '../../src/tenancy/keys.ts'

let store: StateStore | undefined
afterEach(async () => {
  await store?.close()
  store = undefined
})

/** A SQLite store whose key reads are counted. */
function countingStore (): { store: StateStore, reads: () => number } {
  const real = createSqliteStore({ path: ':memory:' })
  let reads = 0
  const getKey = real.getKey.bind(real)
  real.getKey = async (id) => {
    reads++
    return getKey(id)
  }
  return { store: real, reads: () => reads }
}

describe('the key verifier', () => {
  it('reads a key from the store once per KEY_CACHE_MS, and checks the secret every time', async () => {
    const counted = countingStore()
    store = counted.store
    let now = 1_000_000
    const { key } = await createApiKey(store, { plan: 'basic' })
    const verifier = createKeyVerifier(store, { now: () => now })
    for (let i = 0; i < 5; i++) expect((await verifier.verify(key))?.plan).toBe('basic')
    expect(counted.reads()).toBe(1)
    // The same id with a wrong secret is refused from the cached record, after the right one matched; and that
    // refusal does not stop the right one.
    expect(await verifier.verify(key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A'))).toBeUndefined()
    expect(await verifier.verify(key.slice(0, -2))).toBeUndefined()
    expect((await verifier.verify(key))?.plan).toBe('basic')
    expect(counted.reads()).toBe(1)
    now += KEY_CACHE_MS
    expect(await verifier.verify(key)).toBeDefined()
    expect(counted.reads()).toBe(2)
  })

  it('answers from what it keeps only for a fresh record and the secret that matched it: anything else needs a read', async () => {
    const counted = countingStore()
    store = counted.store
    let now = 1_000_000
    const { key, record } = await createApiKey(store, { plan: 'basic' })
    const wrong = key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A')
    const verifier = createKeyVerifier(store, { now: () => now })
    // Nothing kept yet, and no read made to find out.
    expect(verifier.verifyKept(key)).toBeUndefined()
    expect(counted.reads()).toBe(0)
    expect((await verifier.verify(key))?.id).toBe(record.id)
    expect(verifier.verifyKept(key)?.id).toBe(record.id)
    expect(verifier.verifyKept(wrong)).toBeUndefined()
    expect(verifier.verifyKept('not a key')).toBeUndefined()
    expect(verifier.verifyKept(undefined)).toBeUndefined()
    expect(counted.reads()).toBe(1)
    // Past the record's life the kept answer is gone, so a revocation made meanwhile is seen by the read that follows.
    await store.revokeKey(record.id, now)
    now += KEY_CACHE_MS
    expect(verifier.verifyKept(key)).toBeUndefined()
    expect(await verifier.verify(key)).toBeUndefined()
    expect(verifier.verifyKept(key)).toBeUndefined()
  })

  it('sees a revocation made elsewhere once the cached record expires, within the 5 s promised', async () => {
    store = createSqliteStore({ path: ':memory:' })
    let now = 1_000_000
    const { key, record } = await createApiKey(store, { plan: 'basic' })
    const verifier = createKeyVerifier(store, { now: () => now })
    expect(await verifier.verify(key)).toBeDefined()
    await store.revokeKey(record.id, now)
    now += KEY_CACHE_MS
    expect(await verifier.verify(key)).toBeUndefined()
    expect(KEY_CACHE_MS).toBeLessThanOrEqual(5_000)
  })

  it('does not remember unknown ids: a key created a moment later works at once', async () => {
    store = createSqliteStore({ path: ':memory:' })
    const verifier = createKeyVerifier(store, { now: () => 1_000_000 })
    const { key, record } = await createApiKey(store, { plan: 'free' })
    await store.revokeKey(record.id, 1)
    expect(await verifier.verify(key)).toBeUndefined()
    const fresh = await createApiKey(store, { plan: 'premium' })
    expect((await verifier.verify(fresh.key))?.plan).toBe('premium')
    expect(await verifier.verify('fgw_not_a_key')).toBeUndefined()
  })
})

describe('the per-key rate limiter', () => {
  it('with SQLite keeps its buckets in memory: no store writes, the same GCRA answers', async () => {
    store = createSqliteStore({ path: ':memory:' })
    let writes = 0
    const rateTake = store.rateTake.bind(store)
    store.rateTake = async (...args) => {
      writes++
      return rateTake(...args)
    }
    const limiter = createKeyRateLimiter(store)
    const spec = { perMinute: 60, burst: 3, maxWaitMs: 0 }
    const t = 5_000_000
    const answers = [await limiter.take('key:a', spec, t), await limiter.take('key:a', spec, t), await limiter.take('key:a', spec, t), await limiter.take('key:a', spec, t)]
    expect(answers.map((a) => a.allowed)).toEqual([true, true, true, false])
    expect(answers.map((a) => a.remaining)).toEqual([2, 1, 0, 0])
    expect(answers[3]!.retryAfterMs).toBe(1_000)
    // Another key has its own bucket; a second later the first has one token again.
    expect((await limiter.take('key:b', spec, t)).allowed).toBe(true)
    expect((await limiter.take('key:a', spec, t + 1_000)).allowed).toBe(true)
    expect(writes).toBe(0)
  })
})
