import { request } from 'undici'

export interface ServerEvent {
  id?: string
  event: string
  data: any // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface EventStream {
  status: number
  headers: Record<string, string | string[] | undefined>
  events: ServerEvent[]
  /** Comment lines (heartbeats), without the leading colon. */
  comments: string[]
  /** The body when the answer was not a stream (a problem document). */
  problem?: Record<string, unknown>
}

/**
 * Reads a text/event-stream until it ends, or until `stop` says so (then the connection is dropped), parsing
 * events as the WHATWG spec frames them: blank-line separated, `field: value` lines, `:` comments.
 */
export async function readEvents (url: string, headers: Record<string, string> = {}, o: { stop?: (events: ServerEvent[], comments: string[]) => boolean, timeoutMs?: number } = {}): Promise<EventStream> {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(new Error('event stream timed out')), o.timeoutMs ?? 20_000)
  try {
    const res = await request(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
    const out: EventStream = { status: res.statusCode, headers: res.headers, events: [], comments: [] }
    if (!String(res.headers['content-type']).startsWith('text/event-stream')) {
      out.problem = await res.body.json() as Record<string, unknown>
      return out
    }
    let buffer = ''
    try {
      for await (const chunk of res.body) {
        buffer += String(chunk)
        let cut: number
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut)
          buffer = buffer.slice(cut + 2)
          const event: Partial<ServerEvent> & { data?: string } = {}
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) { out.comments.push(line.slice(1).trim()); continue }
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'id') event.id = value
            else if (field === 'event') event.event = value
            else if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`
          }
          if (event.data !== undefined) out.events.push({ id: event.id, event: event.event ?? 'message', data: JSON.parse(event.data) })
        }
        if (o.stop?.(out.events, out.comments)) {
          controller.abort(new Error('enough'))
          break
        }
      }
    } catch (err) {
      if (!controller.signal.aborted || (controller.signal.reason as Error)?.message !== 'enough') throw err
    }
    return out
  } finally {
    clearTimeout(timer)
  }
}
