import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, expectShaped, recordRateTakes, sleep, storeWithKeys } from './helpers.ts'

let gw: TestGateway | undefined
let store: StateStore | undefined
afterEach(async () => {
  await gw?.close()
  await store?.close()
  gw = undefined
  store = undefined
})

// One create a second, no burst beyond one: every wait and refusal below follows from this.
const ONE_PER_SECOND = { REPLICATE_CREATE_RATE: '60', REPLICATE_CREATE_BURST: '1' }

async function setUp (env: Record<string, string>) {
  const made = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 50 } })
  store = made.store
  gw = await startGateway({ env: { ...ONE_PER_SECOND, ...env }, overrides: { tenancy: { store } } })
  const g = gw
  const s = store
  const takes = recordRateTakes(s)
  return {
    gw: g,
    store: s,
    takes,
    // Sync creates: they take their slot in the request, and hear "later" at once when none is near.
    create: (prompt: string) => call(g.url, 'POST', '/v1/text-to-image', { key: made.keys.k, body: { prompt, model: 'flux-schnell' } }),
    // Async creates, answered without waiting for the upstream create (the shared helper waits for it).
    createAsync: async (prompt: string) => {
      const res = await request(`${g.url}/v1/text-to-image`, { method: 'POST', headers: { authorization: `Bearer ${made.keys.k}`, 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt, model: 'flux-schnell' }) })
      return { status: res.statusCode, body: await res.body.json() as Record<string, unknown> }
    },
    creates: () => g.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')),
    balance: () => s.balance(made.ids.k, { credits: 50, period: 'month' }, Date.now()),
    key: made.keys.k
  }
}

/** Until this instance has `n` creates waiting for a slot (so the next request meets a known queue). */
async function waiters (g: TestGateway, n: number): Promise<void> {
  for (let i = 0; i < 1000 && g.app.upstreamShaper.waiting !== n; i++) await sleep(5)
  expect(g.app.upstreamShaper.waiting).toBe(n)
}

describe('upstream create shaping past the queue', () => {
  it('beyond REPLICATE_CREATE_QUEUE_SIZE waiters a create is refused with 503 upstream_queue_full and Retry-After, never sent', async () => {
    const { gw, takes, create, creates, balance } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '5000', REPLICATE_CREATE_QUEUE_SIZE: '1' })
    expect((await create('takes the only slot')).status).toBe(200)
    const queued = create('waits for the next slot')
    await waiters(gw, 1)

    const refused = await create('finds the queue full')
    expect(refused.status).toBe(503)
    expect(refused.headers['content-type']).toContain('application/problem+json')
    expect(refused.body).toMatchObject({ code: 'upstream_queue_full', status: 503, retry_after: 5 })
    // The longest a queued create can wait, in whole seconds.
    expect(refused.headers['retry-after']).toBe('5')
    expect(creates()).toHaveLength(1)

    expect((await queued).status).toBe(200)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
    expect(creates()).toHaveLength(2)
    expectShaped(takes, creates().map((r) => r.receivedAt), 1000)
    // Only the two accepted creates were charged (1 each for flux-schnell).
    expect(await balance()).toMatchObject({ reserved_credits: 0, used_credits: 2 })
  })

  it('with REPLICATE_CREATE_QUEUE_SIZE=0 a create with a free slot goes at once; only one that would wait is refused', async () => {
    const { gw, create, creates } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '5000', REPLICATE_CREATE_QUEUE_SIZE: '0' })
    expect((await create('a free slot')).status).toBe(200)
    const refused = await create('would have to wait')
    expect(refused.status).toBe(503)
    expect(refused.body).toMatchObject({ code: 'upstream_queue_full' })
    expect(creates()).toHaveLength(1)
    await sleep(1_050)
    expect((await create('the next free slot')).status).toBe(200)
    expect(creates()).toHaveLength(2)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
  })

  it('a full queue turns away every caller alike, and clears as the waiter leaves', async () => {
    const { gw, takes, create, creates } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '5000', REPLICATE_CREATE_QUEUE_SIZE: '2' })
    const started = Date.now()
    const answers = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => create(`crowd ${i}`)))
    const statuses = answers.map((a) => a.status).sort()
    // One goes now, two wait (one and two seconds), three are turned away.
    expect(statuses).toEqual([200, 200, 200, 503, 503, 503])
    for (const a of answers.filter((x) => x.status === 503)) expect(a.headers['retry-after']).toBe('5')
    expect(creates()).toHaveLength(3)
    const times = creates().map((r) => r.receivedAt)
    expectShaped(takes, times, 1000)
    expect(Math.max(...times) - started).toBeGreaterThanOrEqual(1900)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
  })

  it('a slot further off than REPLICATE_CREATE_QUEUE_MS is refused with 429 after the wait, and a retry after Retry-After is taken', async () => {
    const { gw, takes, create, creates, balance } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '1000', REPLICATE_CREATE_QUEUE_SIZE: '10' })
    expect((await create('first')).status).toBe(200)
    // Its slot is one second off: within the wait, so it queues.
    const queued = create('second, queued')
    await waiters(gw, 1)

    // Its slot would be two seconds off, a second past the wait.
    const refused = await create('third, too far off')
    expect(refused.status).toBe(429)
    expect(refused.body).toMatchObject({ code: 'upstream_rate_limited', retry_after: 1 })
    expect(refused.headers['retry-after']).toBe('1')
    expect(gw.app.upstreamShaper.waiting).toBe(1)
    expect(creates()).toHaveLength(1)

    expect((await queued).status).toBe(200)
    await sleep(Number(refused.headers['retry-after']) * 1000)
    const retried = await create('third, retried')
    expect(retried.status).toBe(200)

    expect(creates()).toHaveLength(3)
    expectShaped(takes, creates().map((r) => r.receivedAt), 1000)
    expect(await balance()).toMatchObject({ reserved_credits: 0, used_credits: 3 })
  })

  it('async creates past the rate are accepted and wait in the queue, sent one slot apart; a full queue is 503 before anything is held', async () => {
    const { gw, takes, createAsync, creates, balance, key } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '0', REPLICATE_CREATE_QUEUE_SIZE: '2' })
    const answers = []
    for (const i of [0, 1, 2]) answers.push(await createAsync(`promised ${i}`))
    // The first went at once; two wait for their slots in the durable queue, though the sync wait allows none.
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202])
    expect(gw.app.tracker.queued()).toBe(2)
    const refused = await createAsync('one too many')
    expect(refused.status).toBe(503)
    expect(refused.body).toMatchObject({ code: 'upstream_queue_full' })
    for (const a of answers) expect((await call(gw.url, 'GET', `/v1/predictions/${String(a.body.id)}?wait=10`, { key })).body.status).toBe('succeeded')
    expect(creates()).toHaveLength(3)
    expectShaped(takes, creates().map((r) => r.receivedAt), 1000)
    expect(await balance()).toMatchObject({ reserved_credits: 0, used_credits: 3 })
  })
})
