import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { createApiKey } from '../../src/tenancy/keys.ts'
import { startFakeServiceBus } from '../fakes/service-bus/broker.ts'
import type { FakeServiceBus } from '../fakes/service-bus/broker.ts'
import { spawnGateway } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { storeWithKeys } from '../tenancy/helpers.ts'
import { QUEUE, backend, eventsOf, startWorkerGateway } from './helpers.ts'

const SCHNELL = 'black-forest-labs/flux-schnell'

describe('lock renewal', () => {
  it('renews a 1 s lock across a 3 s generation, and completes the message once', async () => {
    const bus = await startFakeServiceBus({ lockDurationMs: 1_000 })
    const { store, ids } = await storeWithKeys({ a: { plan: 'basic' } })
    // Real time: the model takes 3 s, the create waits for it in one request.
    const gw = await startWorkerGateway(bus, { overrides: { tenancy: { store } }, emulator: { timeScale: 1, startingMs: [0, 0], predictSeconds: { [SCHNELL]: 3 } } })
    const sb = backend(bus)
    try {
      await sb.send({ messageId: 'long-1', body: { kind: 'text-to-image', request: { prompt: 'a slow sunrise', model: 'flux-schnell' }, api_key_id: ids.a } })
      await bus.waitFor('the message to be settled', () => eventsOf(bus, 'long-1').includes('complete'), 20_000)
      const delivered = bus.events.find((e) => e.type === 'delivered' && e.messageId === 'long-1') as { lockToken: string }
      const renewals = bus.events.filter((e) => e.type === 'renew-lock' && e.lockTokens.includes(delivered.lockToken))
      expect(renewals.length).toBeGreaterThanOrEqual(2)
      expect(renewals.every((e) => e.type === 'renew-lock' && e.found === 1)).toBe(true)
      expect(renewals[0]).toMatchObject({ queue: QUEUE })
      // Never lost, never delivered again, completed once.
      expect(eventsOf(bus, 'long-1')).toEqual(['delivered', 'complete'])
      expect(bus.events.some((e) => e.type === 'lock-expired' || e.type === 'settle-lock-lost')).toBe(false)
    } finally {
      await sb.close()
      await gw.close()
      await store.close()
      await bus.close()
    }
  })
})

describe('SIGTERM mid-message (npm run worker)', () => {
  let emulator: Emulator
  let bus: FakeServiceBus
  let dir: string
  let keyId: string
  let worker: GatewayProcess | undefined

  beforeAll(async () => {
    // A 4 s generation; the create waits 1 s for it, then the worker follows the prediction.
    emulator = await startEmulator({ timeScale: 1, startingMs: [0, 0], predictSeconds: { [SCHNELL]: 4 } })
    bus = await startFakeServiceBus()
    dir = mkdtempSync(path.join(tmpdir(), 'fgw-worker-'))
    const store = createSqliteStore({ path: path.join(dir, 'state.sqlite') })
    keyId = (await createApiKey(store, { plan: 'basic' })).record.id
    await store.close()
  })
  afterEach(async () => { await worker?.stop() })
  afterAll(async () => {
    await bus.close()
    await emulator.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const env = (grace: number) => ({
    REPLICATE_API_TOKEN: emulator.token,
    REPLICATE_BASE_URL: emulator.baseUrl,
    STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'),
    IMAGE_STORAGE_DIR: path.join(dir, 'images'),
    SERVICE_BUS_CONNECTION_STRING: bus.connectionString,
    SERVICE_BUS_QUEUE: QUEUE,
    SYNC_WAIT_SECONDS: '1',
    SHUTDOWN_GRACE_MS: String(grace)
  })
  const creates = () => emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

  async function sendAndTerminate (messageId: string, grace: number): Promise<number | null> {
    worker = await spawnGateway(env(grace), { entry: 'worker' })
    // Ready once the receiver link is attached, which comes a moment after listening.
    let ready = await fetch(`${worker.url}/health/ready`)
    for (let i = 0; i < 100 && ready.status !== 200; i++) {
      await ready.body?.cancel()
      await new Promise((resolve) => setTimeout(resolve, 100))
      ready = await fetch(`${worker.url}/health/ready`)
    }
    expect(ready.status).toBe(200)
    expect(((await ready.json()) as { checks: Record<string, unknown> }).checks.worker).toEqual({ status: 'ok' })
    expect((await fetch(`${worker.url}/health/live`)).status).toBe(200)
    // The worker serves its probes and metrics only: no API, no OpenAPI document or docs page, no playground.
    for (const path of ['/v1/models', '/openapi.json', '/docs', '/']) expect((await fetch(`${worker.url}${path}`)).status, path).toBe(404)
    const metrics = await fetch(`${worker.url}/metrics`)
    expect(metrics.status).toBe(200)
    await metrics.body?.cancel()
    const sb = backend(bus)
    await sb.send({ messageId, body: { kind: 'text-to-image', request: { prompt: 'a lighthouse at first light', model: 'flux-schnell' }, api_key_id: keyId } })
    await sb.close()
    // SIGTERM once the create has been sent: the generation is under way.
    const before = creates().length
    await bus.waitFor('the create to reach Replicate', () => creates().length > before)
    worker.child.kill('SIGTERM')
    await new Promise((resolve) => worker!.child.once('exit', resolve))
    return worker.child.exitCode
  }

  it('finishes the message in hand within the grace, then closes the link and exits', async () => {
    const code = await sendAndTerminate('term-finish', 20_000)
    expect(code).toBe(0)
    expect(eventsOf(bus, 'term-finish')).toEqual(['delivered', 'complete'])
    const detached = bus.events.findIndex((e) => e.type === 'receiver-detached')
    const completed = bus.events.findIndex((e) => e.type === 'complete' && e.messageId === 'term-finish')
    expect(detached).toBeGreaterThan(completed)
    expect(bus.receivers(QUEUE)).toBe(0)
  })

  it('abandons the message when the grace runs out; the next worker follows the same prediction', async () => {
    const before = creates().length
    const code = await sendAndTerminate('term-abandon', 0)
    expect(code).toBe(0)
    expect(eventsOf(bus, 'term-abandon')).toEqual(['delivered', 'abandon'])
    expect(bus.queue(QUEUE).available.map((m) => m.messageId)).toEqual(['term-abandon'])

    worker = await spawnGateway(env(20_000), { entry: 'worker' })
    await bus.waitFor('the redelivery to complete', () => eventsOf(bus, 'term-abandon').includes('complete'), 20_000)
    expect(eventsOf(bus, 'term-abandon')).toEqual(['delivered', 'abandon', 'delivered', 'complete'])
    // One prediction for both deliveries.
    expect(creates().length - before).toBe(1)
  })
})
