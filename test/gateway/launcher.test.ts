import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeServiceBus } from '../fakes/service-bus/broker.ts'

/**
 * The server stops with whatever launched it. `npm start` is what supervisors, CI scripts and IDEs run and signal:
 * a SIGTERM to npm must reach the server (graceful shutdown), and a launcher that dies without passing anything on
 * (SIGKILL) must not leave the server serving on its own, reparented to init.
 */

const ROOT = path.join(import.meta.dirname, '..', '..')
const started: number[] = []
const dirs: string[] = []

afterEach(() => {
  // Whatever a failed run left behind: only the processes this file started.
  for (const pid of started.splice(0)) { try { process.kill(pid, 'SIGKILL') } catch { /* gone */ } }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** Running and not a zombie: an orphan reaped late by init counts as gone. */
function alive (pid: number): boolean {
  try { process.kill(pid, 0) } catch { return false }
  try { return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')) } catch { return false }
}

function accepts (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
  })
}

async function within (ms: number, check: () => Promise<boolean> | boolean): Promise<boolean> {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

interface Launched { npm: ChildProcess, serverPid: number, port: number, logs: string[], npmExited: Promise<void> }

/** `npm start` (or another script) as a user runs it, on its in-process emulator, with its state in a temporary directory. */
async function npmStart (script: 'start' | 'worker' = 'start', extraEnv: Record<string, string> = {}): Promise<Launched> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fgw-launcher-'))
  dirs.push(dir)
  const npm = spawn('npm', script === 'start' ? ['start'] : ['run', script], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      REPLICATE_API_TOKEN: '',
      STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'),
      IMAGE_STORAGE_DIR: path.join(dir, 'images'),
      SHUTDOWN_DRAIN_DELAY_MS: '0',
      SHUTDOWN_GRACE_MS: '2000',
      ...extraEnv
    },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  started.push(npm.pid!)
  const logs: string[] = []
  const npmExited = new Promise<void>((resolve) => npm.once('exit', () => resolve()))
  const { serverPid, port } = await new Promise<{ serverPid: number, port: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm ${script} did not come up:\n${logs.join('\n')}`)), 20_000)
    let buffer = ''
    npm.stdout!.on('data', (chunk: Buffer) => {
      buffer += String(chunk)
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        logs.push(line)
        const m = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line)
        if (m) {
          clearTimeout(timer)
          const pid = (JSON.parse(line) as { pid: number }).pid
          started.push(pid)
          resolve({ serverPid: pid, port: Number(m[1]) })
        }
      }
    })
    npm.stderr!.on('data', (chunk: Buffer) => { logs.push(String(chunk)) })
    npm.once('exit', (code) => { clearTimeout(timer); reject(new Error(`npm ${script} exited (${code}):\n${logs.join('\n')}`)) })
  })
  return { npm, serverPid, port, logs, npmExited }
}

describe('the server stops with its launcher', () => {
  it('SIGTERM to `npm start` shuts the server down gracefully; nothing keeps serving', async () => {
    const run = await npmStart()
    expect(run.serverPid).not.toBe(run.npm.pid)
    expect(alive(run.serverPid)).toBe(true)
    expect(await accepts(run.port)).toBe(true)

    run.npm.kill('SIGTERM')
    await run.npmExited
    expect(await within(10_000, () => !alive(run.serverPid))).toBe(true)
    expect(await accepts(run.port)).toBe(false)
    // The signal reached the server itself: it drained and closed rather than being cut off.
    expect(run.logs.some((l) => l.includes('"msg":"shutting down"') && l.includes('SIGTERM'))).toBe(true)
  })

  it('when the launcher dies without passing a signal on (SIGKILL), the server notices and exits', async () => {
    const run = await npmStart()
    run.npm.kill('SIGKILL')
    await run.npmExited
    expect(await within(10_000, () => !alive(run.serverPid))).toBe(true)
    expect(await accepts(run.port)).toBe(false)
  })

  it('SIGTERM to `npm run worker` reaches the worker: it closes its receiver link and exits', async () => {
    const bus = await startFakeServiceBus()
    try {
      const run = await npmStart('worker', { WORKER_PORT: '0', SERVICE_BUS_CONNECTION_STRING: bus.connectionString, SERVICE_BUS_QUEUE: 'jobs' })
      expect(run.serverPid).not.toBe(run.npm.pid)
      await bus.waitFor('the receiver link', () => bus.receivers('jobs') === 1)
      run.npm.kill('SIGTERM')
      await run.npmExited
      expect(await within(10_000, () => !alive(run.serverPid))).toBe(true)
      expect(await accepts(run.port)).toBe(false)
      expect(bus.receivers('jobs')).toBe(0)
      expect(run.logs.some((l) => l.includes('"msg":"shutting down"') && l.includes('SIGTERM'))).toBe(true)
    } finally {
      await bus.close()
    }
  })
})

