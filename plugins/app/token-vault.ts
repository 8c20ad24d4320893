import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { hasTokenProvider } from '../../src/config.ts'
import { createIdentityCredential, lazyCredential } from '../../src/vault/azure-credential.ts'
import { keyVaultSecretSource } from '../../src/vault/key-vault-source.ts'
import { envSecretSource, fileSecretSource } from '../../src/vault/sources.ts'
import type { SecretSource } from '../../src/vault/sources.ts'
import { createTokenVault } from '../../src/vault/token-vault.ts'
import type { TokenVault } from '../../src/vault/token-vault.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** The Replicate token and its source; null when no provider is configured and the local emulator stands in. */
    tokenVault: TokenVault | null
  }
}

/**
 * The Replicate token from the provider REPLICATE_TOKEN_PROVIDER names: the environment, a mounted file, or an
 * Azure Key Vault secret. The first read starts when the server is ready, without holding up start-up: a vault
 * that is down leaves the service up, with readiness at 503, until the token can be read.
 */
export default fp(async function tokenVault (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  if (!hasTokenProvider(config)) {
    fastify.decorate('tokenVault', null)
    return
  }
  let source: SecretSource
  switch (config.REPLICATE_TOKEN_PROVIDER) {
    case 'file':
      source = fileSecretSource(config.REPLICATE_API_TOKEN_FILE!)
      break
    case 'azure-key-vault':
      source = keyVaultSecretSource({
        vaultUrl: config.AZURE_KEY_VAULT_URL!,
        secretName: config.REPLICATE_TOKEN_SECRET_NAME,
        credential: overrides.azure?.credential ?? lazyCredential(() => createIdentityCredential({ kind: config.AZURE_CREDENTIAL, clientId: config.AZURE_CLIENT_ID })),
        clientOptions: { ...overrides.azure?.clientOptions }
      })
      break
    default:
      source = envSecretSource(config.REPLICATE_API_TOKEN!)
  }
  const log = fastify.log.child({ component: 'token-vault' })
  const vault = createTokenVault({
    source,
    cacheSeconds: config.TOKEN_CACHE_SECONDS,
    fetchTimeoutMs: config.TOKEN_FETCH_TIMEOUT_MS,
    log,
    ...overrides.tokenVault
  })
  fastify.decorate('tokenVault', vault)
  fastify.addHook('onReady', async () => {
    // Not awaited: the outcome shows in readiness and the log.
    void vault.ensure()
  })
}, { name: 'token-vault' })
