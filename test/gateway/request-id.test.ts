import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requestIdFor, traceIdOf } from '../../src/request-id.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

/** The request id is echoed in x-request-id, in every problem's request_id and on every log line: only sane ids pass. */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`

let gw: TestGateway
beforeAll(async () => { gw = await startGateway() })
afterAll(async () => { await gw.close() })

/** A 404 problem, so the id shows in the header, the body and the log of one request. */
async function probe (headers: Record<string, string>): Promise<{ header: string, body: Record<string, unknown>, logged: unknown[] }> {
  const res = await request(`${gw.url}/v1/no-such-route`, { headers })
  const body = await res.body.json() as Record<string, unknown>
  const header = String(res.headers['x-request-id'])
  return { header, body, logged: gw.logs.filter((l) => l.request_id === header).map((l) => l.msg) }
}

describe('x-request-id over HTTP', () => {
  it.each([
    ['300 characters', 'a'.repeat(300)],
    ['JSON with spaces', '{"inject":"x"} with spaces'],
    ['a slash', 'a/b'],
    ['129 characters', 'b'.repeat(129)]
  ])('%s: replaced by a fresh id in the header, the problem and the logs', async (_label, given) => {
    const { header, body, logged } = await probe({ 'x-request-id': given })
    expect(header).toMatch(UUID)
    expect(body.request_id).toBe(header)
    expect(logged).toEqual(['request completed'])
    expect(gw.logs.filter((l) => l.request_id === given)).toEqual([])
  })

  it('keeps a sane id (up to 128 of [A-Za-z0-9._:-])', async () => {
    const given = `Req-1.2:3_${'x'.repeat(118)}`
    expect(given).toHaveLength(128)
    const { header, body, logged } = await probe({ 'x-request-id': given })
    expect(header).toBe(given)
    expect(body.request_id).toBe(given)
    expect(logged).toEqual(['request completed'])
  })

  it('uses the trace id of a W3C traceparent when no id comes', async () => {
    const { header, body, logged } = await probe({ traceparent: TRACEPARENT })
    expect(header).toBe(TRACE_ID)
    expect(body.request_id).toBe(TRACE_ID)
    expect(logged).toEqual(['request completed'])
  })

  it('prefers a sane x-request-id to the traceparent, and the traceparent to an insane one', async () => {
    expect((await probe({ 'x-request-id': 'mine-1', traceparent: TRACEPARENT })).header).toBe('mine-1')
    expect((await probe({ 'x-request-id': 'not mine', traceparent: TRACEPARENT })).header).toBe(TRACE_ID)
  })
})

describe('requestIdFor', () => {
  it('refuses malformed traceparents', () => {
    for (const bad of [
      `ff-${TRACE_ID}-00f067aa0ba902b7-01`, // version ff is invalid
      `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`, // all-zero trace id
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero parent id
      `00-${TRACE_ID.toUpperCase()}-00f067aa0ba902b7-01`,
      `00-${TRACE_ID.slice(1)}-00f067aa0ba902b7-01`,
      'garbage'
    ]) {
      expect(traceIdOf(bad), bad).toBeUndefined()
      expect(requestIdFor({ traceparent: bad }), bad).toMatch(UUID)
    }
    expect(traceIdOf(TRACEPARENT)).toBe(TRACE_ID)
  })

  it('mints a new id when none comes, or a header is repeated', () => {
    expect(requestIdFor({})).toMatch(UUID)
    expect(requestIdFor({ 'x-request-id': ['a', 'b'] as unknown as string })).toMatch(UUID)
  })
})
