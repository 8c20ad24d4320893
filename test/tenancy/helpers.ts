import { expect } from 'vitest'
import { request } from 'undici'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createApiKey } from '../../src/tenancy/keys.ts'
import type { NewKeyOptions } from '../../src/tenancy/keys.ts'

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

/** Matches the signed URL of a kept image, whatever its expiry and signature. */
export function signedImageUrl (base: string, id: string, index: number): unknown {
  const escaped = `${base}/v1/predictions/${id}/images/${index}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return expect.stringMatching(new RegExp(`^${escaped}\\?exp=\\d+&sig=[A-Za-z0-9_-]{43}$`))
}
