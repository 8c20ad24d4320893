import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type { FastifyPluginAsync } from 'fastify'
import type * as OtelApi from '@opentelemetry/api'
import type { Resource } from '@opentelemetry/resources'

/**
 * OpenTelemetry tracing, loaded only when APPLICATIONINSIGHTS_CONNECTION_STRING or OTEL_EXPORTER_OTLP_ENDPOINT is
 * set. The service's own code calls this facade, which does nothing (and imports nothing) until tracing starts; then
 * each call is a real span, and `traceHeaders()` gives the W3C `traceparent` to send upstream.
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

/** Where spans go: an OTLP/HTTP collector, or Application Insights through Azure Monitor's distro. */
export type TelemetryTarget =
  | { kind: 'otlp', endpoint: string }
  | { kind: 'azure-monitor', connectionString: string }

type Api = typeof OtelApi

/**
 * Starts tracing once per process; later calls get the same. `otlp` sends to `endpoint` (an OTLP/HTTP base URL);
 * `azure-monitor` sends to the connection string's IngestionEndpoint and nowhere else.
 */
export function startTelemetry (o: { target: TelemetryTarget, serviceName: string, version: string }): Promise<Telemetry> {
  state.started ??= (async () => {
    const api = await import('@opentelemetry/api')
    const { resourceFromAttributes } = await import('@opentelemetry/resources')
    const resource = resourceFromAttributes({ 'service.name': o.serviceName, 'service.version': o.version })
    const started = o.target.kind === 'azure-monitor'
      ? await startAzureMonitor(api, o.target.connectionString, resource)
      : await startOtlp(o.target.endpoint, resource)
    const tracer = started.provider.getTracer('flux-gateway', o.version)
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
    const { FastifyOtelInstrumentation } = await import('@fastify/otel')
    const instrumentation = new FastifyOtelInstrumentation()
    instrumentation.setTracerProvider(started.provider)
    return {
      plugin: instrumentation.plugin() as unknown as FastifyPluginAsync,
      shutdown: started.flush
    }
  })()
  return state.started
}

interface Started {
  provider: OtelApi.TracerProvider
  /** Sends what is buffered; tracing goes on (a process may build another app). */
  flush: () => Promise<void>
}

async function startOtlp (endpoint: string, resource: Resource): Promise<Started> {
  const { NodeTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-node')
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, '')}/v1/traces` }), { scheduledDelayMillis: 1000 })]
  })
  // The global provider, AsyncLocalStorage context and W3C trace-context propagation.
  provider.register()
  return { provider, flush: () => provider.forceFlush() }
}

/**
 * Azure Monitor's distro (`useAzureMonitor`), kept to the connection string's IngestionEndpoint. Out of the box it
 * also talks to other hosts; each of those is switched off here, before the distro is loaded, because most of
 * them are read when its objects are built:
 * - the Azure VM resource detector asks the instance metadata service (IMDS, 169.254.169.254);
 * - statsbeat reports the SDK's own usage to Microsoft's Application Insights resources and asks IMDS too;
 * - every exporter polls Microsoft's dynamic-settings service ("OneSettings") a few seconds after it is built;
 * - live metrics streams to the connection string's LiveEndpoint; the browser SDK loader injects a CDN script.
 * If a later distro moves what is switched off here, start-up fails rather than send anywhere else.
 */
async function startAzureMonitor (api: Api, connectionString: string, resource: Resource): Promise<Started> {
  // APPLICATION_INSIGHTS_NO_STATSBEAT: the exporter's base class reads it when built; set, it tracks no statsbeat
  // at all (neither the network nor the long-interval kind, which are what go to Microsoft's own ingestion
  // endpoints and ask IMDS which VM this is) and starts no customer SDK stats either.
  process.env.APPLICATION_INSIGHTS_NO_STATSBEAT = 'true'
  // APPLICATIONINSIGHTS_STATSBEAT_DISABLED: the newer name, which turns off only the "non-essential" statsbeat;
  // set as well so a distro that drops the old name still starts with the least of it.
  process.env.APPLICATIONINSIGHTS_STATSBEAT_DISABLED = 'true'
  // APPLICATIONINSIGHTS_SDKSTATS_DISABLED: the exporter's "customer SDK stats" (counts of items sent and dropped,
  // exported as extra metrics); nothing we need, and each is one more timer and request.
  process.env.APPLICATIONINSIGHTS_SDKSTATS_DISABLED = 'true'
  // OTEL_NODE_RESOURCE_DETECTORS: the detectors the SDK runs for the resource. `azure_vm` (or `all`) would ask
  // IMDS; the environment, host and OS ones read only local state. Set, not defaulted: an inherited `all` must not win.
  process.env.OTEL_NODE_RESOURCE_DETECTORS = 'env,host,os'
  // APPLICATIONINSIGHTS_CONFIGURATION_CONTENT: the distro merges a JSON configuration over the options below
  // (from this variable, APPLICATIONINSIGHTS_CONFIGURATION_FILE or an applicationinsights.json beside the package);
  // an empty one keeps a stray file from turning live metrics or the browser loader back on.
  process.env.APPLICATIONINSIGHTS_CONFIGURATION_CONTENT = '{}'

  // The distro's own modules, resolved from where the distro is installed (the copies it really loads).
  const distroUrl = import.meta.resolve('@azure/monitor-opentelemetry')
  const requireFromDistro = createRequire(distroUrl)
  // The distro runs the Azure VM detector while it builds its configuration, whatever OTEL_NODE_RESOURCE_DETECTORS
  // says, unless an App Service, Functions, Container Apps or AKS variable is set; no option skips it. The
  // detector is one shared object, so its `detect` is replaced by one that finds nothing, without a request.
  const azureDetectors = requireFromDistro('@opentelemetry/resource-detector-azure') as { azureVmDetector?: { detect: unknown } }
  if (typeof azureDetectors.azureVmDetector?.detect !== 'function') throw new Error('telemetry: cannot switch off the Azure VM resource detector of this @azure/monitor-opentelemetry')
  azureDetectors.azureVmDetector.detect = () => ({ attributes: {} })
  // Each exporter starts the OneSettings poll when built, with no option or variable to stop it; the process-wide
  // manager that owns it is stopped right after the distro has built its exporters (its first poll waits 5-15 s).
  const exporterDir = path.dirname(requireFromDistro.resolve('@azure/monitor-opentelemetry-exporter/package.json'))
  const settingsModule = pathToFileURL(path.join(exporterDir, 'dist', 'esm', '_configuration', 'configurationManager.js')).href
  const settings = await import(settingsModule).catch(() => undefined) as { ConfigurationManager?: { getInstance: () => { shutdown: () => void } } } | undefined
  if (typeof settings?.ConfigurationManager?.getInstance !== 'function') throw new Error('telemetry: cannot stop the settings poll of this @azure/monitor-opentelemetry-exporter')

  const { useAzureMonitor } = await import('@azure/monitor-opentelemetry')
  useAzureMonitor({
    azureMonitorExporterOptions: { connectionString },
    resource,
    // Off: it would open a stream to the LiveEndpoint and poll it every few seconds.
    enableLiveMetrics: false,
    browserSdkLoaderOptions: { enabled: false },
    // The spans are ours (and @fastify/otel's), as on the OTLP path. The distro's http instrumentation would add a
    // second server span per request (so two requests in Application Insights); the rest are for clients this
    // service does not use, or (the Azure SDKs') spans the OTLP path does not have either.
    instrumentationOptions: {
      http: { enabled: false },
      azureSdk: { enabled: false },
      mongoDb: { enabled: false },
      mySql: { enabled: false },
      postgreSql: { enabled: false },
      redis: { enabled: false },
      redis4: { enabled: false },
      bunyan: { enabled: false },
      winston: { enabled: false },
      console: { enabled: false }
    }
  })
  settings.ConfigurationManager.getInstance().shutdown()

  // The distro registered its providers globally; ours are those.
  const provider = api.trace.getTracerProvider()
  const flushable = (p: unknown): Promise<void> => {
    const target = (p as { getDelegate?: () => unknown }).getDelegate?.() ?? p
    return typeof (target as { forceFlush?: unknown }).forceFlush === 'function' ? (target as { forceFlush: () => Promise<void> }).forceFlush() : Promise.resolve()
  }
  return {
    provider,
    flush: async () => {
      // Spans, and the request and dependency metrics the distro derives from them.
      await Promise.all([flushable(provider), flushable(api.metrics.getMeterProvider())])
    }
  }
}
