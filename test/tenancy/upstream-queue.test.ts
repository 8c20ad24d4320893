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
    create: (prompt: string) => call(g.url, 'POST', '/v1/text-to-image', { key: made.keys.k, body: { prompt, model: 'flux-schnell' }, headers: { prefer: 'respond-async' } }),
    creates: () => g.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')),
    balance: () => s.balance(made.ids.k, { credits: 50, period: 'month' }, Date.now())
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
    expect((await create('takes the only slot')).status).toBe(202)
    const queued = create('waits for the next slot')
    await waiters(gw, 1)

    const refused = await create('finds the queue full')
    expect(refused.status).toBe(503)
    expect(refused.headers['content-type']).toContain('application/problem+json')
    expect(refused.body).toMatchObject({ code: 'upstream_queue_full', status: 503, retry_after: 5 })
    // The longest a queued create can wait, in whole seconds.
    expect(refused.headers['retry-after']).toBe('5')
    expect(creates()).toHaveLength(1)

    expect((await queued).status).toBe(202)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
    expect(creates()).toHaveLength(2)
    expectShaped(takes, creates().map((r) => r.receivedAt), 1000)
    // Only the two accepted creates hold credits (1 each for flux-schnell).
    expect(await balance()).toMatchObject({ reserved_credits: 2, used_credits: 0 })
  })

  it('with REPLICATE_CREATE_QUEUE_SIZE=0 a create with a free slot goes at once; only one that would wait is refused', async () => {
    const { gw, create, creates } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '5000', REPLICATE_CREATE_QUEUE_SIZE: '0' })
    expect((await create('a free slot')).status).toBe(202)
    const refused = await create('would have to wait')
    expect(refused.status).toBe(503)
    expect(refused.body).toMatchObject({ code: 'upstream_queue_full' })
    expect(creates()).toHaveLength(1)
    await sleep(1_050)
    expect((await create('the next free slot')).status).toBe(202)
    expect(creates()).toHaveLength(2)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
  })

  it('a full queue turns away every caller alike, and clears as the waiter leaves', async () => {
    const { gw, takes, create, creates } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '5000', REPLICATE_CREATE_QUEUE_SIZE: '2' })
    const started = Date.now()
    const answers = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => create(`crowd ${i}`)))
    const statuses = answers.map((a) => a.status).sort()
    // One goes now, two wait (one and two seconds), three are turned away.
    expect(statuses).toEqual([202, 202, 202, 503, 503, 503])
    for (const a of answers.filter((x) => x.status === 503)) expect(a.headers['retry-after']).toBe('5')
    expect(creates()).toHaveLength(3)
    const times = creates().map((r) => r.receivedAt)
    expectShaped(takes, times, 1000)
    expect(Math.max(...times) - started).toBeGreaterThanOrEqual(1900)
    expect(gw.app.upstreamShaper.waiting).toBe(0)
  })

  it('a slot further off than REPLICATE_CREATE_QUEUE_MS is refused with 429 after the wait, and a retry after Retry-After is taken', async () => {
    const { gw, takes, create, creates, balance } = await setUp({ REPLICATE_CREATE_QUEUE_MS: '1000', REPLICATE_CREATE_QUEUE_SIZE: '10' })
    expect((await create('first')).status).toBe(202)
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

    expect((await queued).status).toBe(202)
    await sleep(Number(refused.headers['retry-after']) * 1000)
    const retried = await create('third, retried')
    expect(retried.status).toBe(202)

    expect(creates()).toHaveLength(3)
    expectShaped(takes, creates().map((r) => r.receivedAt), 1000)
    expect(await balance()).toMatchObject({ reserved_credits: 3, used_credits: 0 })
  })
})
