import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

/** A caller's id is echoed in headers, problem documents and logs, so only plain tokens are kept. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** W3C Trace Context `traceparent`: version-traceid-parentid-flags, lowercase hex. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-|$)/

function single (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value.trim() : undefined
}

/** The trace id of a valid `traceparent`, or undefined (version ff and all-zero ids are invalid by the spec). */
export function traceIdOf (traceparent: string | undefined): string | undefined {
  const m = traceparent === undefined ? null : TRACEPARENT.exec(traceparent)
  if (!m || m[1] === 'ff' || /^0+$/.test(m[2]!) || /^0+$/.test(m[3]!)) return undefined
  return m[2]
}

/**
 * The id of a request: the caller's `x-request-id` when it is at most 128 characters of [A-Za-z0-9._:-], so logs
 * line up across services; else the trace id of a W3C `traceparent`; else a fresh UUID. Anything else a caller
 * sends (too long, spaces, quotes, JSON) is never echoed.
 */
export function requestIdFor (headers: IncomingHttpHeaders): string {
  const given = single(headers['x-request-id'])
  if (given !== undefined && SANE_ID.test(given)) return given
  return traceIdOf(single(headers.traceparent)) ?? randomUUID()
}
