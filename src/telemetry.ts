import type { FastifyPluginAsync } from 'fastify'

/**
 * OpenTelemetry tracing, loaded only when OTEL_EXPORTER_OTLP_ENDPOINT is set. The service's own code calls this
 * facade, which does nothing (and imports nothing) until tracing starts; then each call is a real span, and
 * `traceHeaders()` gives the W3C `traceparent` to send upstream.
 */
export type SpanAttributes = Record<string, string | number | boolean>
export interface SpanHandle { set: (key: string, value: string | number | boolean) => void }

interface Tracing {
  span: <T>(name: string, attributes: SpanAttributes, fn: (span: SpanHandle) => Promise<T>) => Promise<T>
  headers: () => Record<string, string>
}

const NOOP_SPAN: SpanHandle = { set: () => {} }
const off: Tracing = { span: (_name, _attributes, fn) => fn(NOOP_SPAN), headers: () => ({}) }
// Process-wide, not module-wide: a loader that evaluates this module twice (autoloaded plugins under a test runner)
// must still see the one tracer that was started.
const STATE = Symbol.for('flux-gateway.telemetry')
const state = ((globalThis as Record<symbol, unknown>)[STATE] ??= { tracing: off, started: undefined }) as { tracing: Tracing, started: Promise<Telemetry> | undefined }

/** Runs `fn` in a span named `name` (a child of the current one); an error marks the span and goes on. */
export function withSpan<T> (name: string, attributes: SpanAttributes, fn: (span: SpanHandle) => Promise<T>): Promise<T> {
  return state.tracing.span(name, attributes, fn)
}

/** The W3C trace-context headers of the current span, to propagate upstream; none while tracing is off. */
export function traceHeaders (): Record<string, string> {
  return state.tracing.headers()
}

export interface Telemetry {
  /** Fastify's request instrumentation; registered before any route. */
  plugin: FastifyPluginAsync
  /** Sends what is buffered and stops. */
  shutdown: () => Promise<void>
}

/** Starts tracing to `endpoint` (an OTLP/HTTP base URL) once per process; later calls get the same. */
export function startTelemetry (o: { endpoint: string, serviceName: string, version: string }): Promise<Telemetry> {
  state.started ??= (async () => {
    const api = await import('@opentelemetry/api')
    const { NodeTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-node')
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
    const { resourceFromAttributes } = await import('@opentelemetry/resources')
    const { FastifyOtelInstrumentation } = await import('@fastify/otel')
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ 'service.name': o.serviceName, 'service.version': o.version }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${o.endpoint.replace(/\/+$/, '')}/v1/traces` }), { scheduledDelayMillis: 1000 })]
    })
    // The global provider, AsyncLocalStorage context and W3C trace-context propagation.
    provider.register()
    const tracer = provider.getTracer('flux-gateway', o.version)
    state.tracing = {
      span: (name, attributes, fn) => tracer.startActiveSpan(name, { attributes }, async (span) => {
        try {
          return await fn({ set: (key, value) => { span.setAttribute(key, value) } })
        } catch (err) {
          span.recordException(err as Error)
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: (err as { code?: string }).code ?? (err as Error).name })
          throw err
        } finally {
          span.end()
        }
      }),
      headers: () => {
        const carrier: Record<string, string> = {}
        api.propagation.inject(api.context.active(), carrier)
        return carrier
      }
    }
    const instrumentation = new FastifyOtelInstrumentation()
    instrumentation.setTracerProvider(provider)
    return {
      plugin: instrumentation.plugin() as unknown as FastifyPluginAsync,
      shutdown: async () => {
        await provider.forceFlush()
      }
    }
  })()
  return state.started
}
