import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../src/emulator/index.ts'
import type { Emulator } from '../src/emulator/index.ts'
import { startGateway } from './helpers/gateway.ts'
import type { TestGateway } from './helpers/gateway.ts'

interface Span { traceId: string, spanId: string, parentSpanId?: string, name: string, attributes: Record<string, unknown> }

/** A local OTLP/HTTP receiver: keeps every span of every JSON export it is sent. */
const spans: Span[] = []
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    expect(req.url).toBe('/v1/traces')
    expect(req.headers['content-type']).toContain('application/json')
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { resourceSpans: { scopeSpans: { spans: (Omit<Span, 'attributes'> & { attributes?: { key: string, value: Record<string, unknown> }[] })[] }[] }[] }
    for (const rs of body.resourceSpans) {
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) {
          spans.push({ ...s, attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]])) })
        }
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
})

let emulator: Emulator
let gw: TestGateway
let dir: string

beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  emulator = await startEmulator({ timeScale: 0.02 })
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-otel-'))
  // The token from a file, so the vault reads it (and says so in a span).
  writeFileSync(path.join(dir, 'token'), emulator.token)
  gw = await startGateway({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`,
      REPLICATE_API_TOKEN: '',
      REPLICATE_API_TOKEN_FILE: path.join(dir, 'token'),
      REPLICATE_BASE_URL: emulator.baseUrl
    }
  })
})
afterAll(async () => {
  await gw.close()
  await emulator.close()
  receiver.close()
  rmSync(dir, { recursive: true, force: true })
})

describe('OpenTelemetry traces', () => {
  it('trace one text-to-image request: the request, moderation, the Replicate create (with traceparent) and the image copy', async () => {
    const prompt = 'a traced lighthouse with a secret name'
    const res = await gw.call('POST', '/v1/text-to-image', { prompt, model: 'flux-dev' })
    expect(res.status).toBe(200)
    const predictionId = res.body.id as string

    const create = await expect.poll(() => spans.find((s) => s.name === 'replicate create'), { timeout: 10_000 }).toBeDefined().then(() => spans.find((s) => s.name === 'replicate create')!)
    await expect.poll(() => spans.some((s) => s.traceId === create.traceId && s.name === 'keep images'), { timeout: 10_000 }).toBe(true)
    const trace = spans.filter((s) => s.traceId === create.traceId)
    const byId = new Map(trace.map((s) => [s.spanId, s]))
    const root = trace.find((s) => s.parentSpanId === undefined || s.parentSpanId === '' || !byId.has(s.parentSpanId))!
    expect(root.attributes['http.request.method'] ?? root.attributes['http.method']).toBe('POST')
    /** The names of a span's ancestors up to the root. */
    const ancestors = (s: Span): string[] => {
      const out: string[] = []
      for (let p = s.parentSpanId && byId.get(s.parentSpanId); p; p = p.parentSpanId ? byId.get(p.parentSpanId) : undefined) out.push(p.name)
      return out
    }
    for (const name of ['moderation', 'replicate create', 'keep images']) {
      const span = trace.find((s) => s.name === name)
      expect(span, name).toBeDefined()
      expect(ancestors(span!).at(-1), `${name} under the request span`).toBe(root.name)
    }
    expect(trace.find((s) => s.name === 'moderation')!.attributes).toMatchObject({ 'moderation.provider': 'local', 'moderation.allowed': true })
    // Replicate's id is on the spans (it is internal: the caller's id is the gateway's own).
    const upstreamId = (await gw.app.state.getPrediction(predictionId))!.upstreamId!
    expect(upstreamId).not.toBe(predictionId)
    expect(create.attributes).toMatchObject({ 'replicate.operation': 'create', 'replicate.prediction_id': upstreamId })
    expect(Number(create.attributes['http.response.status_code'])).toBe(201)
    expect(trace.find((s) => s.name === 'keep images')!.attributes).toMatchObject({ 'prediction.id': predictionId, 'replicate.prediction_id': upstreamId })

    // The create carried the trace upstream, naming its own span as the parent.
    const upstream = emulator.requests.find((r) => r.method === 'POST' && r.path.endsWith('/predictions'))!
    expect(upstream.headers.traceparent).toBe(`00-${create.traceId}-${create.spanId}-01`)
    // Never the prompt.
    expect(JSON.stringify(spans)).not.toContain('secret name')
  }, 30_000)

  it('trace the vault read of the token', async () => {
    await expect.poll(() => spans.find((s) => s.name === 'vault read')?.attributes['vault.kind'], { timeout: 10_000 }).toBe('file')
  })
})
