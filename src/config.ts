import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'

/**
 * Every setting of the service, read from the environment once at boot. The schema is the single
 * source: defaults, types and bounds live here, `.env.example` documents the same names, and a bad
 * value stops start-up with a message that names the variable.
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], { default: 'development' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
  REPLICATE_API_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  REPLICATE_BASE_URL: Type.String({ pattern: '^https?://[^\\s/]+', default: 'https://api.replicate.com/v1' }),
  REPLICATE_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 120_000, default: 30_000 }),
  REPLICATE_MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1024, default: 32 }),
  REPLICATE_MAX_RETRIES: Type.Integer({ minimum: 0, maximum: 10, default: 4 }),
  REPLICATE_CANCEL_AFTER: Type.String({ pattern: '^(\\d+h)?(\\d+m)?(\\d+s)?$|^\\d+$', minLength: 1, default: '5m' }),
  SYNC_WAIT_SECONDS: Type.Integer({ minimum: 1, maximum: 60, default: 60 }),
  DEFAULT_PLAN: Type.Union([Type.Literal('free'), Type.Literal('basic'), Type.Literal('premium'), Type.Literal('pro')], { default: 'free' }),
  MODERATION_PROVIDER: Type.Union([Type.Literal('local')], { default: 'local' }),
  MODERATION_TERMS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  IMAGE_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 50 * 1024 * 1024, default: 8 * 1024 * 1024 }),
  IMAGE_FETCH_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 10_000 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * 1024 * 1024, default: 64 * 1024 }),
  READINESS_CACHE_MS: Type.Integer({ minimum: 0, maximum: 300_000, default: 5_000 }),
  SHUTDOWN_DRAIN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 120_000, default: 0 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 30_000 }),
  EMULATOR_TIME_SCALE: Type.Number({ exclusiveMinimum: 0, maximum: 100, default: 1 })
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

/** Reads the settings from `env` (process.env by default); throws ConfigError naming each bad variable. */
export function loadConfig (env: Record<string, string | undefined> = process.env): Config {
  const raw: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    // An empty variable means "not set", as in most .env tooling.
    if (value !== undefined && value !== '') raw[key] = value
  }
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
  if (config.NODE_ENV === 'production' && !config.REPLICATE_API_TOKEN) {
    throw new ConfigError([{ variable: 'REPLICATE_API_TOKEN', message: 'is required in production (the local Replicate emulator only runs outside production)' }])
  }
  return config
}
