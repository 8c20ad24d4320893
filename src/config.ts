import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/**
 * Every setting of the service, read from the environment once at boot. The schema is the single
 * source: defaults, types and bounds live here, `.env.example` documents the same names, and a bad
 * value stops start-up with a message that names the variable.
 */
export const TOKEN_PROVIDERS = ['env', 'file', 'azure-key-vault'] as const
export type TokenProvider = typeof TOKEN_PROVIDERS[number]

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  /** Where the Replicate token comes from; when unset, inferred from which of the three sources below is set. */
  REPLICATE_TOKEN_PROVIDER: Type.Union(TOKEN_PROVIDERS.map((p) => Type.Literal(p)), { default: 'env' }),
  REPLICATE_API_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  REPLICATE_API_TOKEN_FILE: Type.Optional(Type.String({ minLength: 1 })),
  AZURE_KEY_VAULT_URL: Type.Optional(Type.String({ pattern: '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$' })),
  // Key Vault secret names: 1-127 letters, digits and dashes.
  REPLICATE_TOKEN_SECRET_NAME: Type.String({ pattern: '^[0-9A-Za-z-]{1,127}$', default: 'replicate-api-token' }),
  TOKEN_CACHE_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 3600 }),
  TOKEN_FETCH_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5_000 }),
  /** How the service signs in to Azure when no key is given; when unset, managed-identity in production, default elsewhere. */
  AZURE_CREDENTIAL: Type.Union([Type.Literal('managed-identity'), Type.Literal('default')], { default: 'default' }),
  /** Client id of a user-assigned managed identity (absent: the system-assigned one). */
  AZURE_CLIENT_ID: Type.Optional(Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' })),
  REPLICATE_BASE_URL: Type.String({ pattern: '^https?://[^\\s/]+', default: 'https://api.replicate.com/v1' }),
  REPLICATE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 120_000, default: 30_000 }),
  REPLICATE_MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 32 }),
  REPLICATE_CREATE_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 4096, default: 1024 }),
  REPLICATE_MAX_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 4 }),
  REPLICATE_CANCEL_AFTER: Type.String({ pattern: '^(\\d+h)?(\\d+m)?(\\d+s)?$|^\\d+$', minLength: 1, default: '5m' }),
  SYNC_WAIT_SECONDS: Type.Integer({ minimum: 1, maximum: 60, default: 60 }),
  EVENTS_HEARTBEAT_SECONDS: Type.Integer({ minimum: 1, maximum: 300, default: 15 }),
  DEFAULT_PLAN: Type.Union([Type.Literal('free'), Type.Literal('basic'), Type.Literal('premium'), Type.Literal('pro')], { default: 'free' }),
  MODERATION_PROVIDER: Type.Union([Type.Literal('local'), Type.Literal('azure')], { default: 'local' }),
  MODERATION_TERMS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  /** What a hosted moderation provider's outage or timeout means: refuse the request (closed) or let it through (open). */
  MODERATION_FAILURE_MODE: Type.Union([Type.Literal('closed'), Type.Literal('open')], { default: 'closed' }),
  /** Run the local term lists before a hosted provider, which is then not called for prompts they already refuse. */
  MODERATION_LOCAL_FIRST: Type.Boolean({ default: true }),
  AZURE_CONTENT_SAFETY_ENDPOINT: Type.Optional(Type.String({ pattern: '^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$' })),
  AZURE_CONTENT_SAFETY_KEY: Type.Optional(Type.String({ minLength: 1 })),
  AZURE_CONTENT_SAFETY_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 30_000, default: 3_000 }),
  // Severity at which a category blocks: the service answers 0, 2, 4 or 6, so 7 never blocks.
  AZURE_CONTENT_SAFETY_THRESHOLD_HATE: Type.Integer({ minimum: 1, maximum: 7, default: 4 }),
  AZURE_CONTENT_SAFETY_THRESHOLD_SELF_HARM: Type.Integer({ minimum: 1, maximum: 7, default: 4 }),
  AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL: Type.Integer({ minimum: 1, maximum: 7, default: 4 }),
  AZURE_CONTENT_SAFETY_THRESHOLD_VIOLENCE: Type.Integer({ minimum: 1, maximum: 7, default: 4 }),
  /** Comma-separated blocklist names; a hit on any of them blocks. */
  AZURE_CONTENT_SAFETY_BLOCKLISTS: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.~-]{1,64}(\\s*,\\s*[A-Za-z0-9_.~-]{1,64})*$' })),
  /** Also send image-to-image input images to image:analyze. */
  AZURE_CONTENT_SAFETY_IMAGES: Type.Boolean({ default: false }),
  IMAGE_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 50 * 1024 * 1024, default: 8 * 1024 * 1024 }),
  IMAGE_FETCH_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * 1024 * 1024, default: 64 * 1024 }),
  READINESS_CACHE_MS: Type.Integer({ minimum: 0, maximum: 300_000, default: 5_000 }),
  SHUTDOWN_DRAIN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 120_000, default: 0 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
  EMULATOR_TIME_SCALE: Type.Number({ exclusiveMinimum: 0, maximum: 100, default: 1 }),
  // --- tenants and durable state (API keys, ledger, idempotency, limits, kept images) ---
  STATE_SQLITE_PATH: Type.String({ minLength: 1, default: './data/flux-gateway.sqlite' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  REDIS_KEY_PREFIX: Type.String({ default: 'fgw:' }),
  IDEMPOTENCY_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 168, default: 24 }),
  REPLICATE_CREATE_RATE: Type.Integer({ minimum: 1, maximum: 100_000, default: 600 }),
  REPLICATE_CREATE_BURST: Type.Integer({ minimum: 1, maximum: 100_000, default: 60 }),
  REPLICATE_CREATE_QUEUE_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 10_000 }),
  REPLICATE_CREATE_QUEUE_SIZE: Type.Integer({ minimum: 0, maximum: 100_000, default: 200 }),
  IMAGE_STORAGE: Type.Union([Type.Literal('local'), Type.Literal('azure-blob')], { default: 'local' }),
  IMAGE_STORAGE_DIR: Type.String({ minLength: 1, default: './data/images' }),
  IMAGE_STORAGE_AZURE_ACCOUNT_URL: Type.Optional(Type.String({ pattern: '^https://' })),
  IMAGE_STORAGE_AZURE_CONNECTION_STRING: Type.Optional(Type.String({ minLength: 1 })),
  IMAGE_STORAGE_AZURE_CONTAINER: Type.String({ minLength: 3, maxLength: 63, default: 'flux-images' }),
  KEPT_IMAGE_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * 1024 * 1024, default: 20 * 1024 * 1024 }),
  PUBLIC_BASE_URL: Type.Optional(Type.String({ pattern: '^https?://[^\\s/]+' })),
  TRACKER_LEASE_MS: Type.Integer({ minimum: 1_000, maximum: 300_000, default: 10_000 }),
  /** Age after which a create left unrecorded by a dead process is looked for upstream (longer than any create can take). */
  CREATE_RECONCILE_AFTER_MS: Type.Integer({ minimum: 1_000, maximum: 86_400_000, default: 150_000 }),
  /** Ask Replicate to POST each finished prediction to <PUBLIC_BASE_URL>/v1/webhooks/replicate; the tracker then only polls as a fallback. */
  REPLICATE_WEBHOOKS: Type.Union([Type.Literal('off'), Type.Literal('on')], { default: 'off' }),
  /** The whsec_… key webhooks are signed with; absent, it is read once from Replicate. */
  REPLICATE_WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$' })),
  /** Development only: callers' webhooks may be http and point at loopback or private addresses (never cloud metadata). Refused in production. */
  WEBHOOK_ALLOW_INSECURE: Type.Boolean({ default: false }),
  // --- browsers ---
  /** Comma-separated exact origins that may call the API from a page (`*` only while authentication is off). */
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: '^\\s*[^\\s,]+\\s*(,\\s*[^\\s,]+\\s*)*$' })),
  /** The key output image URLs are signed with; absent, one is generated and kept in the store, shared by every instance. */
  IMAGE_URL_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  IMAGE_URL_TTL_SECONDS: Type.Integer({ minimum: 60, maximum: 7 * 86_400, default: 3600 }),
  /** The playground page at `/`. */
  PLAYGROUND: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'on' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  METRICS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535 })),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  OTEL_SERVICE_NAME: Type.String({ minLength: 1, default: 'flux-gateway' }),
  /**
   * Traces to Application Insights through Azure Monitor's OpenTelemetry distro instead of OTLP (this wins when both
   * are set). The key is the lowercase GUID the exporter accepts; `IngestionEndpoint` is the only host it sends to.
   */
  APPLICATIONINSIGHTS_CONNECTION_STRING: Type.Optional(Type.String({ pattern: '(^|;)\\s*InstrumentationKey=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\s*(;|$)' })),
  // --- the queue worker ---
  /** Consume generation requests from a Service Bus queue inside this HTTP process (`npm run worker` runs it alone). */
  WORKER: Type.Union([Type.Literal('off'), Type.Literal('on')], { default: 'off' }),
  /** Shared-key access (`Endpoint=sb://…;SharedAccessKeyName=…;SharedAccessKey=…`); absent: SERVICE_BUS_NAMESPACE with the identity. */
  SERVICE_BUS_CONNECTION_STRING: Type.Optional(Type.String({ pattern: '^Endpoint=sb://' })),
  /** The fully qualified namespace, e.g. `sb-flux.servicebus.windows.net`, signed in to with the service's identity. */
  SERVICE_BUS_NAMESPACE: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9.-]+$' })),
  SERVICE_BUS_QUEUE: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._/-]{1,260}$' })),
  /** Messages handled at once. */
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 8 }),
  /** Deliveries after which a message failing for a transient reason is dead-lettered instead of abandoned again. */
  WORKER_MAX_DELIVERIES: Type.Integer({ minimum: 1, maximum: 100, default: 5 }),
  /** The probe port (`/health/live`, `/health/ready`) of `npm run worker`. */
  WORKER_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3001 })
})

export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID'
  readonly variables: string[]
  constructor (problems: { variable: string, message: string }[]) {
    super(`Invalid configuration: ${problems.map((p) => `${p.variable} ${p.message}`).join('; ')}`)
    this.name = 'ConfigError'
    this.variables = problems.map((p) => p.variable)
  }
}

/**
 * Reads the settings from `env` (process.env by default); throws ConfigError naming each bad variable.
 * `serving: false` is for tools that never call Replicate (the keys command): they need no token.
 */
export function loadConfig (env: Record<string, string | undefined> = process.env, opts: { serving?: boolean } = {}): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    // An empty variable means "not set", as in most .env tooling.
    if (value !== undefined && value !== '') raw[key] = value
  }
  const inferred = inferProviders(raw)
  if (inferred.problem) throw new ConfigError([inferred.problem])
  const withDefaults = Value.Default(ConfigSchema, raw)
  const converted = Value.Convert(ConfigSchema, withDefaults)
  if (!Value.Check(ConfigSchema, converted)) {
    const problems = new Map<string, string>()
    for (const error of Value.Errors(ConfigSchema, converted)) {
      const variable = error.path.replace(/^\//, '')
      if (!problems.has(variable)) problems.set(variable, `is invalid (${error.message}; got ${JSON.stringify((converted as Record<string, unknown>)[variable])})`)
    }
    throw new ConfigError([...problems].map(([variable, message]) => ({ variable, message })))
  }
  const config = converted as Config
  const problems = crossFieldProblems(config, opts.serving ?? true)
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/** The token provider and Azure credential when not set: what the other variables say, so simple setups need neither. */
function inferProviders (raw: Record<string, unknown>): { problem?: { variable: string, message: string } } {
  if (raw.REPLICATE_TOKEN_PROVIDER === undefined) {
    const sources: Array<[string, TokenProvider]> = [['REPLICATE_API_TOKEN', 'env'], ['REPLICATE_API_TOKEN_FILE', 'file'], ['AZURE_KEY_VAULT_URL', 'azure-key-vault']]
    const set = sources.filter(([variable]) => raw[variable] !== undefined)
    if (set.length > 1) {
      return { problem: { variable: 'REPLICATE_TOKEN_PROVIDER', message: `is required when more than one token source is set (${set.map(([v]) => v).join(', ')}): choose env, file or azure-key-vault` } }
    }
    raw.REPLICATE_TOKEN_PROVIDER = set[0]?.[1] ?? 'env'
  }
  // Production signs in with one deterministic identity; DefaultAzureCredential's chain could pick up a stray `az login`.
  raw.AZURE_CREDENTIAL ??= raw.NODE_ENV === 'production' ? 'managed-identity' : 'default'
  return {}
}

function crossFieldProblems (config: Config, serving: boolean): Array<{ variable: string, message: string }> {
  const problems: Array<{ variable: string, message: string }> = []
  const provider = config.REPLICATE_TOKEN_PROVIDER
  if (provider === 'file' && !config.REPLICATE_API_TOKEN_FILE) {
    problems.push({ variable: 'REPLICATE_API_TOKEN_FILE', message: 'is required when REPLICATE_TOKEN_PROVIDER is file' })
  }
  if (provider === 'azure-key-vault' && !config.AZURE_KEY_VAULT_URL) {
    problems.push({ variable: 'AZURE_KEY_VAULT_URL', message: 'is required when REPLICATE_TOKEN_PROVIDER is azure-key-vault' })
  }
  if (serving && provider === 'env' && !config.REPLICATE_API_TOKEN && config.NODE_ENV === 'production') {
    problems.push({
      variable: 'REPLICATE_API_TOKEN',
      message: 'is required in production (the local Replicate emulator only runs outside production), unless the token comes from REPLICATE_API_TOKEN_FILE or AZURE_KEY_VAULT_URL'
    })
  }
  if (config.MODERATION_PROVIDER === 'azure' && !config.AZURE_CONTENT_SAFETY_ENDPOINT) {
    problems.push({ variable: 'AZURE_CONTENT_SAFETY_ENDPOINT', message: 'is required when MODERATION_PROVIDER is azure' })
  }
  if (config.REPLICATE_WEBHOOKS === 'on' && !config.PUBLIC_BASE_URL) {
    problems.push({ variable: 'PUBLIC_BASE_URL', message: 'is required when REPLICATE_WEBHOOKS is on: Replicate posts to <PUBLIC_BASE_URL>/v1/webhooks/replicate' })
  }
  if (config.WEBHOOK_ALLOW_INSECURE && config.NODE_ENV === 'production') {
    problems.push({ variable: 'WEBHOOK_ALLOW_INSECURE', message: 'must not be true in production: it lets callers aim webhooks at http and at private addresses' })
  }
  if (config.WORKER === 'on') problems.push(...workerProblems(config))
  for (const origin of corsOrigins(config).origins) {
    let parsed: URL | undefined
    try { parsed = new URL(origin) } catch { /* reported below */ }
    if (!parsed || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
      problems.push({ variable: 'CORS_ORIGINS', message: `has ${JSON.stringify(origin)}, which is not an exact origin like https://app.example.com (scheme, host and port only, lowercase)` })
    }
  }
  if (corsOrigins(config).any && config.NODE_ENV === 'production') {
    problems.push({ variable: 'CORS_ORIGINS', message: 'may be * only while authentication is off, which it never is in production: list the origins' })
  }
  return problems
}

/** What the queue worker needs: a queue, and a connection string or a namespace for the identity. */
export function workerProblems (config: Config): Array<{ variable: string, message: string }> {
  const problems: Array<{ variable: string, message: string }> = []
  if (!config.SERVICE_BUS_QUEUE) problems.push({ variable: 'SERVICE_BUS_QUEUE', message: 'is required when the queue worker runs' })
  if (!config.SERVICE_BUS_CONNECTION_STRING && !config.SERVICE_BUS_NAMESPACE) {
    problems.push({ variable: 'SERVICE_BUS_NAMESPACE', message: 'or SERVICE_BUS_CONNECTION_STRING is required when the queue worker runs' })
  }
  return problems
}

/** CORS_ORIGINS parsed: `*` (any origin, only honoured while authentication is off) and the exact origins listed. */
export function corsOrigins (config: Config): { any: boolean, origins: string[] } {
  const entries = (config.CORS_ORIGINS ?? '').split(',').map((o) => o.trim()).filter((o) => o !== '')
  return { any: entries.includes('*'), origins: entries.filter((o) => o !== '*') }
}

/** True when some token provider is configured; otherwise (outside production) the local emulator stands in. */
export function hasTokenProvider (config: Config): boolean {
  return config.REPLICATE_TOKEN_PROVIDER !== 'env' || config.REPLICATE_API_TOKEN !== undefined
}

/** The blocklist names in AZURE_CONTENT_SAFETY_BLOCKLISTS. */
export function contentSafetyBlocklists (config: Config): string[] {
  return (config.AZURE_CONTENT_SAFETY_BLOCKLISTS ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '')
}
