import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, storeWithKeys } from './helpers.ts'

let gw: TestGateway
let store: StateStore
let keys: Record<'a' | 'b' | 'free', string>
const made: Array<{ id: string, model: string, status: string }> = []

beforeAll(async () => {
  store = createSqliteStore({ path: ':memory:' });
  ({ keys } = await storeWithKeys({ a: { plan: 'basic' }, b: { plan: 'basic' }, free: { plan: 'free', budgetCredits: 100 } }, store))
  gw = await startGateway({ overrides: { tenancy: { store } } })
  // Five of a's, one moderated away (never recorded), one of b's.
  for (const [i, model] of ['flux-schnell', 'flux-dev', 'flux-schnell', 'flux-dev', 'flux-schnell'].entries()) {
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: `a numbered sign showing ${i}`, model } })
    expect(res.status).toBe(200)
    made.unshift({ id: res.body.id, model, status: res.body.status })
  }
  expect((await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.a, body: { prompt: 'a n.u.d.e statue' } })).status).toBe(422)
  expect((await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.b, body: { prompt: 'b\'s own picture', model: 'flux-schnell' } })).status).toBe(200)
})
afterAll(async () => {
  await gw.close()
  await store.close()
})

describe('GET /v1/predictions', () => {
  it("lists the caller's predictions newest first, in the shape GET by id has, with signed image URLs", async () => {
    const res = await call(gw.url, 'GET', '/v1/predictions', { key: keys.a })
    expect(res.status).toBe(200)
    expect(res.body.next_cursor).toBeNull()
    expect(res.body.data.map((p: { id: string }) => p.id)).toEqual(made.map((m) => m.id))
    const one = await call(gw.url, 'GET', `/v1/predictions/${made[0]!.id}`, { key: keys.a })
    expect(res.body.data[0]).toEqual({ ...one.body, output: [signedImageUrl(gw.url, made[0]!.id, 0)] })
    expect(res.body.data[0]).toMatchObject({ status: 'succeeded', model: 'flux-schnell', cost_credits: 1 })
  })

  it('pages by cursor with limit, and refuses a limit over 100 or a forged cursor', async () => {
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res: Awaited<ReturnType<typeof call>> = await call(gw.url, 'GET', `/v1/predictions?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { key: keys.a })
      expect(res.status).toBe(200)
      expect(res.body.data.length).toBeLessThanOrEqual(2)
      seen.push(...res.body.data.map((p: { id: string }) => p.id))
      cursor = res.body.next_cursor
      pages++
    } while (cursor && pages < 10)
    expect(pages).toBe(3)
    expect(seen).toEqual(made.map((m) => m.id))

    const big = await call(gw.url, 'GET', '/v1/predictions?limit=101', { key: keys.a })
    expect(big.status).toBe(400)
    expect(big.body.errors).toEqual([expect.objectContaining({ field: 'query.limit' })])
    const forged = await call(gw.url, 'GET', '/v1/predictions?cursor=bm90LWEtY3Vyc29y', { key: keys.a })
    expect(forged.status).toBe(400)
    expect(forged.body).toMatchObject({ code: 'validation_error', errors: [{ field: 'query.cursor' }] })
  })

  it('filters by status, model and creation time', async () => {
    const ids = async (query: string): Promise<string[]> => {
      const res = await call(gw.url, 'GET', `/v1/predictions?${query}`, { key: keys.a })
      expect(res.status, query).toBe(200)
      return res.body.data.map((p: { id: string }) => p.id)
    }
    expect(await ids('model=flux-dev')).toEqual(made.filter((m) => m.model === 'flux-dev').map((m) => m.id))
    expect(await ids('status=succeeded&model=flux-schnell')).toEqual(made.filter((m) => m.model === 'flux-schnell').map((m) => m.id))
    expect(await ids('status=failed')).toEqual([])
    const all = (await call(gw.url, 'GET', '/v1/predictions', { key: keys.a })).body.data as Array<{ id: string, created_at: string }>
    // Our record's creation time is when the gateway recorded it; the window below is built from the listed ones.
    const times = await Promise.all(all.map(async (p) => (await store.getPrediction(p.id))!.createdAt))
    const after = new Date(times[3]!).toISOString()
    const before = new Date(times[0]!).toISOString()
    expect(await ids(`created_after=${after}&created_before=${before}`)).toEqual(made.slice(1, 3).map((m) => m.id))
    expect((await call(gw.url, 'GET', '/v1/predictions?created_after=yesterday', { key: keys.a })).status).toBe(400)
    expect((await call(gw.url, 'GET', '/v1/predictions?model=flux-9', { key: keys.a })).status).toBe(400)
  })

  it("never lists another key's predictions, and needs a key", async () => {
    const b = await call(gw.url, 'GET', '/v1/predictions', { key: keys.b })
    expect(b.body.data).toHaveLength(1)
    expect(made.map((m) => m.id)).not.toContain(b.body.data[0].id)
    expect((await call(gw.url, 'GET', '/v1/predictions', { key: keys.free })).body).toEqual({ data: [], next_cursor: null })
    expect((await call(gw.url, 'GET', '/v1/predictions')).status).toBe(401)
  })
})

describe('GET /v1/key', () => {
  it("tells the key's plan, its models and its balance", async () => {
    const free = await call(gw.url, 'GET', '/v1/key', { key: keys.free })
    expect(free.status).toBe(200)
    expect(free.body).toMatchObject({ plan: 'free', authenticated: true, models: ['flux-schnell'], default_model: 'flux-schnell', balance: { budget_credits: 100, remaining_credits: 100 } })
    const basic = await call(gw.url, 'GET', '/v1/key', { key: keys.a })
    expect(basic.body).toMatchObject({ plan: 'basic', models: ['flux-schnell', 'flux-dev'], default_model: 'flux-dev', balance: { budget_credits: null } })
    expect((await call(gw.url, 'GET', '/v1/key')).status).toBe(401)
  })
})
