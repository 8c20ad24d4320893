import { readFile, stat } from 'node:fs/promises'
import type { TokenProvider } from '../config.ts'

/** Where a secret lives. The token vault caches what `read` returns; a source never caches. */
export interface SecretSource {
  readonly kind: TokenProvider
  /** Where the secret is, for logs and readiness. Never the value. */
  readonly location: string
  /** Whether reading again can bring a different value (a file, a vault); the environment cannot change. */
  readonly rotatable: boolean
  read: (opts: { signal: AbortSignal }) => Promise<string>
  /** A cheap check that the secret changed since the last read (a file's inode, size and mtime). */
  changed?: () => Promise<boolean>
}

/** Thrown when a source holds an empty value: an empty token is a misconfiguration, never a token. */
export class EmptySecretError extends Error {
  constructor (location: string) {
    super(`the secret at ${location} is empty`)
    this.name = 'EmptySecretError'
  }
}

export function envSecretSource (token: string, variable = 'REPLICATE_API_TOKEN'): SecretSource {
  return { kind: 'env', location: variable, rotatable: false, read: async () => token }
}

/**
 * A mounted secret (Kubernetes, Docker, Container Apps). Changes are noticed by stat, which follows the symlink
 * that Kubernetes swaps atomically, so a rotated secret is picked up on the next call without a restart.
 */
export function fileSecretSource (path: string): SecretSource {
  let lastSignature: string | undefined

  async function signature (): Promise<string | undefined> {
    try {
      const s = await stat(path, { bigint: true })
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`
    } catch {
      // Missing for a moment while the mount is swapped: not a change worth acting on.
      return undefined
    }
  }

  return {
    kind: 'file',
    location: path,
    rotatable: true,
    async read ({ signal }) {
      // Taken before reading, so a write during the read shows up as a change next time.
      const before = await signature()
      const text = await readFile(path, { encoding: 'utf8', signal })
      lastSignature = before
      return text
    },
    async changed () {
      const current = await signature()
      return current !== undefined && current !== lastSignature
    }
  }
}
