import { readFileSync } from 'node:fs'
import path from 'node:path'
import autoload from '@fastify/autoload'
import Fastify, { LogController } from 'fastify'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.ts'
import { requestIdFor } from './request-id.ts'
import { lazyRequestLogger } from './request-logger.ts'
import type { LineSink } from './log-stream.ts'
import { startTelemetry } from './telemetry.ts'
import type { TelemetryTarget } from './telemetry.ts'
import { buildValidatorCompiler } from './validation.ts'
import { buildSerializerCompiler } from './serialization.ts'
import { withoutSignature } from './tenancy/image-urls.ts'
import type { ModerationProvider } from './moderation/types.ts'
import type { ReplicateClientOptions } from './replicate/client.ts'
import type { SafeFetcherOptions, SafePosterOptions } from './net/safe-fetch.ts'
import type { TokenCredential } from '@azure/core-auth'
import type { AzureClientOptions } from './vault/key-vault-source.ts'
import type { TokenVaultOptions } from './vault/token-vault.ts'
import type { TenancyOverrides } from './tenancy/overrides.ts'
import type { WebhookDispatcherOptions } from './webhooks/dispatcher.ts'

const root = path.join(import.meta.dirname, '..')
const VERSION = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version

/** Test and embedding seams. They come in through code only, never through the environment. */
export interface AppOverrides {
  /** Extra options for the Replicate client (e.g. a recording `sleep`, a token source). */
  replicate?: Partial<ReplicateClientOptions>
  moderation?: ModerationProvider
  /** Options for fetching image-to-image URLs (e.g. `allowAddresses` for a loopback test server). */
  imageFetch?: Partial<SafeFetcherOptions>
  /** Options for the in-process emulator started when no token is configured. */
  emulator?: Record<string, unknown>
  /**
   * Azure SDK seams for Key Vault and Content Safety: a credential used instead of the identity library, and
   * transport options (e.g. an `httpClient` that sends to a loopback fake, `retryOptions` without delays).
   */
  azure?: { credential?: TokenCredential, clientOptions?: AzureClientOptions }
  /** The token vault's clock and backoffs. */
  tokenVault?: Partial<Pick<TokenVaultOptions, 'now' | 'failureBackoffMs' | 'rejectedRecheckMs'>>
  /** Tenancy seams: a ready store or image storage, and tracker timings. */
  tenancy?: TenancyOverrides
  /** How long, while no key has ever existed, the answer is trusted before the store is asked again. */
  auth?: { keysRecheckMs?: number, keyCacheMs?: number }
  /**
   * The queue worker's reply webhooks (e.g. `allowAddresses` and `http:` for a loopback test receiver), and how it
   * waits out a retry backoff (a recording sleep).
   */
  worker?: { webhook?: SafePosterOptions, sleep?: (ms: number, signal: AbortSignal) => Promise<void> }
  /** Callers' webhooks: the poster's options (a lookup), and the dispatcher's clock, waits and sweep. */
  webhooks?: { poster?: SafePosterOptions } & Partial<Pick<WebhookDispatcherOptions, 'sleep' | 'now' | 'sweepMs' | 'leaseMs' | 'inlineWaitMs' | 'instanceId'>>
}

export interface AppOptions {
  config: Config
  overrides?: AppOverrides
  /** `probes`: only /health, no OpenAPI document or docs page (the worker on its own); the services are the same. Default `all`. */
  routes?: 'all' | 'probes'
  /**
   * `generate`: @fastify/swagger builds the OpenAPI document from the route schemas (`npm run openapi`, and the test
   * that keeps openapi/ current). Default `committed`: the service serves openapi/openapi.json, that same document as
   * committed, and does not load the generator at start.
   */
  openapi?: 'committed' | 'generate'
}

const LOUD_LEVELS = new Set(['debug', 'trace'])

/** Server options shared by `npm start` and the tests, so both run the same stack. */
export function serverOptions (config: Config, logStream?: LineSink): FastifyServerOptions {
  return {
    logger: {
      level: config.LOG_LEVEL,
      ...(logStream ? { stream: logStream } : {}),
      serializers: {
        // What pino's default says of a request; the headers only at debug, where the redaction below keeps
        // credentials out of them.
        req: (req) => ({
          method: req.method,
          url: withoutSignature(req.url),
          remoteAddress: req.ip,
          ...(LOUD_LEVELS.has(config.LOG_LEVEL) ? { headers: { ...req.headers } } : {})
        })
      },
      // Secrets never reach the log, whatever a caller or upstream puts where.
      redact: {
        paths: [
          'req.headers.authorization',
          'req.headers.cookie',
          'req.headers["x-api-key"]',
          'headers.authorization',
          '*.token',
          '*.apiToken',
          'token',
          'REPLICATE_API_TOKEN',
          'config.REPLICATE_API_TOKEN',
          'AZURE_CONTENT_SAFETY_KEY',
          'config.AZURE_CONTENT_SAFETY_KEY',
          'REPLICATE_WEBHOOK_SECRET',
          'config.REPLICATE_WEBHOOK_SECRET',
          'METRICS_TOKEN',
          'config.METRICS_TOKEN',
          'APPLICATIONINSIGHTS_CONNECTION_STRING',
          'config.APPLICATIONINSIGHTS_CONNECTION_STRING',
          'req.headers["ocp-apim-subscription-key"]',
          '*.apiKey'
        ],
        censor: '[redacted]'
      }
    },
    // Off, so genReqId always runs: with a header name Fastify would take the caller's value as it is.
    requestIdHeader: false,
    // One line per request, written when it ends (plugins/app/http.ts), instead of Fastify's two.
    logController: new LogController({ requestIdLogLabel: 'request_id', disableRequestLogging: true }),
    genReqId: (req) => requestIdFor(req.headers),
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: config.BODY_LIMIT_BYTES,
    connectionTimeout: 0,
    requestTimeout: 120_000,
    keepAliveTimeout: 72_000,
    // Closing is answered by our own hook (plugins/app/http.ts), as problem+json.
    return503OnClosing: false,
    schemaController: {
      compilersFactory: {
        buildValidator: buildValidatorCompiler,
        buildSerializer: buildSerializerCompiler
      }
    },
    ajv: { customOptions: { allErrors: true } }
  }
}

/** Builds the app without listening. `logStream` receives the JSON log lines (tests capture them). */
export async function buildApp (opts: AppOptions, logStream?: LineSink): Promise<FastifyInstance> {
  const app = Fastify(serverOptions(opts.config, logStream)).withTypeProvider<TypeBoxTypeProvider>()
  const target = telemetryTarget(opts.config)
  if (target !== undefined) {
    if (target.kind === 'azure-monitor' && opts.config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) {
      app.log.warn('APPLICATIONINSIGHTS_CONNECTION_STRING is set: traces go to Azure Monitor, OTEL_EXPORTER_OTLP_ENDPOINT is not used')
    }
    // Before any route, so every request is traced; the SDK is imported only here.
    const telemetry = await startTelemetry({ target, serviceName: opts.config.OTEL_SERVICE_NAME, version: VERSION })
    await app.register(telemetry.plugin)
    app.addHook('onClose', telemetry.shutdown)
  }
  await app.register(fp(serviceApp), opts)
  return app
}

/** Where traces go: Application Insights when its connection string is set, else an OTLP collector, else nowhere. */
function telemetryTarget (config: Config): TelemetryTarget | undefined {
  if (config.APPLICATIONINSIGHTS_CONNECTION_STRING !== undefined) return { kind: 'azure-monitor', connectionString: config.APPLICATIONINSIGHTS_CONNECTION_STRING }
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined) return { kind: 'otlp', endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT }
  return undefined
}

/** The whole service as one plugin: third-party setup, then our services, then the routes. */
export async function serviceApp (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  // The OpenAPI document and its docs page belong to the API; a probes-only process has neither.
  if (opts.routes !== 'probes') await fastify.register(autoload, { dir: path.join(root, 'plugins', 'external'), options: opts, encapsulate: false })
  await fastify.register(autoload, { dir: path.join(root, 'plugins', 'app'), options: opts, encapsulate: false })
  await fastify.register(autoload, {
    dir: path.join(root, 'routes'),
    options: opts,
    autoHooks: true,
    cascadeHooks: true,
    ...(opts.routes === 'probes' ? { matchFilter: (file: string) => file.startsWith('/health/') } : {})
  })
}
