import { timingSafeEqual } from 'node:crypto'
import { createRequire } from 'node:module'
import type PromClient from 'prom-client'
import type { Registry } from 'prom-client'
import type { ModerationProvider } from './moderation/types.ts'
import type { ReplicateOperation } from './replicate/client.ts'

// CommonJS, loaded where a metric other than the request histogram is first needed (see `createMetrics`).
const require = createRequire(import.meta.url)

/**
 * The service's Prometheus metrics. Labels are bounded vocabularies (route patterns, models, statuses, categories):
 * never a prediction id, a prompt or a key, so neither the series count nor a scrape can leak them.
 *
 * Every request observes the request histogram, which is ours. prom-client, with the rest of the metrics and the
 * process's default ones, is loaded on first need: the first scrape, upstream call, moderation verdict or settled
 * prediction. Loading it took some 70 to 120 ms of each start. The default metrics count from then on (CPU time and
 * the process's start time are read from the process, so they cover it all; event-loop lag and GC from then).
 */
export function createMetrics () {
  const httpDuration = requestHistogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer a request, by route pattern, method and status.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
  })
  let queueInFlight = (): number => 0
  let queueDepth = (): number => 0
  let tracked = (): number => 0

  function build () {
    const { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } = require('prom-client') as typeof PromClient
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    const registers = [registry]
    registry.registerMetric(httpDuration as unknown as Parameters<Registry['registerMetric']>[0])
    const webhookDeliveries = new Counter({
      name: 'webhook_deliveries_total',
      help: 'Webhook delivery attempts to callers, by outcome: delivered, retrying (failed, another attempt is scheduled), failed (given up).',
      labelNames: ['outcome'] as const,
      registers
    })
    for (const outcome of ['delivered', 'retrying', 'failed']) webhookDeliveries.inc({ outcome }, 0)
    new Gauge({ name: 'queue_messages_in_flight', help: 'Messages the queue worker of this instance holds (locked, not settled).', registers, collect () { this.set(queueInFlight()) } })
    new Gauge({ name: 'upstream_create_queue_depth', help: 'Creates waiting on this instance for a slot of Replicate\'s create rate.', registers, collect () { this.set(queueDepth()) } })
    new Gauge({ name: 'tracked_predictions', help: 'Unfinished predictions this instance follows upstream.', registers, collect () { this.set(tracked()) } })
    return {
      registry,
      webhookDeliveries,
      replicateRequests: new Counter({
        name: 'replicate_requests_total',
        help: 'Requests sent to Replicate, each retry counted, by kind and HTTP status (or network, timeout).',
        labelNames: ['kind', 'status'] as const,
        registers
      }),
      replicateRateLimited: new Counter({ name: 'replicate_rate_limited_total', help: 'Answers 429 from Replicate.', registers }),
      predictions: new Counter({
        name: 'predictions_total',
        help: 'Predictions that ended, by model and final status.',
        labelNames: ['model', 'status'] as const,
        registers
      }),
      predictionDuration: new Histogram({
        name: 'prediction_duration_seconds',
        help: 'From a prediction\'s creation to its end, by model.',
        labelNames: ['model'] as const,
        buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 900],
        registers
      }),
      creditsSettled: new Counter({ name: 'credits_settled_total', help: 'Credits charged for delivered images, by model.', labelNames: ['model'] as const, registers }),
      moderation: new Counter({
        name: 'moderation_decisions_total',
        help: 'Prompt moderation verdicts, by provider and outcome (allowed, refused; refusals by category).',
        labelNames: ['provider', 'outcome', 'category'] as const,
        registers
      }),
      queueMessages: new Counter({
        name: 'queue_messages_total',
        help: 'Queue worker messages settled, by outcome (completed, abandoned, dead_lettered) and reason (a problem code; empty when completed).',
        labelNames: ['outcome', 'reason'] as const,
        registers
      })
    }
  }
  let built: ReturnType<typeof build> | undefined
  const m = (): ReturnType<typeof build> => (built ??= build())

  return {
    /** The registry a scrape reads. */
    get registry (): Registry {
      return m().registry
    },
    observeRequest (route: string, method: string, status: number, seconds: number): void {
      httpDuration.observe(route, method, status, seconds)
    },
    replicateAttempt ({ operation, status }: { operation: ReplicateOperation, status: number | 'network' | 'timeout' }): void {
      m().replicateRequests.inc({ kind: operation, status: String(status) })
      if (status === 429) m().replicateRateLimited.inc()
    },
    predictionEnded (o: { model: string, status: string, seconds: number, credits: number }): void {
      m().predictions.inc({ model: o.model, status: o.status })
      m().predictionDuration.observe({ model: o.model }, o.seconds)
      if (o.credits > 0) m().creditsSettled.inc({ model: o.model }, o.credits)
    },
    /** The provider, counting each verdict it gives. */
    countModeration (provider: ModerationProvider): ModerationProvider {
      return {
        name: provider.name,
        async checkText (text, o) {
          const verdict = await provider.checkText(text, o)
          if (verdict.allowed) m().moderation.inc({ provider: verdict.provider, outcome: 'allowed', category: '' })
          else for (const category of verdict.categories.length > 0 ? verdict.categories : ['other']) m().moderation.inc({ provider: verdict.provider, outcome: 'refused', category })
          return verdict
        }
      }
    },
    queueSettled (outcome: 'completed' | 'abandoned' | 'dead_lettered', reason: string): void {
      m().queueMessages.inc({ outcome, reason })
    },
    webhookDelivery (outcome: 'delivered' | 'retrying' | 'failed'): void {
      m().webhookDeliveries.inc({ outcome })
    },
    gauges (o: { queueDepth?: () => number, tracked?: () => number, queueInFlight?: () => number }): void {
      if (o.queueDepth) queueDepth = o.queueDepth
      if (o.tracked) tracked = o.tracked
      if (o.queueInFlight) queueInFlight = o.queueInFlight
    }
  }
}

export type Metrics = ReturnType<typeof createMetrics>

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1'])

/** Who may scrape: a caller on this host always; anyone else with `Authorization: Bearer <METRICS_TOKEN>`. */
export function mayScrape (remote: string | undefined, authorization: string | undefined, token: string | undefined): boolean {
  if (remote !== undefined && LOOPBACK.has(remote)) return true
  if (token === undefined || authorization === undefined) return false
  const given = Buffer.from(authorization)
  const expected = Buffer.from(`Bearer ${token}`)
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/**
 * The request-duration histogram, counted here and read by prom-client's registry when scraped. prom-client's own
 * Histogram checks and hashes the labels on every observation, even through a kept labelled child, and every request
 * observes this one: a thirtieth of the cost of a status read. Here a series is one Map lookup away and an observation
 * is a count in its bucket. Routes are patterns and statuses few, so the series stay few.
 */
function requestHistogram (o: { name: string, help: string, buckets: number[] }) {
  interface Series { labels: { route: string, method: string, status: string }, counts: number[], sum: number, count: number }
  const series = new Map<string, Series>()
  return {
    name: o.name,
    help: o.help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    observe (route: string, method: string, status: number, seconds: number): void {
      const key = `${method} ${status} ${route}`
      let found = series.get(key)
      if (found === undefined) {
        found = { labels: { route, method, status: String(status) }, counts: o.buckets.map(() => 0), sum: 0, count: 0 }
        series.set(key, found)
      }
      // Counted in the first bucket it fits; buckets are made cumulative when read. Beyond the last, only +Inf.
      let i = 0
      while (i < o.buckets.length && seconds > o.buckets[i]!) i++
      if (i < o.buckets.length) found.counts[i]!++
      found.sum += seconds
      found.count++
    },
    /** What prom-client's registry reads: the values of a histogram as its own Histogram gives them. */
    get () {
      const values: Array<{ metricName: string, labels: Record<string, string | number>, value: number }> = []
      for (const { labels, counts, sum, count } of series.values()) {
        let cumulative = 0
        o.buckets.forEach((le, i) => {
          cumulative += counts[i]!
          values.push({ metricName: `${o.name}_bucket`, labels: { le, ...labels }, value: cumulative })
        })
        values.push({ metricName: `${o.name}_bucket`, labels: { le: '+Inf', ...labels }, value: count })
        values.push({ metricName: `${o.name}_sum`, labels, value: sum })
        values.push({ metricName: `${o.name}_count`, labels, value: count })
      }
      return { name: o.name, help: o.help, type: 'histogram', values, aggregator: 'sum' }
    },
    reset (): void {
      series.clear()
    }
  }
}
