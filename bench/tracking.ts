/**
 * `npm run bench:tracking`: what following a prediction to its end costs upstream and how quickly waiters hear of
 * it, against emulators that count every request they get. Real time throughout (the gateway's poll backoff is real
 * time), on loopback only, every part bounded. Each gateway runs as its own process (`src/server.ts`, as deployed);
 * each emulator runs in this process, so its recorded requests and its own prediction objects can be read directly.
 *   upstream requests  — Replicate API calls (creates, prediction GETs, cancels, lists; not image downloads) per
 *                        prediction: sync creates of 3, 10 and 75 s, a `respond-async` create long-polled with
 *                        `?wait=60`, and 100 callers long-polling one prediction; each with REPLICATE_WEBHOOKS off and
 *                        on, every case against a gateway and an emulator of its own, all at once.
 *   generations        — 1,000 concurrent sync creates of 5 s on one gateway, create limits lifted: wall time against
 *                        the prediction's own time, p50/p99 per request, errors.
 *   waiters            — 100 predictions of 20 s, each watched by 100 clients (half long-polls, half the SSE stream
 *                        `GET /v1/predictions/{id}/events`, or long-polls where the gateway does not list that
 *                        route): answers, errors, the gateway's peak RSS.
 *   lag                — from the prediction's `completed_at` as the emulator reports it to the moment a waiter got
 *                        its terminal answer, p50/p99.
 * Writes bench/tracking-results.json and prints a table.
 */
import { randomUUID } from 'node:crypto'
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { ServerResponse } from 'node:http'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool } from 'undici'
import { buildEmulatorApp, createEmulatorContext } from '../src/emulator/index.ts'
import type { RecordedRequest } from '../src/emulator/index.ts'
import { resolveOptions } from '../src/emulator/options.ts'
import type { Prediction } from '../src/replicate/types.ts'
import { freePort } from './free-port.ts'

const MODEL = 'flux-schnell'
const MODEL_REF = 'black-forest-labs/flux-schnell'
const GENERATIONS = Number(process.env.BENCH_GENERATIONS ?? 1000)
const WAITED_PREDICTIONS = Number(process.env.BENCH_WAITED_PREDICTIONS ?? 100)
const WAITERS_PER_PREDICTION = Number(process.env.BENCH_WAITERS_PER_PREDICTION ?? 100)
/** Requests that reach an emulator after a case's last answer (a tracker still polling) are its cost too. */
const SETTLE_MS = 3_000
/** No waiter waits longer than this for its answer: past it, it counts as unanswered. */
const WAITER_DEADLINE_MS = 150_000
const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))
const SSE_ROUTE = '/v1/predictions/{id}/events'

/** Epoch ms on the emulator's own clock (timeOrigin + now), so completion and answer times compare exactly. */
const now = (): number => performance.timeOrigin + performance.now()
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// The emulator: one per case, in this process, with predictions of exactly `seconds`.

interface CountingEmulator {
  baseUrl: string
  token: string
  requests: RecordedRequest[]
  /** The emulator's own view of every prediction it holds (what Replicate would report). */
  predictions: () => Prediction[]
  /** Answers it gave with 429 (its rate limits), to any request. */
  rateLimited: () => number
  close: () => Promise<void>
}

/**
 * The emulator completes a prediction 5% of its predict time after its outputs exist (100 ms at least), so for a
 * prediction of T seconds from create to `completed_at`, with no time spent starting, predict time is T / 1.05.
 */
const OUTPUT_TAIL = 1.05

async function startCountingEmulator (o: { seconds: number, liftCreateLimit?: boolean }): Promise<CountingEmulator> {
  const ctx = createEmulatorContext(resolveOptions({
    timeScale: 1,
    startingMs: [0, 0],
    predictSeconds: { [MODEL_REF]: o.seconds / OUTPUT_TAIL },
    // The counts are the point: none may be dropped, however many waiters there are.
    maxRecordedRequests: 10_000_000,
    // Only the create limit is ever lifted: reads keep Replicate's 3000 a minute, which is what the gateway spends.
    ...(o.liftCreateLimit ? { rateLimits: { create: { perMinute: 1e9, burst: 1e9 } } } : {})
  }))
  // Every output is the one image rendered for its format and size: rendering is Replicate's GPUs' work, and here it
  // would take the cores the gateway is measured on (a thousand images are a minute of CPU). The gateway still
  // downloads every output in full.
  const render = ctx.images.get.bind(ctx.images)
  ctx.images.get = (_key, spec) => render(`bench/${spec.format}/${spec.width}x${spec.height}`, { ...spec, prompt: 'tracking bench', seed: 1, index: 0 })
  const app = buildEmulatorApp(ctx)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as net.AddressInfo
  const origin = `http://127.0.0.1:${port}`
  ctx.setListeningOrigin(origin)
  // The recorded requests are taken before the rate limit; the answers say which of them were refused.
  let rateLimited = 0
  app.server.on('request', (_req, res: ServerResponse) => {
    res.once('finish', () => { if (res.statusCode === 429) rateLimited++ })
  })
  return {
    baseUrl: `${origin}/v1`,
    token: ctx.options.tokens[0]!,
    requests: ctx.requests,
    predictions: () => ctx.engine.list({ limit: Number.MAX_SAFE_INTEGER }).results,
    rateLimited: () => rateLimited,
    async close () {
      await ctx.shutdown()
      await app.close()
    }
  }
}

type UpstreamKind = 'create' | 'get' | 'cancel' | 'list' | 'other'

/** What a recorded request was, or null for what is not an API call (image downloads, files). */
function kindOf (r: RecordedRequest): UpstreamKind | null {
  if (!r.path.startsWith('/v1/') || r.path.startsWith('/v1/files')) return null
  if (r.method === 'POST' && /^\/v1\/(models\/[^/]+\/[^/]+|deployments\/[^/]+\/[^/]+)\/predictions$/.test(r.path)) return 'create'
  if (r.method === 'POST' && r.path === '/v1/predictions') return 'create'
  if (r.method === 'GET' && /^\/v1\/predictions\/[^/]+$/.test(r.path)) return 'get'
  if (r.method === 'POST' && /^\/v1\/predictions\/[^/]+\/cancel$/.test(r.path)) return 'cancel'
  if (r.method === 'GET' && r.path === '/v1/predictions') return 'list'
  return 'other'
}

interface UpstreamCount {
  /** Creates, prediction GETs, cancels and lists: what the cases are judged by. */
  api_requests: number
  create: number
  get: number
  cancel: number
  list: number
  /** Other API calls (account, webhook secret): once per gateway, not per prediction. */
  other: number
  /** Image downloads, for reference; not API calls. */
  downloads: number
  /** Of all the requests above, how many the emulator refused with 429 (its rate limits): they count all the same. */
  rate_limited: number
}

function countUpstream (emulator: CountingEmulator): UpstreamCount {
  const c: UpstreamCount = { api_requests: 0, create: 0, get: 0, cancel: 0, list: 0, other: 0, downloads: 0, rate_limited: emulator.rateLimited() }
  for (const r of emulator.requests) {
    const kind = kindOf(r)
    if (kind === null) {
      if (r.path.startsWith('/delivery/')) c.downloads++
      continue
    }
    c[kind]++
    if (kind !== 'other') c.api_requests++
  }
  return c
}

// ---------------------------------------------------------------------------------------------------------------
// The gateway: its own process, as `npm start` runs it.

interface GatewayProcess {
  url: string
  pid: number
  /** Warnings and errors it logged, by message: a retried upstream call or a failed tracker shows here. */
  logged: Map<string, number>
  /** Starts sampling VmRSS every 200 ms; the returned function stops it and gives the peak and the first sample. */
  sampleRss: () => () => { peak_mb: number, at_start_mb: number, samples: number }
  stop: () => Promise<void>
}

async function startGateway (emulator: CountingEmulator, o: { webhooks: boolean, env?: Record<string, string> }): Promise<GatewayProcess> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const dir = await mkdtemp(path.join(os.tmpdir(), 'fgw-bench-tracking-'))
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_ENV: 'development',
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'warn',
    REPLICATE_BASE_URL: emulator.baseUrl,
    REPLICATE_API_TOKEN: emulator.token,
    STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'),
    IMAGE_STORAGE_DIR: path.join(dir, 'images'),
    REPLICATE_WEBHOOKS: o.webhooks ? 'on' : 'off',
    // Replicate posts its webhooks to the gateway itself.
    ...(o.webhooks ? { PUBLIC_BASE_URL: url } : {}),
    ...o.env
  }
  // Its working directory is its own temporary one, so a developer's .env cannot change what is measured; its flags
  // are those `npm start` runs it with.
  const child: ChildProcess = spawn(process.execPath, ['--max-semi-space-size=2', '--experimental-strip-types', SERVER], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const logged = new Map<string, number>()
  let pending = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8')
    const lines = pending.split('\n')
    pending = lines.pop()!
    for (const line of lines) {
      let msg = line
      try {
        const parsed = JSON.parse(line) as { msg?: string, level?: number | string }
        msg = `${parsed.level === 40 || parsed.level === 'warn' ? 'warn' : 'error'}: ${parsed.msg ?? line}`
      } catch {
        // Not a log line: kept as it is.
      }
      logged.set(msg, (logged.get(msg) ?? 0) + 1)
    }
  })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-4000) })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))

  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the gateway exited with ${child.exitCode}: ${stderr}`)
    if (Date.now() > deadline) throw new Error(`the gateway was not live within 60 s: ${stderr}`)
    try {
      const res = await fetch(`${url}/health/live`)
      await res.arrayBuffer()
      if (res.ok) break
    } catch {
      // Not listening yet.
    }
    await sleep(100)
  }

  return {
    url,
    pid: child.pid!,
    logged,
    sampleRss () {
      let peak = 0
      let first = 0
      let samples = 0
      const read = async (): Promise<void> => {
        try {
          const status = await readFile(`/proc/${child.pid}/status`, 'utf8')
          const kb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0)
          if (samples++ === 0) first = kb
          peak = Math.max(peak, kb)
        } catch {
          // The process is gone, or there is no /proc here: the peak stays what it was.
        }
      }
      void read()
      const timer = setInterval(() => { void read() }, 200)
      return () => {
        clearInterval(timer)
        return { peak_mb: Math.round(peak / 1024), at_start_mb: Math.round(first / 1024), samples }
      }
    },
    async stop () {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        const killed = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(killed)
      }
      await rm(dir, { recursive: true, force: true })
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Clients: create, long-poll, SSE.

interface GatewayPrediction {
  id: string
  status: string
  completed_at?: string | null
}

interface Answer {
  prediction: GatewayPrediction
  /** When the terminal answer was in hand (epoch ms, the emulator's clock). */
  at: number
  how: 'create' | 'long-poll' | 'sse'
}

/** Every waiter's tally, so errors are counted however the waiter ends. */
interface Tally {
  requests: number
  errors: number
  /** Error answers by status (or `network`, or `sse-ended` for a stream closed before `completed`). */
  by: Record<string, number>
}

const newTally = (): Tally => ({ requests: 0, errors: 0, by: {} })
function failed (t: Tally, why: string): void {
  t.errors++
  t.by[why] = (t.by[why] ?? 0) + 1
}

function clientPool (url: string, connections: number): Pool {
  // A sync create is held for up to a minute and a long-poll for up to `wait`: timeouts well past both.
  return new Pool(url, { connections, headersTimeout: 150_000, bodyTimeout: 150_000, keepAliveTimeout: 30_000, connectTimeout: 30_000 })
}

/** A pause before asking again after an error: the gateway's Retry-After, within 0.5–5 s. */
function backoffMs (headers: Record<string, string | string[] | undefined>): number {
  const seconds = Number(headers['retry-after'])
  return Number.isFinite(seconds) && seconds > 0 ? Math.min(5_000, seconds * 1000) : 500
}

/**
 * One create, never repeated: a second create after an error would be a second prediction, counted upstream as
 * this one's cost. An error answer is counted and thrown.
 */
async function create (pool: Pool, prompt: string, tally: Tally, o: { async: boolean }): Promise<{ status: number, prediction: GatewayPrediction }> {
  tally.requests++
  let res
  try {
    res = await pool.request({
      method: 'POST',
      path: '/v1/text-to-image',
      headers: { 'content-type': 'application/json', ...(o.async ? { prefer: 'respond-async' } : {}) },
      body: JSON.stringify({ prompt, model: MODEL })
    })
  } catch (err) {
    failed(tally, 'network')
    throw err
  }
  const text = await res.body.text()
  if (res.statusCode === 200 || res.statusCode === 201 || res.statusCode === 202) return { status: res.statusCode, prediction: JSON.parse(text) as GatewayPrediction }
  failed(tally, String(res.statusCode))
  throw new Error(`create answered ${res.statusCode}: ${text.slice(0, 300)}`)
}

/** `GET ?wait=60` until the prediction is terminal; errors are counted and the waiter asks again. */
async function longPoll (pool: Pool, id: string, tally: Tally): Promise<Answer> {
  for (const started = Date.now(); Date.now() - started < WAITER_DEADLINE_MS;) {
    tally.requests++
    try {
      const res = await pool.request({ method: 'GET', path: `/v1/predictions/${encodeURIComponent(id)}?wait=60` })
      const text = await res.body.text()
      if (res.statusCode !== 200) {
        failed(tally, String(res.statusCode))
        await sleep(backoffMs(res.headers))
        continue
      }
      const prediction = JSON.parse(text) as GatewayPrediction
      if (TERMINAL.has(prediction.status)) return { prediction, at: now(), how: 'long-poll' }
    } catch {
      failed(tally, 'network')
      await sleep(500)
    }
  }
  throw new Error(`no terminal answer for ${id} within ${WAITER_DEADLINE_MS} ms`)
}

interface SseEvent {
  event: string
  data: string
  id: string | undefined
}

/**
 * Server-sent events as the HTML standard parses them: `event:`, `data:` (lines joined with \n) and `id:` fields,
 * one optional space after the colon, comments starting with `:`, an event dispatched at each blank line.
 */
function sseParser (onEvent: (e: SseEvent) => void): (text: string) => void {
  let buffer = ''
  let event = ''
  let data: string[] = []
  let id: string | undefined
  return (text) => {
    buffer += text
    const lines = buffer.split(/\r\n|\r|\n/)
    // The last piece may be a line cut in two; a lone \r at the end may still get its \n.
    buffer = lines.pop()!
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0 || event !== '') onEvent({ event: event || 'message', data: data.join('\n'), id })
        event = ''
        data = []
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      let value = colon === -1 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') event = value
      else if (field === 'data') data.push(value)
      else if (field === 'id' && !value.includes('\0')) id = value
    }
  }
}

/**
 * The prediction's event stream until its `completed` event; a stream that ends before it is an error, and the
 * waiter reconnects with Last-Event-ID.
 */
async function sse (pool: Pool, id: string, tally: Tally): Promise<Answer> {
  let lastId: string | undefined
  for (const started = Date.now(); Date.now() - started < WAITER_DEADLINE_MS;) {
    tally.requests++
    try {
      const res = await pool.request({
        method: 'GET',
        path: `/v1/predictions/${encodeURIComponent(id)}/events`,
        headers: { accept: 'text/event-stream', ...(lastId !== undefined ? { 'last-event-id': lastId } : {}) },
        // Events may be far apart; the deadline above bounds the wait instead.
        bodyTimeout: 0
      })
      if (res.statusCode !== 200) {
        await res.body.dump()
        failed(tally, String(res.statusCode))
        await sleep(backoffMs(res.headers))
        continue
      }
      let answer: Answer | undefined
      const feed = sseParser((e) => {
        if (e.id !== undefined) lastId = e.id
        if (e.event !== 'completed' || answer) return
        // The event itself says the prediction ended; a payload that is not the prediction still ends the wait.
        let prediction: GatewayPrediction
        try {
          prediction = JSON.parse(e.data) as GatewayPrediction
        } catch {
          prediction = { id, status: 'completed' }
        }
        answer = { prediction, at: now(), how: 'sse' }
      })
      const decoder = new TextDecoder()
      for await (const chunk of res.body) {
        feed(decoder.decode(chunk as Buffer, { stream: true }))
        if (answer) break
      }
      if (answer) {
        res.body.destroy()
        return answer
      }
      failed(tally, 'sse-ended')
    } catch {
      failed(tally, 'network')
      await sleep(500)
    }
  }
  throw new Error(`no completed event for ${id} within ${WAITER_DEADLINE_MS} ms`)
}

/** A default (sync) create, followed, when it answers before the prediction ends, by long-polls until it does. */
async function syncCreate (pool: Pool, prompt: string, tally: Tally): Promise<Answer> {
  const { prediction } = await create(pool, prompt, tally, { async: false })
  if (TERMINAL.has(prediction.status)) return { prediction, at: now(), how: 'create' }
  return longPoll(pool, prediction.id, tally)
}

async function hasSseRoute (url: string): Promise<boolean> {
  const res = await fetch(`${url}/openapi.json`)
  if (!res.ok) return false
  const doc = await res.json() as { paths?: Record<string, unknown> }
  return Object.hasOwn(doc.paths ?? {}, SSE_ROUTE)
}

// ---------------------------------------------------------------------------------------------------------------
// Numbers.

function percentiles (xs: number[]): { p50: number | null, p99: number | null, n: number } {
  if (xs.length === 0) return { p50: null, p99: null, n: 0 }
  const sorted = [...xs].sort((a, b) => a - b)
  const at = (q: number): number => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!)
  return { p50: at(0.5), p99: at(0.99), n: xs.length }
}

interface Ends {
  /** `completed_at` as the emulator reports it. */
  completed: number
  /**
   * When its output existed: the emulator hands the files over 5% of the predict time before it marks the prediction
   * complete (as Replicate does), and a sync answer or a poll may end there.
   */
  output: number
}

/** When each of the emulator's predictions ended, by its prompt (the gateway's ids need not be Replicate's). */
function endsByPrompt (emulator: CountingEmulator): Map<string, Ends> {
  const byPrompt = new Map<string, Ends>()
  for (const p of emulator.predictions()) {
    const prompt = (p.input as { prompt?: unknown } | undefined)?.prompt
    if (typeof prompt !== 'string' || !p.completed_at) continue
    const completed = Date.parse(p.completed_at)
    const started = p.started_at ? Date.parse(p.started_at) : completed
    byPrompt.set(prompt, { completed, output: started + (completed - started) / OUTPUT_TAIL })
  }
  return byPrompt
}

/**
 * Waits until every prediction the emulator holds has ended (a caller may have been answered, or have given up,
 * before that), then SETTLE_MS more: whatever the gateway still asks about them counts.
 */
async function upstreamDone (emulator: CountingEmulator): Promise<void> {
  for (const until = Date.now() + 120_000; Date.now() < until;) {
    if (emulator.predictions().every((p) => TERMINAL.has(p.status))) break
    await sleep(250)
  }
  await sleep(SETTLE_MS)
}

const uniquePrompt = (what: string): string => `tracking bench: ${what}, ${randomUUID()}`

// ---------------------------------------------------------------------------------------------------------------
// Part 1: upstream requests per prediction.

interface TrackingCase {
  name: string
  /** How the client follows the prediction. */
  client: 'sync create' | 'respond-async, then GET ?wait=60 until terminal' | '100 callers GET ?wait=60 on one respond-async prediction'
  seconds: number
  callers: number
  async: boolean
}

const CASES: TrackingCase[] = [
  { name: 'sync_3s', client: 'sync create', seconds: 3, callers: 1, async: false },
  { name: 'sync_10s', client: 'sync create', seconds: 10, callers: 1, async: false },
  { name: 'sync_75s', client: 'sync create', seconds: 75, callers: 1, async: false },
  { name: 'async_long_poll_10s', client: 'respond-async, then GET ?wait=60 until terminal', seconds: 10, callers: 1, async: true },
  { name: 'callers_100_10s', client: '100 callers GET ?wait=60 on one respond-async prediction', seconds: 10, callers: 100, async: true }
]

/** The goal for sync creates: 1 + ceil((T − 60) / 5) requests with webhooks off (5 s polls after the sync window), 1 with them on. */
function goalOf (c: TrackingCase, webhooks: boolean): number | null {
  if (c.async) return null
  return webhooks ? 1 : 1 + Math.max(0, Math.ceil((c.seconds - 60) / 5))
}

async function runTrackingCase (c: TrackingCase, webhooks: boolean) {
  const emulator = await startCountingEmulator({ seconds: c.seconds })
  const gateway = await startGateway(emulator, { webhooks })
  const pool = clientPool(gateway.url, c.callers + 2)
  const tally = newTally()
  const prompt = uniquePrompt(`${c.name}, webhooks ${webhooks ? 'on' : 'off'}`)
  try {
    const started = now()
    const answers: Answer[] = []
    const failures: string[] = []
    const settled = (outcome: PromiseSettledResult<Answer>): void => {
      if (outcome.status === 'fulfilled') answers.push(outcome.value)
      else failures.push((outcome.reason as Error).message)
    }
    if (!c.async) {
      settled((await Promise.allSettled([syncCreate(pool, prompt, tally)]))[0]!)
    } else {
      try {
        const { prediction } = await create(pool, prompt, tally, { async: true })
        for (const outcome of await Promise.allSettled(Array.from({ length: c.callers }, () => longPoll(pool, prediction.id, tally)))) settled(outcome)
      } catch (err) {
        failures.push((err as Error).message)
      }
    }
    const wallMs = now() - started
    await upstreamDone(emulator)
    const ends = endsByPrompt(emulator).get(prompt)
    const polled = answers.filter((a) => a.how === 'long-poll')
    const lags = ends === undefined ? [] : polled.map((a) => a.at - ends.completed)
    const outputLags = ends === undefined ? [] : polled.map((a) => a.at - ends.output)
    const upstream = countUpstream(emulator)
    return {
      case: c.name,
      client: c.client,
      prediction_seconds: c.seconds,
      webhooks: webhooks ? 'on' : 'off',
      upstream_api_requests: upstream.api_requests,
      goal_api_requests: goalOf(c, webhooks),
      upstream,
      answered: answers.length,
      final_status: [...new Set(answers.map((a) => a.prediction.status))].join(',') || 'none',
      ...(failures.length > 0 ? { failures: [...new Set(failures)] } : {}),
      client_requests: tally.requests,
      client_errors: tally.errors,
      client_errors_by: tally.by,
      wall_ms: Math.round(wallMs),
      /** Long-poll answers only: a sync create's answer comes with the images, before Replicate's completed_at. */
      lag_ms: percentiles(lags),
      lag_from_output_ms: percentiles(outputLags),
      lags_ms: lags,
      output_lags_ms: outputLags,
      gateway_logged: Object.fromEntries(gateway.logged)
    }
  } finally {
    await pool.close()
    await gateway.stop()
    await emulator.close()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Part 2: 1,000 concurrent generations.

async function runGenerations () {
  const seconds = 5
  const emulator = await startCountingEmulator({ seconds, liftCreateLimit: true })
  const env = { REPLICATE_CREATE_RATE: '100000', REPLICATE_CREATE_BURST: '100000' }
  const gateway = await startGateway(emulator, { webhooks: false, env })
  const pool = clientPool(gateway.url, GENERATIONS + 10)
  const tally = newTally()
  const stopRss = gateway.sampleRss()
  try {
    const started = now()
    const latencies: number[] = []
    const statuses: Record<string, number> = {}
    let unanswered = 0
    await Promise.all(Array.from({ length: GENERATIONS }, async (_, i) => {
      const t0 = now()
      try {
        const answer = await syncCreate(pool, uniquePrompt(`generation ${i}`), tally)
        latencies.push(answer.at - t0)
        statuses[answer.prediction.status] = (statuses[answer.prediction.status] ?? 0) + 1
      } catch {
        unanswered++
      }
    }))
    const wallMs = now() - started
    const rss = stopRss()
    await upstreamDone(emulator)
    const upstream = countUpstream(emulator)
    const p = percentiles(latencies)
    return {
      generations: GENERATIONS,
      prediction_seconds: seconds,
      settings: { ...env, REPLICATE_CREATE_CONNECTIONS: 'default (1024)', emulator_create_limit: 'lifted', emulator_read_limit: '3000/min (Replicate\'s)' },
      wall_ms: Math.round(wallMs),
      wall_vs_prediction_time: Math.round((wallMs / (seconds * 1000)) * 100) / 100,
      latency_ms: { p50: p.p50, p99: p.p99, max: latencies.length > 0 ? Math.round(Math.max(...latencies)) : null },
      final_status: statuses,
      unanswered,
      client_requests: tally.requests,
      client_errors: tally.errors,
      client_errors_by: tally.by,
      upstream,
      upstream_api_requests_per_prediction: Math.round((upstream.api_requests / GENERATIONS) * 100) / 100,
      gateway_rss: rss,
      gateway_logged: Object.fromEntries(gateway.logged)
    }
  } finally {
    stopRss()
    await pool.close()
    await gateway.stop()
    await emulator.close()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Part 3: 10,000 concurrent waiters on running predictions.

async function runWaiters () {
  const seconds = 20
  const emulator = await startCountingEmulator({ seconds })
  // The creates are not what is measured: the gateway's own create limit (a burst of 60) would spread them out.
  const env = { REPLICATE_CREATE_RATE: '100000', REPLICATE_CREATE_BURST: '100000' }
  const gateway = await startGateway(emulator, { webhooks: false, env })
  const waiters = WAITED_PREDICTIONS * WAITERS_PER_PREDICTION
  const pool = clientPool(gateway.url, waiters + WAITED_PREDICTIONS + 10)
  const sseAvailable = await hasSseRoute(gateway.url)
  if (!sseAvailable) console.log(`note: /openapi.json does not list ${SSE_ROUTE}; the SSE half of the waiters long-polls instead`)
  const createTally = newTally()
  const pollTally = newTally()
  const sseTally = newTally()
  const stopRss = gateway.sampleRss()
  try {
    const started = now()
    const answers: Array<Answer & { prompt: string }> = []
    let unanswered = 0
    await Promise.all(Array.from({ length: WAITED_PREDICTIONS }, async (_, i) => {
      const prompt = uniquePrompt(`waited prediction ${i}`)
      let prediction: GatewayPrediction
      try {
        ({ prediction } = await create(pool, prompt, createTally, { async: true }))
      } catch {
        unanswered += WAITERS_PER_PREDICTION
        return
      }
      await Promise.all(Array.from({ length: WAITERS_PER_PREDICTION }, async (_w, j) => {
        const viaSse = j % 2 === 1 && sseAvailable
        try {
          const answer = viaSse ? await sse(pool, prediction.id, sseTally) : await longPoll(pool, prediction.id, pollTally)
          answers.push({ ...answer, prompt })
        } catch {
          unanswered++
        }
      }))
    }))
    const wallMs = now() - started
    const rss = stopRss()
    await upstreamDone(emulator)
    const ends = endsByPrompt(emulator)
    const lagsOf = (how: Answer['how'], from: keyof Ends): number[] =>
      answers.filter((a) => a.how === how && ends.has(a.prompt)).map((a) => a.at - ends.get(a.prompt)![from])
    const upstream = countUpstream(emulator)
    const statuses: Record<string, number> = {}
    for (const a of answers) statuses[a.prediction.status] = (statuses[a.prediction.status] ?? 0) + 1
    return {
      predictions: WAITED_PREDICTIONS,
      waiters_per_prediction: WAITERS_PER_PREDICTION,
      waiters,
      prediction_seconds: seconds,
      sse_route: sseAvailable ? 'listed: half the waiters stream events' : `not listed in /openapi.json: every waiter long-polls`,
      settings: { ...env, REPLICATE_MAX_CONNECTIONS: 'default (32)', emulator_read_limit: '3000/min (Replicate\'s)' },
      wall_ms: Math.round(wallMs),
      answered: answers.length,
      answered_by: { long_poll: answers.filter((a) => a.how === 'long-poll').length, sse: answers.filter((a) => a.how === 'sse').length },
      unanswered,
      final_status: statuses,
      client_requests: { creates: createTally.requests, long_polls: pollTally.requests, sse_streams: sseTally.requests },
      client_errors: createTally.errors + pollTally.errors + sseTally.errors,
      client_errors_by: { creates: createTally.by, long_polls: pollTally.by, sse_streams: sseTally.by },
      upstream,
      upstream_api_requests_per_prediction: Math.round((upstream.api_requests / WAITED_PREDICTIONS) * 100) / 100,
      gateway_rss: rss,
      lag_ms: { long_poll: percentiles(lagsOf('long-poll', 'completed')), sse: percentiles(lagsOf('sse', 'completed')), all: percentiles([...lagsOf('long-poll', 'completed'), ...lagsOf('sse', 'completed')]) },
      lag_from_output_ms: { long_poll: percentiles(lagsOf('long-poll', 'output')), sse: percentiles(lagsOf('sse', 'output')), all: percentiles([...lagsOf('long-poll', 'output'), ...lagsOf('sse', 'output')]) },
      gateway_logged: Object.fromEntries(gateway.logged)
    }
  } finally {
    stopRss()
    await pool.close()
    await gateway.stop()
    await emulator.close()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run.

function table (rows: Array<Record<string, string | number | null>>): string {
  const columns = Object.keys(rows[0] ?? {})
  const width = (c: string): number => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '-').length))
  const line = (cells: string[]): string => cells.map((cell, i) => cell.padEnd(width(columns[i]!))).join('  ')
  return [line(columns), line(columns.map((c) => '-'.repeat(width(c)))), ...rows.map((r) => line(columns.map((c) => String(r[c] ?? '-'))))].join('\n')
}

const benchStarted = Date.now()
// The cases of part 1 run all at once, each against its own pair (the 75 s ones set the pace); the generations and
// the waiters each run alone after them, so neither load falls on a lag or a sync window that is measured.
const trackingCases = await Promise.all(CASES.flatMap((c) => [runTrackingCase(c, false), runTrackingCase(c, true)]))
const generations = await runGenerations()
const waiters = await runWaiters()

const caseLags = trackingCases.flatMap((r) => r.lags_ms)
const caseOutputLags = trackingCases.flatMap((r) => r.output_lags_ms)
const report = {
  measured_at: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.arch()}`, load_average_1m: Math.round(os.loadavg()[0]! * 100) / 100 },
  run_seconds: Math.round((Date.now() - benchStarted) / 1000),
  note: 'Real time throughout. Each gateway runs as its own process (src/server.ts, NODE_ENV=development with no API key, so every caller is the anonymous tenant; SQLite state; warn logs); each emulator runs in the bench process with Replicate\'s read limit (3000 a minute), exact prediction times (no time spent starting) and every request recorded. upstream_api_requests counts creates, prediction GETs, cancels and lists that reached the emulator, from the gateway\'s start until 3 s after both the last answer and the prediction\'s end upstream; image downloads and once-per-process calls (account, webhook secret) are listed apart. The emulator serves one rendered image per format and size for every output, so its rendering does not take the cores the gateway runs on. A waiter that gets an error asks again after the Retry-After it was given (0.5 to 5 s); creates are never repeated. Lag is the waiter\'s terminal answer minus the emulator\'s completed_at (negative: the gateway answered from the output, which the emulator hands over a moment before it marks the prediction complete).',
  upstream_requests_per_prediction: trackingCases.map(({ lags_ms: _lags, output_lags_ms: _outputLags, ...rest }) => rest),
  concurrent_generations: generations,
  concurrent_waiters: waiters,
  completion_to_answer_lag_ms: {
    from_completed_at: {
      tracking_cases_long_polls: percentiles(caseLags),
      waiters_long_poll: waiters.lag_ms.long_poll,
      waiters_sse: waiters.lag_ms.sse,
      waiters_all: waiters.lag_ms.all
    },
    from_output: {
      tracking_cases_long_polls: percentiles(caseOutputLags),
      waiters_long_poll: waiters.lag_from_output_ms.long_poll,
      waiters_sse: waiters.lag_from_output_ms.sse,
      waiters_all: waiters.lag_from_output_ms.all
    }
  }
}
await writeFile(new URL('./tracking-results.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`)
// `npm run bench` runs the hot-path suite, then this one: results.json holds both.
const resultsFile = new URL('./results.json', import.meta.url)
const results = JSON.parse(await readFile(resultsFile, 'utf8').catch(() => '{}')) as Record<string, unknown>
await writeFile(resultsFile, `${JSON.stringify({ ...results, tracking: report }, null, 2)}\n`)

console.log('\nUpstream API requests per prediction')
console.log(table(trackingCases.map((r) => ({
  case: r.case,
  webhooks: r.webhooks,
  'T (s)': r.prediction_seconds,
  requests: r.upstream_api_requests,
  goal: r.goal_api_requests,
  'create/get/cancel/list': `${r.upstream.create}/${r.upstream.get}/${r.upstream.cancel}/${r.upstream.list}`,
  status: r.final_status,
  'client errors': r.client_errors,
  'lag p50/p99 (ms)': r.lag_ms.n > 0 ? `${r.lag_ms.p50}/${r.lag_ms.p99}` : null
}))))
console.log(`\n${GENERATIONS} concurrent generations of ${generations.prediction_seconds} s`)
console.log(table([{
  'wall (ms)': generations.wall_ms,
  'wall / T': generations.wall_vs_prediction_time,
  'p50 (ms)': generations.latency_ms.p50,
  'p99 (ms)': generations.latency_ms.p99,
  errors: generations.client_errors,
  unanswered: generations.unanswered,
  'upstream req/pred': generations.upstream_api_requests_per_prediction,
  'gateway peak RSS (MB)': generations.gateway_rss.peak_mb
}]))
console.log(`\n${waiters.waiters} concurrent waiters on ${waiters.predictions} predictions of ${waiters.prediction_seconds} s (${waiters.sse_route})`)
console.log(table([{
  answered: waiters.answered,
  unanswered: waiters.unanswered,
  errors: waiters.client_errors,
  'upstream req/pred': waiters.upstream_api_requests_per_prediction,
  'upstream 429s': waiters.upstream.rate_limited,
  'gateway RSS start/peak (MB)': `${waiters.gateway_rss.at_start_mb}/${waiters.gateway_rss.peak_mb}`,
  'lag p50/p99 (ms)': `${waiters.lag_ms.all.p50}/${waiters.lag_ms.all.p99}`,
  'wall (ms)': waiters.wall_ms
}]))
console.log('\nLag from completion upstream to the waiter\'s terminal answer (ms)')
const lagRow = (what: string, from: keyof typeof report.completion_to_answer_lag_ms, key: keyof typeof report.completion_to_answer_lag_ms.from_output) => {
  const p = report.completion_to_answer_lag_ms[from][key]
  return { waiters: what, from: from === 'from_completed_at' ? 'completed_at' : 'output ready', n: p.n, p50: p.p50, p99: p.p99 }
}
console.log(table((['from_completed_at', 'from_output'] as const).flatMap((from) => [
  lagRow('tracking cases\' long-polls', from, 'tracking_cases_long_polls'),
  lagRow('waiters, long-poll', from, 'waiters_long_poll'),
  lagRow('waiters, SSE', from, 'waiters_sse')
])))
console.log(`wrote bench/tracking-results.json in ${report.run_seconds} s`)
