/**
 * `npm run bench`: GET /v1/predictions/{id} three ways, side by side in one run, with autocannon:
 *   gateway  — through flux-gateway (validation, upstream call to the emulator, mapping);
 *   emulator — the same request straight to the emulator (the upstream's own cost);
 *   bare     — a bare Fastify route returning a document of the same size (the framework floor).
 * Writes bench/results.json with req/s, p50/p99 latency and the ratios between them. Only loopback
 * is used; every run is bounded in time.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'

const DURATION_S = Number(process.env.BENCH_DURATION_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32)
const children: ChildProcess[] = []

async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts a server process; resolves with what its LISTENING line says, or once `readyUrl` answers. */
function start (args: string[], env: Record<string, string> = {}, readyUrl?: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    if (readyUrl) {
      const poll = setInterval(() => {
        fetch(readyUrl).then((res) => {
          if (res.ok) {
            clearInterval(poll)
            resolve([readyUrl])
          }
        }, () => {})
      }, 100)
    }
    const child = spawn(process.execPath, ['--experimental-strip-types', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    children.push(child)
    child.stdout!.on('data', (chunk) => {
      for (const line of String(chunk).split('\n')) {
        const listening = /^LISTENING (.+)$/.exec(line)
        if (listening) resolve(listening[1]!.split(' '))
        const fastify = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (fastify) resolve([fastify[1]!])
      }
    })
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
  })
}

interface Result {
  target: string
  url: string
  requests_per_second: number
  latency_p50_ms: number
  latency_p99_ms: number
  non_2xx: number
  errors: number
}

async function measure (target: string, url: string, headers: Record<string, string> = {}): Promise<Result> {
  // A short warm-up, so JIT and connection set-up are not measured.
  await autocannon({ url, connections: CONNECTIONS, duration: 2, headers })
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers })
  return {
    target,
    url,
    requests_per_second: Math.round(r.requests.average),
    latency_p50_ms: r.latency.p50,
    latency_p99_ms: r.latency.p99,
    non_2xx: r.non2xx,
    errors: r.errors
  }
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'fgw-bench-'))
try {
  const [emulatorBase, token] = await start(['bench/servers.ts', 'emulator'])
  // Production settings, as deployed: state in SQLite, an API key required.
  const stateEnv = { STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'), IMAGE_STORAGE_DIR: path.join(dir, 'images') }
  const created = spawnSync(process.execPath, ['--experimental-strip-types', 'scripts/keys.ts', 'create', '--plan', 'premium'], {
    env: { ...process.env, ...stateEnv },
    encoding: 'utf8'
  })
  const apiKey = /^fgw_\S+$/m.exec(created.stdout)?.[0]
  if (!apiKey) throw new Error(`could not create an API key: ${created.stderr}`)
  const auth = { authorization: `Bearer ${apiKey}` }
  const port = await freePort()
  const gateway = `http://127.0.0.1:${port}`
  await start(['src/server.ts'], {
    ...stateEnv,
    NODE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    REPLICATE_API_TOKEN: token!,
    REPLICATE_BASE_URL: emulatorBase!
  }, `${gateway}/health/live`)
  const createdPrediction = await fetch(`${gateway}/v1/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ prompt: 'a benchmark of herons', seed: 1 })
  })
  const prediction = await createdPrediction.json() as { id: string, status: string }
  if (prediction.status !== 'succeeded') throw new Error(`setup prediction did not succeed: ${JSON.stringify(prediction)}`)
  const upstreamDoc = await (await fetch(`${emulatorBase}/predictions/${prediction.id}`, { headers: { authorization: `Bearer ${token}` } })).text()
  const [bare] = await start(['bench/servers.ts', 'bare', upstreamDoc])

  const results = [
    await measure('gateway', `${gateway}/v1/predictions/${prediction.id}`, auth),
    await measure('emulator', `${emulatorBase}/predictions/${prediction.id}`, { authorization: `Bearer ${token}` }),
    await measure('bare', `${bare}/v1/predictions/${prediction.id}`)
  ]
  const [gw, em, bf] = results as [Result, Result, Result]
  const ratio = (a: number, b: number) => Math.round((a / b) * 1000) / 1000
  const report = {
    measured_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.arch()}` },
    settings: { duration_seconds: DURATION_S, connections: CONNECTIONS },
    results,
    ratios: {
      gateway_vs_emulator_rps: ratio(gw.requests_per_second, em.requests_per_second),
      gateway_vs_bare_rps: ratio(gw.requests_per_second, bf.requests_per_second),
      emulator_vs_bare_rps: ratio(em.requests_per_second, bf.requests_per_second),
      gateway_vs_emulator_p50: ratio(gw.latency_p50_ms, em.latency_p50_ms),
      gateway_vs_emulator_p99: ratio(gw.latency_p99_ms, em.latency_p99_ms)
    },
    note: 'The gateway runs as deployed (NODE_ENV=production, SQLite state, an API key checked on every request). A finished prediction is answered from the gateway\'s own store (ownership check, recorded state, kept image URLs) without an upstream call; the emulator and the bare route answer from memory. All processes and the load generator share this machine\'s cores.'
  }
  await writeFile(new URL('./results.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`)
  console.log(JSON.stringify({ results, ratios: report.ratios }, null, 2))
} finally {
  for (const child of children) child.kill('SIGTERM')
}
await new Promise((resolve) => setTimeout(resolve, 500))
await rm(dir, { recursive: true, force: true })
