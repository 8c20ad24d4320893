import { afterEach, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, sleep, storeWithKeys } from './helpers.ts'

let gw: TestGateway | undefined
let store: StateStore | undefined
afterEach(async () => {
  await gw?.close()
  await store?.close()
})

describe('authentication in production', () => {
  it('stays on when every key is revoked while running: callers are refused, not let in', async () => {
    const made = await storeWithKeys({ only: { plan: 'basic' } })
    store = made.store
    gw = await startGateway({ env: { NODE_ENV: 'production' }, overrides: { tenancy: { store } } })
    expect((await call(gw.url, 'GET', '/v1/usage', { key: made.keys.only })).status).toBe(200)
    expect(await store.revokeKey(made.ids.only, Date.now())).toBe(true)
    // Past the 5 s for which "are there any keys?" is trusted (and the 2 s a key record is).
    await sleep(5_200)
    const anonymous = await call(gw.url, 'POST', '/v1/text-to-image', { body: { prompt: 'a free lunch' } })
    expect(anonymous.status).toBe(401)
    expect((await call(gw.url, 'GET', '/v1/usage', { key: made.keys.only })).status).toBe(401)
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(0)
  })
})
