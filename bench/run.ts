/**
 * `npm run bench`: the gateway against references, side by side in one run, on loopback only, each part bounded.
 *   status GET   — GET /v1/predictions/{id} of a finished prediction through the gateway (production settings: an API
 *                  key, SQLite, info logs), straight to the emulator, and on a bare Fastify route returning a document
 *                  of the same size (the framework floor); req/s and p50/p99 with autocannon, and each server's CPU
 *                  time per request. Gateway and bare Fastify run in alternating rounds; the median round's ratio counts.
 *   create       — a default (sync) text-to-image create through the gateway, and the same create straight to the
 *                  emulator followed by the download of its images, at 1 and at 64 concurrent callers; the
 *                  gateway's own cost is the difference.
 *   cold start   — process start to the first 200 from /health/ready, in production settings and on the emulator
 *                  (`npm start` with nothing set), against a bare Fastify app's first 200; median of 5.
 * Writes bench/results.json. Timings on a shared machine are only meaningful as ratios within one run.
 */
import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { freePort } from './free-port.ts'

const DURATION_S = Number(process.env.BENCH_DURATION_SECONDS ?? 10)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32)
const COLD_STARTS = Number(process.env.BENCH_COLD_STARTS ?? 5)
const STATUS_ROUNDS = Number(process.env.BENCH_STATUS_ROUNDS ?? 3)
const children: ChildProcess[] = []
const NODE = [process.execPath, '--experimental-strip-types']

/** Starts a server process; resolves with its pid and what its LISTENING line says, or once `readyUrl` answers. */
function start (args: string[], env: Record<string, string> = {}, readyUrl?: string): Promise<{ pid: number, said: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE[0]!, [...NODE.slice(1), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(child)
    const ready = (said: string[]): void => {
      // From here on the server's output (the gateway's log lines) is drained unread: this process also runs the
      // load generator, and parsing those lines would take from it.
      child.stdout!.removeAllListeners('data').on('data', () => {})
      resolve({ pid: child.pid!, said })
    }
    if (readyUrl) {
      const poll = setInterval(() => {
        fetch(readyUrl).then((res) => {
          if (res.ok) {
            clearInterval(poll)
            ready([readyUrl])
          }
        }, () => {})
      }, 100)
    }
    child.stdout!.on('data', (chunk) => {
      for (const line of String(chunk).split('\n')) {
        const listening = /^LISTENING (.+)$/.exec(line)
        if (listening) ready(listening[1]!.split(' '))
      }
    })
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)))
  })
}

interface Load {
  requests_per_second: number
  latency_p50_ms: number
  latency_p99_ms: number
  requests: number
  non_2xx: number
  errors: number
  /** The server process's CPU time (user + system) per request, where /proc tells it. */
  server_cpu_us_per_request?: number
}

/** CPU time a process has used so far, in µs, from /proc (Linux); undefined elsewhere. */
async function cpuMicros (pid: number): Promise<number | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined)
  if (stat === undefined) return undefined
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th, in clock ticks (100/s).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10_000
}

function summary (r: autocannon.Result): Load {
  return {
    requests_per_second: Math.round(r.requests.average),
    latency_p50_ms: r.latency.p50,
    latency_p99_ms: r.latency.p99,
    requests: r.requests.total,
    non_2xx: r.non2xx,
    errors: r.errors
  }
}

async function measure (url: string, pid: number, headers: Record<string, string> = {}): Promise<Load> {
  // A short warm-up, so JIT and connection set-up are not measured.
  await autocannon({ url, connections: CONNECTIONS, duration: 2, headers })
  const before = await cpuMicros(pid)
  const result = summary(await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers }))
  const after = await cpuMicros(pid)
  return before === undefined || after === undefined ? result : { ...result, server_cpu_us_per_request: Math.round(((after - before) / result.requests) * 10) / 10 }
}

/**
 * `amount` creates from `callers` concurrent callers, each timed until the caller holds its images: straight to the
 * emulator that is the create and the download of its outputs (the upstream's whole cost, rendering included); through
 * the gateway, the create alone, since the gateway has copied the images by the time it answers.
 */
async function creates (o: { url: string, headers: Record<string, string>, callers: number, amount: number, wrap: (input: object) => object, download: boolean }): Promise<Load> {
  let n = 0
  const once = async (): Promise<number> => {
    const started = performance.now()
    const res = await fetch(o.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...o.headers },
      body: JSON.stringify(o.wrap({ prompt: `a bench of herons, take ${n++}`, num_inference_steps: 1 }))
    })
    const body = await res.json() as { output?: string[] | null }
    if (!res.ok) throw new Error(`create answered ${res.status}: ${JSON.stringify(body)}`)
    if (o.download) for (const url of body.output ?? []) await (await fetch(url, { headers: o.headers })).arrayBuffer()
    return performance.now() - started
  }
  const run = async (amount: number): Promise<{ latencies: number[], seconds: number }> => {
    const latencies: number[] = []
    const started = performance.now()
    let left = amount
    await Promise.all(Array.from({ length: o.callers }, async () => {
      while (left-- > 0) latencies.push(await once())
    }))
    return { latencies, seconds: (performance.now() - started) / 1000 }
  }
  await run(o.callers)
  const { latencies, seconds } = await run(o.amount)
  const sorted = latencies.sort((a, b) => a - b)
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!)
  return { requests_per_second: Math.round(o.amount / seconds), latency_p50_ms: at(0.5), latency_p99_ms: at(0.99), requests: o.amount, non_2xx: 0, errors: 0 }
}

/** Milliseconds from spawning `args` to the first 200 from `url` (polled every 5 ms), then the process is stopped. */
async function coldStart (args: string[], env: Record<string, string>, url: (port: number) => string): Promise<number> {
  const port = await freePort()
  const started = performance.now()
  const child = spawn(NODE[0]!, [...NODE.slice(1), ...args], { env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: 'ignore' })
  try {
    for (let i = 0; i < 6000; i++) {
      try {
        const res = await fetch(url(port))
        await res.arrayBuffer()
        if (res.status === 200) return Math.round(performance.now() - started)
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    throw new Error(`${args.join(' ')} was not ready within 30 s`)
  } finally {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const ratio = (a: number, b: number): number => Math.round((a / b) * 1000) / 1000

const dir = await mkdtemp(path.join(os.tmpdir(), 'fgw-bench-'))
try {
  const emulatorServer = await start(['bench/servers.ts', 'emulator'])
  const [emulatorBase, token] = emulatorServer.said
  // Production settings, as deployed: state in SQLite, an API key required, info logs.
  const stateEnv = { STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'), IMAGE_STORAGE_DIR: path.join(dir, 'images') }
  const created = spawnSync(NODE[0]!, [...NODE.slice(1), 'scripts/keys.ts', 'create', '--plan', 'premium'], { env: { ...process.env, ...stateEnv }, encoding: 'utf8' })
  const apiKey = /^fgw_\S+$/m.exec(created.stdout)?.[0]
  if (!apiKey) throw new Error(`could not create an API key: ${created.stderr}`)
  const auth = { authorization: `Bearer ${apiKey}` }
  const production = {
    ...stateEnv,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    REPLICATE_API_TOKEN: token!,
    REPLICATE_BASE_URL: emulatorBase!,
    // The point is the gateway's own cost, not Replicate's create rate.
    REPLICATE_CREATE_RATE: '100000',
    REPLICATE_CREATE_BURST: '100000',
    REPLICATE_MAX_CONNECTIONS: '128'
  }
  const port = await freePort()
  const gateway = `http://127.0.0.1:${port}`
  const gatewayServer = await start(['src/server.ts'], { ...production, PORT: String(port), HOST: '127.0.0.1' }, `${gateway}/health/live`)
  const createdPrediction = await fetch(`${gateway}/v1/text-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify({ prompt: 'a benchmark of herons', seed: 1 })
  })
  const prediction = await createdPrediction.json() as { id: string, status: string }
  if (prediction.status !== 'succeeded') throw new Error(`setup prediction did not succeed: ${JSON.stringify(prediction)}`)
  const upstreamAuth = { authorization: `Bearer ${token}` }
  // Replicate's id for it (ours is the gateway's own), found in the emulator's list as Replicate's API would list it.
  const listed = await (await fetch(`${emulatorBase}/predictions`, { headers: upstreamAuth })).json() as { results: Array<{ id: string, input: { prompt?: string } }> }
  const upstreamId = listed.results.find((p) => p.input.prompt === 'a benchmark of herons')!.id
  // The bare route answers the very JSON the gateway answers.
  const sameJson = await (await fetch(`${gateway}/v1/predictions/${prediction.id}`, { headers: auth })).text()
  const bareServer = await start(['bench/servers.ts', 'bare', sameJson])
  const bare = bareServer.said[0]!

  // Gateway and bare Fastify in turns, so a slow moment of this shared machine falls on both alike; the rounds'
  // median ratio is the result. Each server's CPU time per request is reported beside its req/s: the load generator
  // shares the cores, and a server it outpaces is woken for every request, which costs that server more per request.
  const rounds: Array<{ gateway: Load, bare: Load, ratio: number, cpu_ratio?: number }> = []
  for (let i = 0; i < STATUS_ROUNDS; i++) {
    const gw = await measure(`${gateway}/v1/predictions/${prediction.id}`, gatewayServer.pid, auth)
    const b = await measure(`${bare}/v1/predictions/${prediction.id}`, bareServer.pid)
    const cpu = gw.server_cpu_us_per_request !== undefined && b.server_cpu_us_per_request !== undefined ? { cpu_ratio: ratio(b.server_cpu_us_per_request, gw.server_cpu_us_per_request) } : {}
    rounds.push({ gateway: gw, bare: b, ratio: ratio(gw.requests_per_second, b.requests_per_second), ...cpu })
  }
  const middle = [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(rounds.length / 2)]!
  const status = {
    gateway: middle.gateway,
    emulator: await measure(`${emulatorBase}/predictions/${upstreamId}`, emulatorServer.pid, upstreamAuth),
    bare: middle.bare,
    rounds
  }

  const createRuns: Record<string, { gateway: Load, emulator: Load, overhead_p50_ms: number, overhead_p99_ms: number }> = {}
  for (const [callers, amount] of [[1, 40], [64, 320]] as const) {
    const gw = await creates({ url: `${gateway}/v1/text-to-image`, headers: auth, callers, amount, wrap: (input) => ({ ...input, model: 'flux-schnell' }), download: false })
    const em = await creates({ url: `${emulatorBase}/models/black-forest-labs/flux-schnell/predictions`, headers: { ...upstreamAuth, prefer: 'wait=60' }, callers, amount, wrap: (input) => ({ input }), download: true })
    createRuns[`callers_${callers}`] = {
      gateway: gw,
      emulator: em,
      overhead_p50_ms: gw.latency_p50_ms - em.latency_p50_ms,
      overhead_p99_ms: gw.latency_p99_ms - em.latency_p99_ms
    }
  }

  // Node's compile cache as npm start and the Docker image use it (warmed by the first start), and without it.
  const cache = { NODE_COMPILE_CACHE: path.join(dir, 'compile-cache') }
  const noCache = { NODE_DISABLE_COMPILE_CACHE: '1' }
  await coldStart(['src/server.ts'], { ...production, ...cache, IMAGE_STORAGE_DIR: path.join(dir, 'images-warm') }, (p) => `http://127.0.0.1:${p}/health/ready`)
  await coldStart(['bench/servers.ts', 'bare', '{}'], cache, (p) => `http://127.0.0.1:${p}/v1/predictions/x`)
  const startTimes = { production: [] as number[], production_without_compile_cache: [] as number[], emulator: [] as number[], bare: [] as number[] }
  for (let i = 0; i < COLD_STARTS; i++) {
    // Interleaved, so a slow moment of the machine falls on all of them alike.
    const state = { STATE_SQLITE_PATH: stateEnv.STATE_SQLITE_PATH, IMAGE_STORAGE_DIR: path.join(dir, `images-${i}`) }
    startTimes.production.push(await coldStart(['src/server.ts'], { ...production, ...state, ...cache }, (p) => `http://127.0.0.1:${p}/health/ready`))
    startTimes.production_without_compile_cache.push(await coldStart(['src/server.ts'], { ...production, ...state, ...noCache }, (p) => `http://127.0.0.1:${p}/health/ready`))
    startTimes.emulator.push(await coldStart(['src/server.ts'], { STATE_SQLITE_PATH: path.join(dir, `open-${i}.sqlite`), IMAGE_STORAGE_DIR: path.join(dir, `open-images-${i}`), LOG_LEVEL: 'info', ...cache }, (p) => `http://127.0.0.1:${p}/health/ready`))
    startTimes.bare.push(await coldStart(['bench/servers.ts', 'bare', '{}'], cache, (p) => `http://127.0.0.1:${p}/v1/predictions/x`))
  }
  const cold = {
    production_ms: median(startTimes.production),
    production_without_compile_cache_ms: median(startTimes.production_without_compile_cache),
    emulator_ms: median(startTimes.emulator),
    bare_fastify_ms: median(startTimes.bare),
    runs: startTimes
  }

  const report = {
    measured_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.arch()}`, load_average_1m: Math.round(os.loadavg()[0]! * 100) / 100 },
    settings: { duration_seconds: DURATION_S, connections: CONNECTIONS, status_rounds: STATUS_ROUNDS, cold_starts: COLD_STARTS },
    status_get: status,
    create: createRuns,
    cold_start: cold,
    ratios: {
      status_get_gateway_vs_bare_rps: middle.ratio,
      status_get_gateway_vs_bare_rps_rounds: rounds.map((r) => r.ratio),
      ...(middle.cpu_ratio !== undefined ? { status_get_bare_vs_gateway_cpu_per_request: middle.cpu_ratio } : {}),
      status_get_added_p99_ms: status.gateway.latency_p99_ms - status.bare.latency_p99_ms,
      status_get_gateway_vs_emulator_rps: ratio(status.gateway.requests_per_second, status.emulator.requests_per_second),
      cold_start_production_vs_bare: ratio(cold.production_ms, cold.bare_fastify_ms),
      cold_start_emulator_vs_bare: ratio(cold.emulator_ms, cold.bare_fastify_ms)
    },
    note: 'Every process and the load generator share this machine\'s cores. The gateway runs as deployed (NODE_ENV=production, SQLite, an API key checked on every request, info logs); a finished prediction is answered from its own state without an upstream call. Create overhead is the gateway\'s latency minus the emulator\'s for the same sync create at the same percentile: moderation, the quote and ledger, the upstream call\'s own handling, and keeping the image.'
  }
  // The tracking suite's part (bench/tracking.ts, run next by `npm run bench`) is kept until it is measured again.
  const resultsFile = new URL('./results.json', import.meta.url)
  const previous = JSON.parse(await readFile(resultsFile, 'utf8').catch(() => '{}')) as { tracking?: unknown }
  await writeFile(resultsFile, `${JSON.stringify({ ...report, ...(previous.tracking ? { tracking: previous.tracking } : {}) }, null, 2)}\n`)
  console.log(JSON.stringify({ ratios: report.ratios, cold_start: cold, create: Object.fromEntries(Object.entries(createRuns).map(([k, v]) => [k, { p50: v.overhead_p50_ms, p99: v.overhead_p99_ms }])) }, null, 2))
} finally {
  for (const child of children) child.kill('SIGTERM')
}
await new Promise((resolve) => setTimeout(resolve, 500))
await rm(dir, { recursive: true, force: true })
