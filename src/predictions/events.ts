import type { PublicPrediction } from '../schemas/common.ts'
import type { PredictionEntry } from '../stores/types.ts'

/**
 * A prediction's progress as server-sent events, derived from its stored state rather than from a log of
 * messages: any instance can serve any stream, and a reconnect resumes from the store.
 *
 * Each change the tracker writes has a `seq`. The events a change gives, in order: `status` (the status moved, or
 * the stream just began), `output` (the images became available, or changed: Replicate's files first, then our kept
 * copies), `completed` (final; the stream then ends).
 * An event's id is `<seq>-<n>` with n = 1, 2, 3 for those kinds, so ids only grow and `Last-Event-ID` says
 * exactly what the client has: a resume sends only what comes after it.
 */
export type PredictionEventName = 'status' | 'output' | 'completed'

export interface PredictionEvent {
  id: string
  event: PredictionEventName
  data: unknown
}

const ORDER: Record<PredictionEventName, number> = { status: 1, output: 2, completed: 3 }

export interface Position {
  seq: number
  n: number
  /** The last status and which output was sent, as far as this stream knows. */
  status?: string
  output?: string
}

/** `Last-Event-ID` as a position; anything unreadable starts from the beginning. */
export function parseLastEventId (value: string | undefined): Position {
  const match = /^(\d{1,15})-([123])$/.exec(value?.trim() ?? '')
  if (!match) return { seq: -1, n: 3 }
  // Events of that change up to n are the client's; later changes are judged on their own.
  return { seq: Number(match[1]), n: Number(match[2]) }
}

/**
 * The events an entry gives after `from`, and the position after them. `present` turns the entry into what the
 * caller sees (our image URLs, signed).
 */
export function eventsSince (entry: PredictionEntry, from: Position, present: (entry: PredictionEntry) => PublicPrediction): { events: PredictionEvent[], at: Position } {
  const seq = entry.seq ?? 0
  if (seq < from.seq) return { events: [], at: from }
  const pub = present(entry)
  const events: PredictionEvent[] = []
  const add = (event: PredictionEventName, data: unknown): void => {
    if (seq === from.seq && ORDER[event] <= from.n) return
    events.push({ id: `${seq}-${ORDER[event]}`, event, data })
  }
  const resumedInThisChange = seq === from.seq
  // A new stream always opens with the status; later, a status event means the status moved.
  if (from.seq < 0 || (!resumedInThisChange && from.status !== pub.status)) add('status', pub)
  // Which images: signed URLs differ at every signing, so the kind and count name them.
  const output = pub.output !== null && pub.output.length > 0 ? `${entry.kept.length > 0 && entry.finalized ? 'kept' : 'upstream'}:${pub.output.length}` : undefined
  if (output !== undefined && output !== from.output) add('output', { id: pub.id, output: pub.output })
  if (entry.finalized) add('completed', pub)
  const last = events.at(-1)
  const at: Position = last
    ? { seq, n: ORDER[last.event], status: pub.status, ...(output !== undefined ? { output } : {}) }
    : { ...from, status: from.status ?? pub.status }
  return { events, at }
}

export function formatEvent (e: PredictionEvent): string {
  return `id: ${e.id}\nevent: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`
}
