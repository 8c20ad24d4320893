import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createReplicateClient } from '../../src/replicate/client.ts'
import type { ReplicateClient, TokenSource } from '../../src/replicate/client.ts'

export interface UpstreamInfo {
  /** The Replicate API base URL in use (never with credentials). */
  baseUrl: string
  /** True when the local emulator stands in for Replicate (no token, not production). */
  emulated: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    replicate: ReplicateClient
    upstream: UpstreamInfo
  }
}

/**
 * The Replicate client, one per process. Its token comes from the token vault, which re-reads it after a 401 so
 * a rotated token is picked up without a restart. With no token provider outside production, the local emulator
 * is started in-process and the client pointed at it, so the service runs with nothing configured.
 */
export default fp(async function replicate (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  let baseUrl = config.REPLICATE_BASE_URL
  let token: string | TokenSource
  let emulated = false
  if (fastify.tokenVault) {
    token = fastify.tokenVault.tokenSource
  } else {
    if (config.NODE_ENV === 'production') throw new Error('A Replicate token provider is required in production')
    // Loaded only here, so a production process never even imports the emulator.
    const { startEmulator } = await import('../../src/emulator/index.ts')
    const emulator = await startEmulator({ timeScale: config.EMULATOR_TIME_SCALE, ...overrides.emulator })
    baseUrl = emulator.baseUrl
    token = emulator.token
    emulated = true
    fastify.log.warn({ baseUrl }, 'no Replicate token is configured (REPLICATE_API_TOKEN, REPLICATE_API_TOKEN_FILE or AZURE_KEY_VAULT_URL): using the local Replicate emulator, which makes synthetic images')
    fastify.addHook('onClose', async () => { await emulator.close() })
  }
  const client = createReplicateClient({
    token,
    baseUrl,
    timeoutMs: config.REPLICATE_TIMEOUT_MS,
    connections: config.REPLICATE_MAX_CONNECTIONS,
    createConnections: config.REPLICATE_CREATE_CONNECTIONS,
    retry: { maxAttempts: config.REPLICATE_MAX_RETRIES + 1 },
    userAgent: 'flux-gateway',
    logger: fastify.log.child({ component: 'replicate' }),
    onAttempt: fastify.metrics.replicateAttempt,
    ...overrides.replicate
  })
  fastify.decorate('replicate', client)
  fastify.decorate('upstream', { baseUrl, emulated })
  fastify.addHook('onClose', async () => { await client.close() })
}, { name: 'replicate', dependencies: ['token-vault', 'metrics'] })
