import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../src/emulator/index.ts'
import type { Emulator } from '../src/emulator/index.ts'
import { startFakeIngestion } from './fakes/application-insights.ts'
import type { Envelope, FakeIngestion } from './fakes/application-insights.ts'
import { spawnGateway, withStore } from './helpers/process.ts'
import type { GatewayProcess } from './helpers/process.ts'

/**
 * Traces to Application Insights through the real Azure Monitor distro, sent to a fake ingestion endpoint on
 * loopback. The gateway runs in a process of its own, preloaded with a guard that refuses (and records) every
 * connection or DNS look-up that is not loopback: IMDS, statsbeat, the settings service and live metrics would all
 * show up there.
 */

const run = promisify(execFile)
const guard = pathToFileURL(path.join(import.meta.dirname, 'helpers', 'loopback-only.ts')).href
const IKEY = '00000000-0000-0000-0000-000000000000'
/** How long the gateway runs before the request: past the distro's first settings poll (5-15 s after its exporters are built). */
const WATCH_MS = 16_000

let dir: string
let ingestion: FakeIngestion
let emulator: Emulator
let gateway: GatewayProcess | undefined
const guardLog = (): string => path.join(dir, 'refused.log')
const refused = (): string[] => existsSync(guardLog()) ? readFileSync(guardLog(), 'utf8').split('\n').filter(Boolean) : []

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-azmon-'))
  ingestion = await startFakeIngestion(dir)
  emulator = await startEmulator({ timeScale: 0.02 })
  writeFileSync(path.join(dir, 'token'), emulator.token)
})
afterAll(async () => {
  await gateway?.kill9()
  await emulator?.close()
  await ingestion?.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('loopback-only guard', () => {
  // A documentation address (TEST-NET-1) stands in for any outside one: the control never aims at a real host.
  it('refuses and records an http request to a non-loopback address and a look-up of a public name', async () => {
    const log = path.join(dir, 'control.log')
    const script = `
      import http from 'node:http'
      import dns from 'node:dns'
      const get = () => new Promise((resolve) => http.get('http://192.0.2.1/metadata/instance', { timeout: 2000 }, () => resolve('answered')).on('error', (e) => resolve(e.code)))
      const look = () => new Promise((resolve) => dns.lookup('settings.sdk.monitor.azure.com', (e) => resolve(e ? e.code : 'resolved')))
      console.log(JSON.stringify([await get(), await look()]))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '', NODE_OPTIONS: `--import=${guard}`, LOOPBACK_ONLY_LOG: log }
    })
    expect(JSON.parse(stdout.trim())).toEqual(['ECONNREFUSED', 'ECONNREFUSED'])
    expect(readFileSync(log, 'utf8').split('\n').filter(Boolean)).toEqual(['192.0.2.1:80', 'dns settings.sdk.monitor.azure.com'])
  })
})

describe('Azure Monitor traces', () => {
  it('one text-to-image request reaches Application Insights as a request with its dependencies, and nothing leaves loopback', async () => {
    const sqlite = path.join(dir, 'state.sqlite')
    gateway = await spawnGateway({
      APPLICATIONINSIGHTS_CONNECTION_STRING: `InstrumentationKey=${IKEY};IngestionEndpoint=${ingestion.endpoint}`,
      REPLICATE_API_TOKEN_FILE: path.join(dir, 'token'),
      REPLICATE_BASE_URL: emulator.baseUrl,
      STATE_SQLITE_PATH: sqlite,
      IMAGE_STORAGE_DIR: path.join(dir, 'images'),
      // The exporter's offline storage lives under the temporary directory: this run's own.
      TMPDIR: dir,
      NODE_EXTRA_CA_CERTS: ingestion.caFile,
      NODE_OPTIONS: `--import=${guard}`,
      LOOPBACK_ONLY_LOG: guardLog()
    })
    // Listening means the distro and its exporters were built before this.
    const started = Date.now()

    // The distro's settings poll starts 5-15 s after its exporters are built, statsbeat at once: the request comes
    // after both would have shown up at the guard.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, WATCH_MS - (Date.now() - started))))
    const prompt = 'an observed lighthouse with a secret name'
    const res = await fetch(`${gateway.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, model: 'flux-dev' })
    })
    expect(res.status).toBe(200)
    const predictionId = (await res.json() as { id: string }).id
    // At once: the batch processor's timer may not have run yet, so what arrives is what shutdown flushed.
    await gateway.stop()
    gateway = undefined

    expect(refused()).toEqual([])
    expect(new Set(ingestion.requests.map((r) => `${r.method} ${r.path}`))).toEqual(new Set(['POST /v2.1/track']))
    expect(ingestion.envelopes.every((e) => e.iKey === IKEY)).toBe(true)

    const traced = ingestion.envelopes.filter((e) => e.data.baseType === 'RequestData' || e.data.baseType === 'RemoteDependencyData')
    const byName = (name: string): Envelope | undefined => traced.find((e) => e.data.baseData.name === name)
    const create = byName('replicate create')!
    expect(create, 'the Replicate create').toBeDefined()
    const operation = create.tags['ai.operation.id']!
    const trace = traced.filter((e) => e.tags['ai.operation.id'] === operation)
    const request = trace.find((e) => e.data.baseType === 'RequestData')!
    expect(request, 'the request').toBeDefined()
    expect(trace.filter((e) => e.data.baseType === 'RequestData')).toHaveLength(1)
    expect(request.data.baseData).toMatchObject({ responseCode: '200', success: true })
    expect(String(request.data.baseData.name)).toContain('POST')
    expect(request.tags['ai.cloud.role']).toBe('flux-gateway')

    /** The names of an item's ancestors up to the request, by operation parent ids. */
    const byId = new Map(trace.map((e) => [e.data.baseData.id as string, e]))
    const ancestors = (e: Envelope): string[] => {
      const out: string[] = []
      for (let p = byId.get(e.tags['ai.operation.parentId'] ?? ''); p; p = byId.get(p.tags['ai.operation.parentId'] ?? '')) out.push(String(p.data.baseData.name))
      return out
    }
    for (const name of ['moderation', 'replicate create', 'keep images']) {
      const item = trace.find((e) => e.data.baseData.name === name)
      expect(item, name).toBeDefined()
      expect(item!.data.baseType, name).toBe('RemoteDependencyData')
      expect(ancestors(item!).at(-1), `${name} under the request`).toBe(request.data.baseData.name)
    }

    // Replicate's id is on the dependency; the caller's id is the gateway's own.
    const upstreamId = await withStore(sqlite, async (store) => (await store.getPrediction(predictionId))!.upstreamId!)
    expect(upstreamId).not.toBe(predictionId)
    expect(create.data.baseData.properties).toMatchObject({ 'replicate.operation': 'create', 'replicate.prediction_id': upstreamId })
    expect(byName('keep images')!.data.baseData.properties).toMatchObject({ 'prediction.id': predictionId, 'replicate.prediction_id': upstreamId })
    expect(byName('moderation')!.data.baseData.properties).toMatchObject({ 'moderation.provider': 'local', 'moderation.allowed': 'true' })
    expect(byName('vault read')?.data.baseData.properties).toMatchObject({ 'vault.kind': 'file' })

    // The create carried the trace upstream, naming its own span as the parent.
    const upstream = emulator.requests.find((r) => r.method === 'POST' && r.path.endsWith('/predictions'))!
    expect(upstream.headers.traceparent).toBe(`00-${operation}-${create.data.baseData.id as string}-01`)
    // Never the prompt, in any item sent.
    expect(ingestion.requests.map((r) => r.body).join('\n')).not.toContain('secret name')
  }, 60_000)
})
