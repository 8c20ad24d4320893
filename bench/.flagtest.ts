import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { startEmulator } from '../src/emulator/index.ts'

const emulator = await startEmulator({ timeScale: 0.01, rateLimits: false } as never)
const dir = mkdtempSync(path.join(tmpdir(), 'flag-'))
const stateEnv = { STATE_SQLITE_PATH: path.join(dir, 's.sqlite'), IMAGE_STORAGE_DIR: path.join(dir, 'img') }
const created = spawnSync(process.execPath, ['--experimental-strip-types', 'scripts/keys.ts', 'create', '--plan', 'premium'], { env: { ...process.env, ...stateEnv }, encoding: 'utf8' })
const key = /^fgw_\S+$/m.exec(created.stdout)![0]
for (const flags of [[], ['--max-semi-space-size=2'], [], ['--max-semi-space-size=2']]) {
  const port = 3980 + Math.floor(Math.random() * 10)
  const child = spawn(process.execPath, [...flags, '--experimental-strip-types', 'src/server.ts'], { env: { ...process.env, ...stateEnv, NODE_ENV: 'production', LOG_LEVEL: 'info', PORT: String(port), REPLICATE_API_TOKEN: emulator.token, REPLICATE_BASE_URL: emulator.baseUrl }, stdio: 'ignore' })
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) { try { await fetch(`${base}/health/live`); break } catch { await new Promise((r) => setTimeout(r, 100)) } }
  const p = await (await fetch(`${base}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ prompt: 'x', seed: 1 }) })).json() as { id: string }
  const r = await autocannon({ url: `${base}/v1/predictions/${p.id}`, headers: { authorization: `Bearer ${key}` }, connections: 32, duration: 8 })
  console.log(flags.join(' ') || '(default)', 'req/s', Math.round(r.requests.average), 'p99', r.latency.p99)
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
}
await emulator.close()
