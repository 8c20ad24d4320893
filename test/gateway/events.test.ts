import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { readEvents } from '../helpers/sse.ts'
import type { ServerEvent } from '../helpers/sse.ts'

/**
 * GET /v1/predictions/{id}/events. schnell is made to outlast Replicate's sync window (60 s scaled to 1.2 s; the
 * model takes 2 s scaled), so a prediction goes starting → processing (the create's answer) → output and
 * completed (the tracker's reads): every kind of event, from the store, with no upstream request of its own.
 * The files exist 1 s before Replicate says succeeded, so the tracker's 100 ms reads see them early on any machine.
 */
let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway({
    env: { EVENTS_HEARTBEAT_SECONDS: '1', CORS_ORIGINS: 'https://app.example' },
    emulator: { predictSeconds: { 'black-forest-labs/flux-schnell': 100 }, uploadMs: 50_000 },
    overrides: { tenancy: { tracker: { poll: { initialMs: 100, maxIntervalMs: 100 } } } }
  })
})
afterAll(async () => {
  await gw.close()
})

/** An async create, answered at once (the shared test helper would wait for the create to reach Replicate). */
async function createAsync (prompt: string): Promise<string> {
  const res = await request(`${gw.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt, model: 'flux-schnell' }) })
  expect(res.statusCode).toBe(202)
  return (await res.body.json() as { id: string }).id
}

const kinds = (events: ServerEvent[]) => events.map((e) => e.event === 'status' ? `status:${e.data.status as string}` : e.event)
const order = (id: string) => id.split('-').map(Number) as [number, number]
function ascending (events: ServerEvent[]): boolean {
  return events.every((e, i) => {
    if (i === 0) return true
    const [s0, n0] = order(events[i - 1]!.id!)
    const [s1, n1] = order(e.id!)
    return s1 > s0 || (s1 === s0 && n1 > n0)
  })
}

describe('prediction events', () => {
  it('streams status, output and completed in order, then ends; the final prediction matches a read', async () => {
    const id = await createAsync('a lighthouse in events')
    const stream = await readEvents(`${gw.url}/v1/predictions/${id}/events`)
    expect(stream.status).toBe(200)
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    expect(stream.headers['cache-control']).toBe('no-cache, no-transform')
    // The images are there (a read saw Replicate's files) before Replicate says succeeded; at the end, our kept copies.
    expect(kinds(stream.events)).toEqual(['status:starting', 'status:processing', 'output', 'status:succeeded', 'output', 'completed'])
    expect(ascending(stream.events)).toBe(true)
    const read = await gw.call('GET', `/v1/predictions/${id}`)
    const [early, kept] = stream.events.filter((e) => e.event === 'output')
    expect(early!.data).toMatchObject({ id, output: [expect.stringContaining(gw.emulator.origin)] })
    expect(kept!.data).toMatchObject({ id, output: [expect.stringContaining(`${gw.url}/v1/predictions/${id}/images/0?`)] })
    const completed = stream.events.at(-1)!.data
    expect({ ...completed, output: null }).toEqual({ ...read.body, output: null })
    expect(completed.status).toBe('succeeded')
  })

  it('Last-Event-ID resumes without repeats, from any event; after completed there is nothing left', async () => {
    const id = await createAsync('a lighthouse that reconnects')
    const first = await readEvents(`${gw.url}/v1/predictions/${id}/events`, {}, { stop: (events) => events.length >= 1 })
    expect(kinds(first.events)).toEqual(['status:starting'])
    const rest = await readEvents(`${gw.url}/v1/predictions/${id}/events`, { 'last-event-id': first.events[0]!.id! })
    const all = [...first.events, ...rest.events]
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length)
    expect(ascending(all)).toBe(true)
    expect(kinds(rest.events).at(-1)).toBe('completed')
    expect(kinds(rest.events)).not.toContain('status:starting')

    // Resumed after the first `output`: the final change is left (its status, the kept images, completed).
    const output = rest.events.find((e) => e.event === 'output')!
    const afterOutput = await readEvents(`${gw.url}/v1/predictions/${id}/events`, { 'last-event-id': output.id! })
    expect(kinds(afterOutput.events)).toEqual(['status:succeeded', 'output', 'completed'])
    // Resumed after the last `output`: only `completed`.
    const afterKept = await readEvents(`${gw.url}/v1/predictions/${id}/events`, { 'last-event-id': afterOutput.events[1]!.id! })
    expect(kinds(afterKept.events)).toEqual(['completed'])
    // Resumed after `completed`: the stream ends at once, with nothing repeated.
    const done = await readEvents(`${gw.url}/v1/predictions/${id}/events`, { 'last-event-id': rest.events.at(-1)!.id! })
    expect(done.events).toEqual([])
  })

  it('a finished prediction streams its final state at once', async () => {
    const id = await createAsync('a lighthouse already done')
    await gw.call('GET', `/v1/predictions/${id}?wait=20`)
    const stream = await readEvents(`${gw.url}/v1/predictions/${id}/events`)
    expect(kinds(stream.events)).toEqual(['status:succeeded', 'output', 'completed'])
  })

  it('sends a comment heartbeat while nothing happens', async () => {
    const id = await createAsync('a slow lighthouse with a heartbeat')
    const stream = await readEvents(`${gw.url}/v1/predictions/${id}/events`)
    // The prediction takes about 2 s; EVENTS_HEARTBEAT_SECONDS is 1 here.
    expect(stream.comments).toContain('heartbeat')
  })

  it('streams add no upstream request: five watchers, one create and the tracker\'s own reads', async () => {
    gw.emulator.reset()
    const id = await createAsync('a lighthouse with five watchers')
    const streams = await Promise.all(Array.from({ length: 5 }, () => readEvents(`${gw.url}/v1/predictions/${id}/events`)))
    for (const s of streams) expect(kinds(s.events).at(-1)).toBe('completed')
    const upstream = await gw.upstreamId(id)
    const calls = gw.emulator.requests.filter((r) => !r.path.startsWith('/delivery/'))
    expect(calls.filter((r) => r.method === 'POST')).toHaveLength(1)
    // The reads are the tracker's (the create answered before the end): about 1.8 s at its 100 ms cadence, whatever the watchers.
    const reads = calls.filter((r) => r.method === 'GET')
    expect(reads.every((r) => r.path === `/v1/predictions/${upstream}`)).toBe(true)
    expect(reads.length).toBeLessThanOrEqual(25)
  })

  it('unknown predictions are 404 problems; a browser origin in CORS_ORIGINS may read the stream', async () => {
    const missing = await readEvents(`${gw.url}/v1/predictions/zzzzzzzzzzzzzzzzzzzzzzzzzz/events`)
    expect(missing.status).toBe(404)
    expect(missing.problem).toMatchObject({ code: 'not_found' })
    const id = await createAsync('a lighthouse seen from a browser')
    const stream = await readEvents(`${gw.url}/v1/predictions/${id}/events`, { origin: 'https://app.example' })
    expect(stream.headers['access-control-allow-origin']).toBe('https://app.example')
    expect(kinds(stream.events).at(-1)).toBe('completed')
  })
})
