import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { spawnGateway } from './helpers/process.ts'
import type { GatewayProcess } from './helpers/process.ts'

/** `.env` in the working directory is read by the server and by `npm run keys`; the environment wins. */

const root = path.join(import.meta.dirname, '..')
let dir: string
let gateway: GatewayProcess | undefined

beforeEach(() => { dir = mkdtempSync(path.join(tmpdir(), 'fgw-envfile-')) })
afterEach(async () => {
  await gateway?.stop()
  gateway = undefined
  rmSync(dir, { recursive: true, force: true })
})

function keys (env: Record<string, string>, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--experimental-strip-types', '--no-warnings', path.join(root, 'scripts', 'keys.ts'), ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', ...env },
      timeout: 15_000
    }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

describe('.env', () => {
  it('the server reads it from its working directory, and a variable set in the environment wins', async () => {
    writeFileSync(path.join(dir, '.env'), '# settings\nDEFAULT_PLAN=basic\nSYNC_WAIT_SECONDS=7\n')
    gateway = await spawnGateway({
      NODE_ENV: 'development',
      SYNC_WAIT_SECONDS: '12',
      STATE_SQLITE_PATH: ':memory:',
      IMAGE_STORAGE_DIR: path.join(dir, 'images')
    }, { cwd: dir })
    const health = await (await fetch(`${gateway.url}/health`)).json() as Record<string, unknown>
    expect(health).toMatchObject({ default_plan: 'basic', sync_wait_seconds: 12 })
    expect(gateway.logs.some((l) => l.includes('settings read from .env'))).toBe(true)
  })

  it('the server starts without one', async () => {
    gateway = await spawnGateway({ NODE_ENV: 'development', STATE_SQLITE_PATH: ':memory:', IMAGE_STORAGE_DIR: path.join(dir, 'images') }, { cwd: dir })
    const health = await (await fetch(`${gateway.url}/health`)).json() as Record<string, unknown>
    expect(health).toMatchObject({ default_plan: 'free', sync_wait_seconds: 60 })
    expect(gateway.logs.some((l) => l.includes('settings read from .env'))).toBe(false)
  })

  it('npm run keys reads it too, and the environment wins', async () => {
    const fromFile = path.join(dir, 'from-file.sqlite')
    const fromEnv = path.join(dir, 'from-env.sqlite')
    writeFileSync(path.join(dir, '.env'), `STATE_SQLITE_PATH=${fromFile}\n`)
    const created = await keys({ NODE_ENV: 'development' }, 'create', '--plan', 'free')
    expect(created.code, created.stderr).toBe(0)
    expect(existsSync(fromFile)).toBe(true)
    const listed = await keys({ NODE_ENV: 'development', STATE_SQLITE_PATH: fromEnv }, 'list')
    expect(listed.stdout).toContain('no keys')
    expect(existsSync(fromEnv)).toBe(true)
  })

  it('is never read under NODE_ENV=test, so a developer\'s .env cannot reach a test', async () => {
    const fromFile = path.join(dir, 'from-file.sqlite')
    writeFileSync(path.join(dir, '.env'), `STATE_SQLITE_PATH=${fromFile}\n`)
    const listed = await keys({ NODE_ENV: 'test', STATE_SQLITE_PATH: path.join(dir, 'test.sqlite') }, 'list')
    expect(listed.code).toBe(0)
    expect(existsSync(fromFile)).toBe(false)
  })
})
