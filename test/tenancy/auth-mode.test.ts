import { afterEach, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createApiKey } from '../../src/tenancy/keys.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, storeWithKeys } from './helpers.ts'

/**
 * Outside production, authentication is off only for a store that has never held a key. Revoking the last key
 * must lock callers out, not let everyone in. The store is asked again at every request here (keysRecheckMs 0), so
 * a wrong answer from it shows at once instead of after the 5 s cache.
 */

let gw: TestGateway | undefined
let store: StateStore | undefined
afterEach(async () => {
  await gw?.close()
  await store?.close()
  gw = undefined
  store = undefined
})

const modeLines = (g: TestGateway) => g.logs.filter((l) => l.auth !== undefined).map((l) => [l.auth, l.level])

describe('authentication mode outside production', () => {
  it('stays on after the last key is revoked: the revoked key and keyless callers get 401', async () => {
    const made = await storeWithKeys({ only: { plan: 'basic' } })
    store = made.store
    gw = await startGateway({ overrides: { tenancy: { store }, auth: { keysRecheckMs: 0, keyCacheMs: 0 } } })
    expect((await call(gw.url, 'GET', '/v1/usage', { key: made.keys.only })).status).toBe(200)
    expect(await store.revokeKey(made.ids.only, Date.now())).toBe(true)
    const keyless = await call(gw.url, 'POST', '/v1/text-to-image', { body: { prompt: 'a free lunch' } })
    expect(keyless.status).toBe(401)
    expect(keyless.body.code).toBe('unauthorized')
    expect((await call(gw.url, 'GET', '/v1/usage', { key: made.keys.only })).status).toBe(401)
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(0)
    expect(modeLines(gw)).toEqual([['on', 30]])
    expect(gw.logText()).not.toContain('AUTHENTICATION IS OFF')
  })

  it('starts on when the store holds only revoked keys', async () => {
    const made = await storeWithKeys({ gone: { plan: 'premium' } })
    store = made.store
    await store.revokeKey(made.ids.gone, Date.now())
    gw = await startGateway({ overrides: { tenancy: { store } } })
    expect((await call(gw.url, 'GET', '/v1/models')).status).toBe(401)
    expect((await call(gw.url, 'GET', '/v1/models', { key: made.keys.gone })).status).toBe(401)
    expect(gw.logText()).not.toContain('AUTHENTICATION IS OFF')
  })

  it('is off only while no key has ever existed, turns on with the first key, and logs each mode', async () => {
    store = createSqliteStore({ path: ':memory:' })
    gw = await startGateway({ overrides: { tenancy: { store }, auth: { keysRecheckMs: 0, keyCacheMs: 0 } } })
    const open = await call(gw.url, 'GET', '/v1/usage')
    expect(open.status).toBe(200)
    expect(open.body.key_id).toBe('anonymous')
    expect(modeLines(gw)).toEqual([['off', 40]])

    const { key, record } = await createApiKey(store, { plan: 'free' })
    expect((await call(gw.url, 'GET', '/v1/usage')).status).toBe(401)
    expect((await call(gw.url, 'GET', '/v1/usage', { key })).status).toBe(200)
    await store.revokeKey(record.id, Date.now())
    expect((await call(gw.url, 'GET', '/v1/usage')).status).toBe(401)
    expect((await call(gw.url, 'GET', '/v1/usage', { key })).status).toBe(401)
    // One line when it turned on, none after: it never turns off again.
    expect(modeLines(gw)).toEqual([['off', 40], ['on', 40]])
    expect(gw.logs.find((l) => l.auth === 'on')?.msg).toMatch(/authentication turned on/)
  })
})
