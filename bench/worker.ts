/**
 * `npm run bench:worker`: 500 generation requests through the queue worker (WORKER_CONCURRENCY=32), sent with the
 * real @azure/service-bus client to the loopback broker fake, generated on the emulator (time scale 0.02, so a
 * generation takes tens of milliseconds and the worker's own overhead shows). Writes bench/worker-results.json with
 * messages per second (first send to last completion), per-message latency (enqueued to completed) and what reached
 * the upstream. Only loopback is used; the run is bounded.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { ServiceBusClient } from '@azure/service-bus'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { startEmulator } from '../src/emulator/index.ts'
import { createSqliteStore } from '../src/stores/sqlite.ts'
import { createApiKey } from '../src/tenancy/keys.ts'
import { startFakeServiceBus } from '../test/fakes/service-bus/broker.ts'

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 500)
const CONCURRENCY = Number(process.env.BENCH_WORKER_CONCURRENCY ?? 32)
const QUEUE = 'generations'
const TIMEOUT_MS = 300_000

const dir = await mkdtemp(path.join(os.tmpdir(), 'fgw-bench-worker-'))
const emulator = await startEmulator({ timeScale: 0.02 })
const bus = await startFakeServiceBus()
const store = createSqliteStore({ path: path.join(dir, 'state.sqlite') })
const { record } = await createApiKey(store, { plan: 'basic' })
const config = loadConfig({
  NODE_ENV: 'test',
  LOG_LEVEL: 'warn',
  REPLICATE_API_TOKEN: emulator.token,
  REPLICATE_BASE_URL: emulator.baseUrl,
  IMAGE_STORAGE_DIR: path.join(dir, 'images'),
  PUBLIC_BASE_URL: 'http://127.0.0.1:3000',
  // Replicate's own create limit (600 a minute, the emulator's too), with the whole run inside one burst.
  REPLICATE_CREATE_RATE: '600',
  REPLICATE_CREATE_BURST: String(Math.max(60, MESSAGES)),
  WORKER: 'on',
  SERVICE_BUS_CONNECTION_STRING: bus.connectionString,
  SERVICE_BUS_QUEUE: QUEUE,
  WORKER_CONCURRENCY: String(CONCURRENCY)
})
const app = await buildApp({ config, routes: 'probes', overrides: { tenancy: { store } } })
await app.ready()
await bus.waitFor('the worker to attach', () => bus.receivers(QUEUE) === 1)

const client = new ServiceBusClient(bus.connectionString)
const sender = client.createSender(QUEUE)
const enqueuedAt = new Map<string, number>()
const started = performance.now()
for (let i = 0; i < MESSAGES; i += 50) {
  await Promise.all(Array.from({ length: Math.min(50, MESSAGES - i) }, (_, j) => {
    const messageId = `bench-${i + j}`
    enqueuedAt.set(messageId, performance.now())
    return sender.sendMessages({ messageId, body: { kind: 'text-to-image', request: { prompt: `lighthouse number ${i + j}`, model: 'flux-schnell' }, api_key_id: record.id } })
  }))
}
const sentMs = performance.now() - started

const completedAt = new Map<string, number>()
let seen = 0
let maxLocked = 0
await bus.waitFor('every message to be settled', () => {
  maxLocked = Math.max(maxLocked, bus.locked(QUEUE))
  for (; seen < bus.events.length; seen++) {
    const e = bus.events[seen]!
    if ((e.type === 'complete' || e.type === 'dead-letter') && e.messageId) completedAt.set(e.messageId, performance.now())
  }
  return completedAt.size >= MESSAGES
}, TIMEOUT_MS)
const elapsedMs = performance.now() - started

const latencies = [...completedAt].map(([id, at]) => at - enqueuedAt.get(id)!).sort((a, b) => a - b)
const pct = (p: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!)
const count = (type: string) => bus.events.filter((e) => e.type === type).length
const creates = emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions')).length
const usage = await store.usage(record.id, 0)

const results = {
  measured_at: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version, platform: `${process.platform} ${process.arch}` },
  settings: { messages: MESSAGES, worker_concurrency: CONCURRENCY, emulator_time_scale: 0.02, model: 'flux-schnell', transport: 'AMQP on loopback to test/fakes/service-bus' },
  messages_per_second: Math.round((MESSAGES / elapsedMs) * 1000 * 10) / 10,
  elapsed_ms: Math.round(elapsedMs),
  send_ms: Math.round(sentMs),
  latency_ms: { p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: Math.round(latencies.at(-1)!) },
  deliveries: count('delivered'),
  max_locked_at_once: maxLocked,
  settled: { completed: count('complete'), dead_lettered: count('dead-letter'), abandoned: count('abandon'), lock_renewals: count('renew-lock'), locks_expired: count('lock-expired'), settled_after_lock_lost: count('settle-lock-lost') },
  upstream_creates: creates,
  credits_charged: Object.values(usage.byModel).reduce((sum, row) => sum + row.credits, 0)
}
await writeFile(new URL('./worker-results.json', import.meta.url), `${JSON.stringify(results, null, 2)}\n`)
console.log(JSON.stringify(results, null, 2))

await sender.close()
await client.close()
await app.close()
await store.close()
await bus.close()
await emulator.close()
await rm(dir, { recursive: true, force: true })
