import { Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../src/metrics.ts'

/** The http_request_duration_seconds lines of a scrape, without the help and type lines. */
function durationLines (text: string): string[] {
  return text.split('\n').filter((line) => line.startsWith('http_request_duration_seconds')).sort()
}

describe('the request histogram', () => {
  it('scrapes exactly as prom-client\'s own Histogram would for the same observations', async () => {
    const ours = createMetrics()
    const reference = new Registry()
    const histogram = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time to answer a request, by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [reference]
    })
    // On a bucket's bound, between bounds, beyond the last; three series.
    const seen: Array<[string, string, number, number]> = [
      ['/v1/predictions/:id', 'GET', 200, 0.005],
      ['/v1/predictions/:id', 'GET', 200, 0.0051],
      ['/v1/predictions/:id', 'GET', 200, 0.3],
      ['/v1/predictions/:id', 'GET', 404, 0.001],
      ['/v1/text-to-image', 'POST', 200, 4.2],
      ['/v1/text-to-image', 'POST', 200, 75],
      ['/v1/text-to-image', 'POST', 200, 60]
    ]
    for (const [route, method, status, seconds] of seen) {
      ours.observeRequest(route, method, status, seconds)
      histogram.observe({ route, method, status: String(status) }, seconds)
    }
    const expected = durationLines(await reference.metrics())
    expect(expected).toHaveLength(3 * (13 + 3))
    expect(durationLines(await ours.registry.metrics())).toEqual(expected)
    expect(await ours.registry.metrics()).toContain('# TYPE http_request_duration_seconds histogram')
  })
})
