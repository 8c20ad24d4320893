// Following a prediction until it ends: server-sent events when the service has an events route, otherwise
// (or when the stream fails) `GET /v1/predictions/{id}?wait=N` long-polls. Either way each status is reported once.
import { api, authHeaders, storedKey } from './api.js'

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
const EVENTS_PATH = '/v1/predictions/{id}/events'
// Short enough that a move from starting to processing shows soon; each poll is one cheap request.
const POLL_WAIT_SECONDS = 2
// A prediction that has not ended after this many polls is left to the history (about half an hour).
const MAX_POLLS = 900

let eventsRoute

/** Whether the service documents an SSE events route; asked once per page, from its OpenAPI document. */
export async function hasEventsRoute () {
  eventsRoute ??= fetch('/openapi.json', { headers: { accept: 'application/json' } })
    .then((res) => (res.ok ? res.json() : {}))
    .then((doc) => Boolean(doc.paths?.[EVENTS_PATH]?.get))
    .catch(() => false)
  return eventsRoute
}

/**
 * Follows `prediction` until it ends and resolves with its last state. `onUpdate(prediction, via)` is called for
 * the first state and for each change of status; `via` says how the change arrived ('events' or 'long-poll').
 */
export async function follow (prediction, { onUpdate, signal }) {
  let last = prediction
  const report = (next, via) => {
    if (!next || typeof next.status !== 'string') return
    const changed = next.status !== last.status
    last = { ...last, ...next }
    if (changed) onUpdate(last, via)
  }
  onUpdate(last, 'create')
  if (TERMINAL.has(last.status)) return last

  if (await hasEventsRoute()) {
    try {
      await streamEvents(last.id, (next) => report(next, 'events'), signal)
    } catch (err) {
      if (err.name === 'AbortError') throw err
      // A stream that failed is no worse than no stream: the long-poll below takes over.
    }
    if (TERMINAL.has(last.status)) return last
  }

  for (let i = 0; i < MAX_POLLS && !TERMINAL.has(last.status); i++) {
    const res = await api('GET', `/v1/predictions/${encodeURIComponent(last.id)}?wait=${POLL_WAIT_SECONDS}`, { signal })
    report(res.body, 'long-poll')
    // Output URLs are re-signed on every read: keep the freshest even when the status stayed.
    last = { ...last, ...res.body }
  }
  return last
}

/** Reads the events route until a terminal status; rejects when the stream cannot be opened or breaks. */
function streamEvents (id, onPrediction, signal) {
  const url = EVENTS_PATH.replace('{id}', encodeURIComponent(id))
  const handle = (data) => {
    try {
      const parsed = JSON.parse(data)
      onPrediction(parsed.prediction ?? parsed)
      return TERMINAL.has((parsed.prediction ?? parsed).status)
    } catch {
      return false
    }
  }
  // EventSource cannot send an Authorization header: with a key the stream is read through fetch instead.
  return storedKey() ? fetchEvents(url, handle, signal) : eventSourceEvents(url, handle, signal)
}

function eventSourceEvents (url, handle, signal) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(url)
    const done = (fn) => { source.close(); fn() }
    const onMessage = (ev) => { if (handle(ev.data)) done(resolve) }
    for (const name of ['message', 'prediction', 'status', 'output', 'completed', 'done']) source.addEventListener(name, onMessage)
    source.addEventListener('error', () => done(() => reject(new Error('event stream failed'))))
    signal?.addEventListener('abort', () => done(() => reject(new DOMException('aborted', 'AbortError'))), { once: true })
  })
}

async function fetchEvents (url, handle, signal) {
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...authHeaders() }, signal })
  if (!res.ok || !String(res.headers.get('content-type')).startsWith('text/event-stream')) throw new Error(`no event stream (HTTP ${res.status})`)
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let data = []
  for (;;) {
    const { value, done } = await reader.read()
    if (done) throw new Error('event stream ended early')
    buffer += value
    const lines = buffer.split(/\r\n|\r|\n/)
    buffer = lines.pop() ?? ''
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0 && handle(data.join('\n'))) {
          await reader.cancel()
          return
        }
        data = []
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''))
      }
    }
  }
}
