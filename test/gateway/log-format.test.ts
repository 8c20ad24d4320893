import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

const root = path.resolve(import.meta.dirname, '../..')
const dir = mkdtempSync(path.join(tmpdir(), 'fgw-log-format-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
// util-linux's script(1) gives the server a terminal for stdout, as a person running `npm start` has.
const hasScript = spawnSync('script', ['--version']).status === 0

/** Runs the server until it says it listens (or 20 s pass), and returns what it printed. */
function runServer (env: Record<string, string>, tty: boolean): Promise<string> {
  const command = [process.execPath, '--experimental-strip-types', 'src/server.ts']
  const child = tty
    ? spawn('script', ['-qfec', command.join(' '), '/dev/null'], { cwd: root, env: { ...process.env, ...env } })
    : spawn(command[0]!, command.slice(1), { cwd: root, env: { ...process.env, ...env } })
  return new Promise((resolve) => {
    let out = ''
    const done = (): void => {
      clearTimeout(timer)
      child.kill('SIGTERM')
      resolve(out)
    }
    const timer = setTimeout(done, 20_000)
    child.stdout.on('data', (d) => {
      out += String(d)
      if (out.includes('Server listening')) done()
    })
  })
}

const baseEnv = (name: string): Record<string, string> => ({
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'info',
  STATE_SQLITE_PATH: path.join(dir, `${name}.sqlite`),
  IMAGE_STORAGE_DIR: path.join(dir, `${name}-images`),
  NODE_ENV: 'development'
})

describe('the server log format', () => {
  it('is JSON lines when stdout is not a terminal', async () => {
    const out = await runServer(baseEnv('pipe'), false)
    const lines = out.trim().split('\n')
    expect(lines.length).toBeGreaterThan(1)
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow()
    expect(lines.map((l) => JSON.parse(l).msg)).toContain('state store ready')
  }, 30_000)

  it.skipIf(!hasScript)('is readable lines on a terminal outside production', async () => {
    const out = await runServer(baseEnv('tty'), true)
    // eslint-disable-next-line no-control-regex
    const plain = out.replace(/\u001b\[[0-9;]*m/g, '')
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: state store ready/m)
    expect(plain).toMatch(/INFO: Server listening at http:\/\/127\.0\.0\.1:\d+/)
    expect(plain.split('\n').some((l) => l.trim().startsWith('{"level"'))).toBe(false)
  }, 30_000)
})
