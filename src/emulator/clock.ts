/**
 * Emulated time. Every duration the emulator models (queueing, predict time, deadlines, sync
 * waits, delivery TTL, webhook backoff) goes through `after`, which applies the time scale, so a
 * test can run the whole lifecycle at 1/100 speed. All timers can be dropped at once on reset.
 */
export interface Clock {
  readonly timeScale: number
  /** Wall-clock epoch milliseconds with sub-millisecond precision. */
  now(): number
  /** Real milliseconds that `emulatedMs` takes at this time scale. */
  scaled(emulatedMs: number): number
  /** Runs `fn` after `emulatedMs` (scaled); returns a canceller. */
  after(emulatedMs: number, fn: () => void): () => void
  /** Drops every pending timer. */
  clear(): void
}

export function createClock (timeScale: number): Clock {
  const pending = new Set<NodeJS.Timeout>()
  return {
    timeScale,
    now: () => performance.timeOrigin + performance.now(),
    scaled: (emulatedMs) => Math.max(0, emulatedMs * timeScale),
    after (emulatedMs, fn) {
      const handle = setTimeout(() => {
        pending.delete(handle)
        fn()
      }, Math.max(0, emulatedMs * timeScale))
      // An emulator left open must not keep a test runner or CLI alive on its own.
      handle.unref()
      pending.add(handle)
      return () => {
        clearTimeout(handle)
        pending.delete(handle)
      }
    },
    clear () {
      for (const handle of pending) clearTimeout(handle)
      pending.clear()
    }
  }
}

/** ISO-8601 UTC with 3, 6 or 9 fractional digits; Replicate has sent all three (REFERENCE §1.0). */
export function formatTimestamp (epochMs: number, precision: 'ms' | 'us' | 'ns' = 'ms'): string {
  const whole = Math.floor(epochMs)
  const iso = new Date(whole).toISOString()
  if (precision === 'ms') return iso
  const fraction = epochMs - whole
  const extra = precision === 'us'
    ? String(Math.floor(fraction * 1e3)).padStart(3, '0')
    : String(Math.floor(fraction * 1e6)).padStart(6, '0')
  return `${iso.slice(0, -1)}${extra}Z`
}
