import { ValidationError } from '../errors.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { PredictionCursor, PredictionQuery, StateStore } from '../stores/types.ts'
import { presentEntry } from '../predictions/public.ts'
import type { Tenant } from './tenant.ts'

/**
 * A key's history: its own predictions, newest first, as the store last recorded them, in the same
 * shape as GET /v1/predictions/{id}. Cursors are opaque to callers (base64url of the last item's
 * creation time and id), so the paging stays stable while new predictions arrive.
 */

export interface HistoryQuery {
  limit: number
  cursor?: string | undefined
  status?: string | undefined
  model?: string | undefined
  createdAfter?: string | undefined
  createdBefore?: string | undefined
}

export interface HistoryPage {
  data: PublicPrediction[]
  next_cursor: string | null
}

export function encodeCursor (c: PredictionCursor): string {
  return Buffer.from(`${c.createdAt}.${c.id}`).toString('base64url')
}

export function decodeCursor (cursor: string): PredictionCursor {
  const m = /^(\d{1,15})\.([a-z0-9]{1,64})$/.exec(Buffer.from(cursor, 'base64url').toString())
  if (!m) throw new ValidationError([{ field: 'query.cursor', message: 'is not a cursor this API gave out (use next_cursor as it is)' }])
  return { createdAt: Number(m[1]), id: m[2]! }
}

export async function listHistory (store: StateStore, tenant: Tenant, q: HistoryQuery, baseUrl: string): Promise<HistoryPage> {
  const query: PredictionQuery = {
    limit: q.limit,
    cursor: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
    status: q.status,
    model: q.model,
    createdAfter: q.createdAfter === undefined ? undefined : Date.parse(q.createdAfter),
    createdBefore: q.createdBefore === undefined ? undefined : Date.parse(q.createdBefore)
  }
  // Never another key's: the owner is the caller, whatever the query says (anonymous sees the anonymous ones).
  const page = await store.listPredictions(tenant.id, query)
  return { data: page.entries.map((e) => presentEntry(e, baseUrl)), next_cursor: page.next ? encodeCursor(page.next) : null }
}
