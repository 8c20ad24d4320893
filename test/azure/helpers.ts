import type { SecretSource } from '../../src/vault/sources.ts'

/** A clock the test moves by hand. */
export function manualClock (start = Date.now()): { now: () => number, advance: (ms: number) => void } {
  let t = start
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** A log that keeps every call, so tests can assert what was (and was not) written. */
export function recordingLog (): { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void, error: (obj: object, msg: string) => void, lines: Array<{ level: string, msg: string, obj: object }>, text: () => string } {
  const lines: Array<{ level: string, msg: string, obj: object }> = []
  const at = (level: string) => (obj: object, msg: string) => { lines.push({ level, msg, obj }) }
  return { info: at('info'), warn: at('warn'), error: at('error'), lines, text: () => JSON.stringify(lines) }
}

/**
 * A secret source driven by the test: `value` is what a read returns, `failWith` makes reads fail, `hold` keeps
 * them pending until `release()`. Every read is counted.
 */
export function scriptedSource (value: string, kind: SecretSource['kind'] = 'azure-key-vault'): SecretSource & {
  value: string
  failWith: Error | undefined
  reads: number
  hold: () => void
  release: () => void
} {
  let gate: { promise: Promise<void>, resolve: () => void } | undefined
  const source = {
    kind,
    location: 'https://flux-test.vault.azure.net secret replicate-api-token',
    rotatable: kind !== 'env',
    value,
    failWith: undefined as Error | undefined,
    reads: 0,
    async read ({ signal }: { signal: AbortSignal }) {
      source.reads++
      if (gate) {
        const pending = gate.promise
        await new Promise<void>((resolve, reject) => {
          pending.then(resolve, reject)
          signal.addEventListener('abort', () => reject(signal.reason), { once: true })
        })
      }
      if (source.failWith) throw source.failWith
      return source.value
    },
    hold () {
      let resolve!: () => void
      const promise = new Promise<void>((r) => { resolve = r })
      gate = { promise, resolve }
    },
    release () {
      gate?.resolve()
      gate = undefined
    }
  }
  return source
}
