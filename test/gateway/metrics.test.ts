import { readFileSync } from 'node:fs'
import path from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mayScrape } from '../../src/metrics.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

interface Family { name: string, type: string, metrics: { labels?: Record<string, string>, value?: string, count?: string }[] }

let gw: TestGateway

beforeAll(async () => {
  // Retries without waiting, so a 429 storm is counted in milliseconds.
  gw = await startGateway({ overrides: { replicate: { sleep: async () => {} } } })
})
afterAll(async () => {
  await gw.close()
})

/**
 * The exposition, parsed. parse-prometheus-text-format reads counters and gauges with their labels, but folds a
 * histogram's label sets into one, so each histogram's `_count` samples are added as counters of their own.
 */
async function scrape (url = gw.url): Promise<Family[]> {
  const res = await request(`${url}/metrics`)
  expect(res.statusCode).toBe(200)
  expect(res.headers['content-type']).toContain('text/plain')
  const text = await res.body.text()
  const families = parsePrometheusTextFormat(text) as Family[]
  const histograms = families.filter((f) => f.type === 'HISTOGRAM').map((f) => f.name)
  const counts = text.split('\n').filter((line) => histograms.some((h) => line.startsWith(`${h}_count`))).map((line) => line.replace(/^(\w+)_count/, '$1_count_series'))
  const countFamilies = histograms.map((h) => `# TYPE ${h}_count_series counter\n${counts.filter((l) => l.startsWith(`${h}_count_series`)).join('\n')}`)
  return [...families, ...parsePrometheusTextFormat(`${countFamilies.join('\n')}\n`) as Family[]]
}

/** A counter's value for the series whose labels include `labels` (a histogram's: `<name>_count_series`); 0 when absent. */
function value (families: Family[], name: string, labels: Record<string, string> = {}): number {
  const family = families.find((f) => f.name === name)
  if (!family) return 0
  return family.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((sum, m) => sum + Number(m.value ?? m.count ?? 0), 0)
}

const delta = (before: Family[], after: Family[], name: string, labels: Record<string, string> = {}) => value(after, name, labels) - value(before, name, labels)

describe('GET /metrics', () => {
  it('counts a success: the request, the upstream create, the prediction, its credits and the moderation verdict', async () => {
    const before = await scrape()
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'a counted lighthouse', model: 'flux-dev', num_outputs: 2 })
    expect(res.status).toBe(200)
    const after = await scrape()
    expect(delta(before, after, 'http_request_duration_seconds_count_series', { route: '/v1/text-to-image', method: 'POST', status: '200' })).toBe(1)
    expect(delta(before, after, 'replicate_requests_total', { kind: 'create', status: '201' })).toBe(1)
    expect(delta(before, after, 'predictions_total', { model: 'flux-dev', status: 'succeeded' })).toBe(1)
    expect(delta(before, after, 'prediction_duration_seconds_count_series', { model: 'flux-dev' })).toBe(1)
    expect(delta(before, after, 'credits_settled_total', { model: 'flux-dev' })).toBe(4)
    expect(delta(before, after, 'moderation_decisions_total', { provider: 'local', outcome: 'allowed' })).toBe(1)
    // Labels never carry ids or prompts.
    const text = await (await request(`${gw.url}/metrics`)).body.text()
    expect(text).not.toContain(res.body.id)
    expect(text).not.toContain('counted lighthouse')
    for (const name of ['process_cpu_seconds_total', 'nodejs_eventloop_lag_seconds', 'upstream_create_queue_depth', 'tracked_predictions']) {
      expect(after.map((f) => f.name)).toContain(name)
    }
  })

  it('counts a failure: a failed prediction and no credits', async () => {
    const before = await scrape()
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'fail-test please', model: 'flux-dev' })
    expect(res.body.status).toBe('failed')
    const after = await scrape()
    expect(delta(before, after, 'predictions_total', { model: 'flux-dev', status: 'failed' })).toBe(1)
    expect(delta(before, after, 'credits_settled_total', { model: 'flux-dev' })).toBe(0)
  })

  it('counts a 429 storm: every rate-limited attempt, and the create that finally went through', async () => {
    gw.emulator.inject({ kind: 'status', status: 429, retryAfterSeconds: 1, method: 'POST', count: 3 })
    const before = await scrape()
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'after the storm', model: 'flux-schnell' })
    expect(res.status).toBe(200)
    const after = await scrape()
    expect(delta(before, after, 'replicate_rate_limited_total')).toBe(3)
    expect(delta(before, after, 'replicate_requests_total', { kind: 'create', status: '429' })).toBe(3)
    expect(delta(before, after, 'replicate_requests_total', { kind: 'create', status: '201' })).toBe(1)
  })

  it('counts a refusal by category, with nothing sent upstream', async () => {
    const before = await scrape()
    const res = await gw.call('POST', '/v1/text-to-image', { prompt: 'a n.u.d.e statue' })
    expect(res.status).toBe(422)
    const after = await scrape()
    expect(delta(before, after, 'moderation_decisions_total', { provider: 'local', outcome: 'refused', category: 'sexual' })).toBe(1)
    expect(delta(before, after, 'replicate_requests_total', { kind: 'create' })).toBe(0)
    expect(delta(before, after, 'http_request_duration_seconds_count_series', { route: '/v1/text-to-image', status: '422' })).toBe(1)
  })

  it('has every metric the Grafana dashboard in deploy/ queries', async () => {
    const dashboard = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../deploy/grafana-dashboard.json'), 'utf8')) as { panels: { targets: { expr: string }[] }[] }
    const queried = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/\b([a-z_]+)\{/g)].map((m) => m[1]!))))
    expect(queried.size).toBeGreaterThan(8)
    const names = new Set((await scrape()).map((f) => f.name))
    for (const name of queried) expect(names.has(name.replace(/_(bucket|count)$/, '')) || names.has(name), name).toBe(true)
  })

  it('answers loopback as is, and anyone else only with the bearer METRICS_TOKEN', () => {
    const token = 'a-metrics-token-of-length'
    expect(mayScrape('127.0.0.1', undefined, undefined)).toBe(true)
    expect(mayScrape('::1', undefined, token)).toBe(true)
    expect(mayScrape('10.0.0.7', undefined, token)).toBe(false)
    expect(mayScrape('10.0.0.7', `Bearer ${token}`, undefined)).toBe(false)
    expect(mayScrape('10.0.0.7', 'Bearer wrong', token)).toBe(false)
    expect(mayScrape('10.0.0.7', `Bearer ${token}`, token)).toBe(true)
  })
})

describe('METRICS_PORT', () => {
  it('serves /metrics on its own port, and not on the API\'s', async () => {
    const own = await startGateway({ env: { METRICS_PORT: '0' } })
    try {
      expect((await request(`${own.url}/metrics`)).statusCode).toBe(404)
      const port = own.app.metricsPort()!
      expect(port).toBeGreaterThan(0)
      const families = await scrape(`http://127.0.0.1:${port}`)
      expect(families.map((f) => f.name)).toContain('http_request_duration_seconds')
    } finally {
      await own.close()
    }
  })
})
