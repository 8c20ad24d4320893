import { createAnsweredAt } from '../helpers/gateway.ts'
import { request } from 'undici'
import { expect } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { RateTake, StateStore } from '../../src/stores/types.ts'
import { createApiKey } from '../../src/tenancy/keys.ts'
import type { NewKeyOptions } from '../../src/tenancy/keys.ts'
import { UPSTREAM_CREATE_BUCKET } from '../../src/tenancy/upstream-shaper.ts'

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function call (base: string, method: 'GET' | 'POST' | 'OPTIONS', path: string, o: { key?: string, body?: unknown, headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...o.headers }
  if (o.key) headers.authorization = `Bearer ${o.key}`
  if (o.body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(base + path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) })
  const text = await res.body.text()
  let body: unknown = text
  try { body = text ? JSON.parse(text) : undefined } catch { /* not JSON */ }
  if (method === 'POST' && res.statusCode === 202 && /\/(text|image)-to-image$/.test(path)) await createAnsweredAt(base, (body as { id: string }).id)
  return { status: res.statusCode, headers: res.headers, body }
}

/** An in-memory store holding the given keys, made before the gateway starts (so auth is on from the first request). */
export async function storeWithKeys<K extends string> (keys: Record<K, NewKeyOptions>, store: StateStore = createSqliteStore({ path: ':memory:' })): Promise<{ store: StateStore, keys: Record<K, string>, ids: Record<K, string> }> {
  const out = {} as Record<K, string>
  const ids = {} as Record<K, string>
  for (const [name, opts] of Object.entries(keys) as [K, NewKeyOptions][]) {
    const created = await createApiKey(store, { name, ...opts })
    out[name] = created.key
    ids[name] = created.record.id
  }
  return { store, keys: out, ids }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface RecordedTake { bucket: string, now: number, take: RateTake }

/**
 * Records every rate decision the store makes, so tests assert on the slots the store granted, which follow from its
 * arithmetic alone, rather than on wall-clock gaps between arrivals, which load stretches or squeezes. `stall` holds
 * the caller up after the nth take of a bucket (counted from 0) for that many ms, as a busy machine would.
 */
export function recordRateTakes (store: StateStore, o: { stall?: (bucket: string, nth: number) => number } = {}): RecordedTake[] {
  const takes: RecordedTake[] = []
  const original = store.rateTake.bind(store)
  store.rateTake = async (bucket, spec, now) => {
    const take = await original(bucket, spec, now)
    const nth = takes.filter((t) => t.bucket === bucket).length
    takes.push({ bucket, now, take })
    const stall = o.stall?.(bucket, nth) ?? 0
    if (stall > 0) await sleep(stall)
    return take
  }
  return takes
}

/** The takes of the upstream create bucket, in the order they were made. */
export const upstreamTakes = (takes: RecordedTake[]): RecordedTake[] => takes.filter((t) => t.bucket === UPSTREAM_CREATE_BUCKET)

/** When each granted upstream create was cleared to go, in order: the moment it asked plus the wait it was given. */
export function upstreamSlots (takes: RecordedTake[]): number[] {
  return upstreamTakes(takes).filter((t) => t.take.allowed).map((t) => t.now + t.take.waitMs).sort((a, b) => a - b)
}

/**
 * The creates that reached Replicate (`arrivals`, its receive times) were cleared by the store at least `intervalMs`
 * apart, one per arrival, and none arrived before its slot. Load can only make an arrival later than its slot.
 */
export function expectShaped (takes: RecordedTake[], arrivals: number[], intervalMs: number): void {
  const slots = upstreamSlots(takes)
  expect(slots).toHaveLength(arrivals.length)
  for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).toBeGreaterThanOrEqual(intervalMs)
  const sorted = [...arrivals].sort((a, b) => a - b)
  // A timer can fire a millisecond before Date.now() says it is due.
  sorted.forEach((t, i) => expect(t).toBeGreaterThanOrEqual(slots[i]! - 2))
}

/** Matches the signed URL of a kept image, whatever its expiry and signature. */
export function signedImageUrl (base: string, id: string, index: number): unknown {
  const escaped = `${base}/v1/predictions/${id}/images/${index}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return expect.stringMatching(new RegExp(`^${escaped}\\?exp=\\d+&sig=[A-Za-z0-9_-]{43}$`))
}
