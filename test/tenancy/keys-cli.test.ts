import { execFile } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashSecret, parseKey } from '../../src/tenancy/keys.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { webhookSecrets } from '../../src/webhooks/secrets.ts'
import { startGateway } from '../helpers/gateway.ts'
import { call } from './helpers.ts'

const root = path.join(import.meta.dirname, '..', '..')
let dir: string
let db: string

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-keys-'))
  db = path.join(dir, 'state.sqlite')
})
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

interface Run { code: number, stdout: string, stderr: string }

/** `npm run keys -- <args>` as its own process, on the test's SQLite file and nothing else from the environment. */
function keys (...args: string[]): Promise<Run> {
  return keysWith({}, ...args)
}

function keysWith (env: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--experimental-strip-types', '--no-warnings', 'scripts/keys.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', STATE_SQLITE_PATH: db, ...env },
      timeout: 15_000
    }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0
      resolve({ code, stdout: String(stdout), stderr: String(stderr) })
    })
  })
}

/** Every byte SQLite keeps for the store: the file and any WAL or shared-memory file beside it. */
function storeBytes (): string {
  return readdirSync(dir).filter((f) => f.startsWith('state.sqlite')).map((f) => readFileSync(path.join(dir, f)).toString('latin1')).join('')
}

function createdKey (run: Run): { key: string, id: string, secret: string } {
  const lines = run.stdout.trim().split('\n')
  const key = lines.at(-1)!
  const parsed = parseKey(key)
  if (!parsed) throw new Error(`no key in ${JSON.stringify(run.stdout)}`)
  return { key, ...parsed }
}

describe('npm run keys', () => {
  let first: { key: string, id: string, secret: string }
  let second: { key: string, id: string, secret: string }

  it('create prints the key once, and the store keeps only a hash of its secret', async () => {
    const run = await keys('create', '--plan', 'basic', '--budget', '500', '--rate', '60', '--name', 'team a')
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
    first = createdKey(run)
    expect(run.stdout).toContain(`created key ${first.id} (plan basic, budget 500 per month, rate 60/min)`)
    expect(run.stdout.split(first.key)).toHaveLength(2)

    const bytes = storeBytes()
    expect(bytes).toContain(first.id)
    expect(bytes).toContain(hashSecret(first.secret))
    expect(bytes).not.toContain(first.secret)
    expect(bytes).not.toContain(first.key)

    second = createdKey(await keys('create', '--plan', 'premium', '--period', 'total', '--budget', '20'))
    expect(second.id).not.toBe(first.id)
  })

  it('list shows each key by id with its settings, and no secret', async () => {
    const run = await keys('list')
    expect(run.code).toBe(0)
    const lines = run.stdout.trim().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines.find((l) => l.startsWith(first.id))).toMatch(/ {2}active {2}plan=basic {2}budget=500\/month {2}rate=60 {2}created=\S+Z {2}name="team a"$/)
    expect(lines.find((l) => l.startsWith(second.id))).toMatch(/ {2}active {2}plan=premium {2}budget=20\/total {2}rate=unlimited /)
    for (const k of [first, second]) {
      expect(run.stdout).not.toContain(k.secret)
      expect(run.stdout).not.toContain(hashSecret(k.secret))
    }
  })

  it('a revoked key gets 401 from a gateway on the same store; the other key still works', async () => {
    const gw = await startGateway({ env: { STATE_SQLITE_PATH: db } })
    try {
      expect((await call(gw.url, 'GET', '/v1/usage', { key: first.key })).status).toBe(200)
      expect((await call(gw.url, 'GET', '/v1/usage')).status).toBe(401)

      const run = await keys('revoke', first.id)
      expect(run).toMatchObject({ code: 0, stdout: `revoked ${first.id}\n` })

      // Another process revoked it: the gateway sees it once its cached record expires, within the 5 s promised.
      await expect.poll(async () => (await call(gw.url, 'GET', '/v1/usage', { key: first.key })).status, { timeout: 5_000, interval: 250 }).toBe(401)
      const refused = await call(gw.url, 'GET', '/v1/usage', { key: first.key })
      expect(refused.status).toBe(401)
      expect(refused.body).toMatchObject({ code: 'unauthorized' })
      expect(refused.headers['www-authenticate']).toContain('error="invalid_token"')
      expect((await call(gw.url, 'GET', '/v1/usage', { key: second.key })).status).toBe(200)
    } finally {
      await gw.close()
    }
    expect((await keys('list')).stdout).toMatch(new RegExp(`^${first.id} {2}revoked \\d{4}-`, 'm'))
    const again = await keys('revoke', first.id)
    expect(again.code).toBe(1)
    expect(again.stderr).toContain(`no active key ${first.id}`)
  })

  it.each([[['--help']], [['-h']], [['help']], [['create', '--help']]])('%j prints the commands and options, and touches nothing', async (args) => {
    // A broken setting proves help needs neither the configuration nor the store.
    const run = await keysWith({ LOG_LEVEL: 'loud' }, ...args)
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
    expect(run.stdout).toMatch(/^usage: npm run keys -- <command> \[options\]$/m)
    for (const word of ['create --plan PLAN', 'list', 'revoke <id>', '--budget N', '--period P', '--rate N', '--name TEXT', 'pro is another name for premium']) {
      expect(run.stdout).toContain(word)
    }
  })

  describe('bad arguments', () => {
    let before: string
    beforeAll(async () => { before = (await keys('list')).stdout })

    it.each([
      [['create'], /--plan is required/],
      [['create', '--plan', 'gold'], /plan "gold"/i],
      [['create', '--plan', 'basic', '--budget', 'lots'], /--budget must be a positive integer, got "lots"/],
      [['create', '--plan', 'basic', '--budget', '0'], /--budget must be a positive integer, got "0"/],
      [['create', '--plan', 'basic', '--rate', '1.5'], /--rate must be a positive integer, got "1.5"/],
      [['create', '--plan', 'basic', '--period', 'year'], /--period must be month or total/],
      [['create', '--plan', 'basic', '--colour', 'red'], /--colour.*see `npm run keys -- --help`/s],
      [['revoke'], /revoke needs a key id/],
      [['rotate'], /usage: npm run keys -- create --plan/],
      [[], /usage: npm run keys/]
    ])('%j exits non-zero, naming what is wrong', async (args, message) => {
      const run = await keys(...args)
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(message)
      expect(run.stdout).toBe('')
    })

    it('none of them created or changed a key', async () => {
      expect((await keys('list')).stdout).toBe(before)
    })
  })

  it('a bad setting stops it before the store is touched, naming the variable, with the configuration exit code', async () => {
    const before = (await keys('list')).stdout
    const run = await keysWith({ LOG_LEVEL: 'loud' }, 'create', '--plan', 'basic')
    expect(run.code).toBe(78)
    expect(run.stderr).toContain('LOG_LEVEL')
    expect(run.stdout).toBe('')
    expect((await keys('list')).stdout).toBe(before)
  })

  it('works in production without a Replicate token: keys live in the store alone', async () => {
    const run = await keysWith({ NODE_ENV: 'production' }, 'list')
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
  })

  it('webhook sets and clears a key\'s default webhook, refusing private addresses and unknown keys', async () => {
    const { id } = createdKey(await keys('create', '--plan', 'basic'))
    const set = await keys('webhook', id, 'https://hooks.example.com/flux')
    expect(set.code).toBe(0)
    expect(set.stdout).toContain('https://hooks.example.com/flux')
    const store = createSqliteStore({ path: db })
    try {
      expect((await store.getKey(id))?.webhook).toBe('https://hooks.example.com/flux')
      const refused = await keys('webhook', id, 'https://10.0.0.7/hook')
      expect(refused.code).toBe(1)
      expect(refused.stderr).toContain('forbidden address')
      expect((await keys('webhook', id, 'http://127.0.0.1:8080/hook')).code).toBe(1)
      // A developer's loopback receiver, with WEBHOOK_ALLOW_INSECURE.
      expect((await keysWith({ WEBHOOK_ALLOW_INSECURE: 'true' }, 'webhook', id, 'http://127.0.0.1:8080/hook')).code).toBe(0)
      expect((await store.getKey(id))?.webhook).toBe('http://127.0.0.1:8080/hook')
      expect((await keys('webhook', id, 'none')).code).toBe(0)
      expect((await store.getKey(id))?.webhook).toBeNull()
      expect((await keys('webhook', 'ffffffffffffffff', 'https://hooks.example.com/flux')).stderr).toContain('no key')
    } finally {
      await store.close()
    }
  })

  it('webhook-secret shows the key\'s whsec_ secret; --rotate makes a new one and the old stays valid', async () => {
    const { id } = createdKey(await keys('create', '--plan', 'basic'))
    const shown = await keys('webhook-secret', id)
    expect(shown.code).toBe(0)
    const secret = shown.stdout.trim()
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    expect((await keys('webhook-secret', id)).stdout.trim()).toBe(secret)
    const rotated = await keys('webhook-secret', id, '--rotate')
    expect(rotated.code).toBe(0)
    const fresh = rotated.stdout.trim().split('\n').at(-1)!
    expect(fresh).toMatch(/^whsec_/)
    expect(fresh).not.toBe(secret)
    expect(rotated.stdout).toContain('stays valid until')
    const store = createSqliteStore({ path: db })
    try {
      expect(await webhookSecrets(store, id, Date.now())).toEqual([fresh, secret])
      // A day later only the new one signs.
      expect(await webhookSecrets(store, id, Date.now() + 86_400_000 + 60_000)).toEqual([fresh])
    } finally {
      await store.close()
    }
    expect((await keys('webhook-secret', 'ffffffffffffffff')).code).toBe(1)
  })
})
