/** Parsers for the two request headers that change how a create behaves (REFERENCE §1.1, §2.1). */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000 }

/**
 * `Cancel-After`: `30s`, `5m`, `1h30m45s`, or a bare number of seconds. Returns milliseconds, or
 * undefined when the value is not a duration.
 */
export function parseCancelAfter (value: string): number | undefined {
  const text = value.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000
  const match = /^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(text)
  if (!match || text === '') return undefined
  const [, h, m, s] = match
  return (Number(h ?? 0) * UNIT_MS.h!) + (Number(m ?? 0) * UNIT_MS.m!) + (Number(s ?? 0) * UNIT_MS.s!)
}

export const MIN_CANCEL_AFTER_MS = 5000

export type PreferWait =
  | { kind: 'none' }
  | { kind: 'wait', seconds: number, applied: string }
  | { kind: 'out-of-range', requested: number }

/**
 * `Prefer: wait` or `wait=N` among possibly several comma-separated preferences. N outside 1–60 is
 * reported so the caller can clamp or reject it; anything else unparseable is ignored, as RFC 7240
 * asks of unknown preferences.
 */
export function parsePreferWait (header: string | undefined): PreferWait {
  if (!header) return { kind: 'none' }
  for (const part of header.split(',')) {
    const token = part.trim().split(';')[0]!.trim()
    if (token === 'wait') return { kind: 'wait', seconds: 60, applied: 'wait' }
    const match = /^wait=(\d+)$/.exec(token)
    if (!match) continue
    const seconds = Number(match[1])
    if (seconds >= 1 && seconds <= 60) return { kind: 'wait', seconds, applied: `wait=${seconds}` }
    return { kind: 'out-of-range', requested: seconds }
  }
  return { kind: 'none' }
}

/** Accepts `Bearer <t>` and the older `Token <t>` scheme. */
export function parseAuthorization (header: string | undefined): { present: false } | { present: true, token: string | undefined } {
  if (header === undefined) return { present: false }
  const match = /^(?:Bearer|Token)\s+(\S+)\s*$/i.exec(header.trim())
  return { present: true, token: match?.[1] }
}
