import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'

/** A gateway in its own process (`src/server.ts`, or the worker alone: `src/worker/main.ts`), for restarts and many-instance tests. */
export interface GatewayProcess {
  url: string
  child: ChildProcess
  logs: string[]
  /** SIGKILL: no shutdown hook runs, as after a crash. */
  kill9: () => Promise<void>
  stop: () => Promise<void>
}

const root = path.join(import.meta.dirname, '..', '..')

export async function spawnGateway (env: Record<string, string>, o: { cwd?: string, entry?: 'server' | 'worker' } = {}): Promise<GatewayProcess> {
  const entry = o.entry === 'worker' ? path.join(root, 'src', 'worker', 'main.ts') : path.join(root, 'src', 'server.ts')
  const child = spawn(process.execPath, ['--experimental-strip-types', '--no-warnings', entry], {
    cwd: o.cwd ?? root,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', HOST: '127.0.0.1', PORT: '0', WORKER_PORT: '0', LOG_LEVEL: 'info', READINESS_CACHE_MS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: string[] = []
  let buffer = ''
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${logs.join('\n')}`)), 15_000)
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += String(chunk)
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        logs.push(line)
        const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (m) { clearTimeout(timer); resolve(m[1]!) }
      }
    })
    child.stderr!.on('data', (chunk: Buffer) => { logs.push(String(chunk)) })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`gateway exited (${code}):\n${logs.join('\n')}`)) })
  })
  return {
    url,
    child,
    logs,
    async kill9 () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
    async stop () {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      await exited
    }
  }
}

/** Opens the SQLite state file a gateway process uses, runs `fn` on it, and closes it again. */
export async function withStore<T> (file: string, fn: (store: StateStore) => Promise<T>): Promise<T> {
  const store = createSqliteStore({ path: file })
  try { return await fn(store) } finally { await store.close() }
}

/** Polls `probe` every 50 ms until it gives a value, at most `tries` times (bounded, as every loop in tests is). */
export async function until<T> (probe: () => Promise<T | undefined>, what: string, tries = 600): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const value = await probe()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}`)
}
