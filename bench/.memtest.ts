import { spawn } from 'node:child_process'
import { readFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Agent, request } from 'undici'
import { startEmulator } from '/work/main/src/emulator/index.ts'

const kind = process.argv[2] ?? 'poll'
const N = Number(process.argv[3] ?? 10000)
const extra = process.argv.slice(4)
const emulator = await startEmulator({ timeScale: 1, startingMs: [0, 0], predictSeconds: { 'black-forest-labs/flux-schnell': 25 } })
const dir = mkdtempSync(path.join(tmpdir(), 'mem-'))
const port = 3990
const child = spawn(process.execPath, [...extra, ...(process.env.SNAP ? ['--heapsnapshot-signal=SIGUSR2', '--diagnostic-dir=/tmp/mem'] : []), '--experimental-strip-types', '--no-warnings', '/work/main/src/server.ts'], { env: { ...process.env, PORT: String(port), REPLICATE_API_TOKEN: emulator.token, REPLICATE_BASE_URL: emulator.baseUrl, STATE_SQLITE_PATH: path.join(dir, 's.sqlite'), IMAGE_STORAGE_DIR: path.join(dir, 'img'), LOG_LEVEL: 'warn', NODE_ENV: 'development' }, stdio: ['ignore', 'inherit', 'inherit'] })
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024
const base = `http://127.0.0.1:${port}`
for (let i = 0; i < 100; i++) { try { await request(`${base}/health/live`); break } catch { await new Promise((r) => setTimeout(r, 100)) } }
const agent = new Agent({ connections: null, pipelining: 0 })
const ids: string[] = []
for (let i = 0; i < 100; i++) {
  const r = await request(`${base}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json', prefer: 'respond-async' }, body: JSON.stringify({ prompt: `mem ${i}`, model: 'flux-schnell' }) })
  ids.push((await r.body.json() as { id: string }).id)
}
let peak = 0
const start = rss()
const timer = setInterval(() => { peak = Math.max(peak, rss()) }, 200)
const t0 = Date.now()
let done = 0
const waits = Array.from({ length: N }, async (_, i) => {
  const id = ids[i % ids.length]!
  const url = kind === 'sse' ? `${base}/v1/predictions/${id}/events` : `${base}/v1/predictions/${id}?wait=60`
  const r = await request(url, { dispatcher: agent })
  await r.body.text()
  done++
})
await new Promise((r) => setTimeout(r, 8000))
console.log(`plateau after 8 s: rss ${rss().toFixed(0)} MB (start ${start.toFixed(0)})`)
if (process.env.SNAP) { child.kill('SIGUSR2'); await new Promise((r) => setTimeout(r, 15000)) }
await Promise.all(waits)
clearInterval(timer)
console.log(`${kind} N=${N} ${extra.join(' ')}: done ${done} peak ${peak.toFixed(0)} MB in ${Date.now() - t0} ms`)
child.kill('SIGTERM')
await agent.close()
await emulator.close()
process.exit(0)
