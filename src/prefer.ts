/**
 * RFC 7240 `Prefer` as the generation routes read it: `respond-async` answers at once, `wait=N`
 * bounds the wait. Unknown preferences are ignored, as the RFC asks.
 */
export interface Preference {
  respondAsync: boolean
  wait: number | undefined
}

export function parsePrefer (header: string | string[] | undefined): Preference {
  const parts = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((p) => p.trim().toLowerCase()).filter(Boolean)
  const pref: Preference = { respondAsync: false, wait: undefined }
  for (const part of parts) {
    const [name, rawValue] = part.split(';')[0]!.split('=').map((s) => s.trim())
    if (name === 'respond-async') pref.respondAsync = true
    if (name === 'wait' && rawValue !== undefined && /^\d+$/.test(rawValue.replace(/^"|"$/g, ''))) {
      pref.wait = Number(rawValue.replace(/^"|"$/g, ''))
    }
  }
  return pref
}
