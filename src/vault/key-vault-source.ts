import type { TokenCredential } from '@azure/core-auth'
import type { HttpClient, PipelineRetryOptions } from '@azure/core-rest-pipeline'
import type { SecretClient } from '@azure/keyvault-secrets'
import type { SecretSource } from './sources.ts'

/** Transport options for Azure SDK clients. Tests pass a loopback `httpClient`; production passes nothing. */
export interface AzureClientOptions {
  httpClient?: HttpClient
  retryOptions?: PipelineRetryOptions
}

export interface KeyVaultSourceOptions {
  /** https://<vault>.vault.azure.net */
  vaultUrl: string
  secretName: string
  credential: TokenCredential
  clientOptions?: AzureClientOptions
}

// A couple of quick retries for a blip; the vault read's own timeout bounds the whole exchange.
const DEFAULT_RETRY: PipelineRetryOptions = { maxRetries: 2, retryDelayInMs: 250, maxRetryDelayInMs: 2_000 }

/**
 * The Replicate token as a Key Vault secret, read with `@azure/keyvault-secrets` (loaded on first read). The
 * SDK handles the 401 challenge and caches the Entra token; the secret value is cached by the token vault.
 */
export function keyVaultSecretSource (opts: KeyVaultSourceOptions): SecretSource {
  const vaultUrl = opts.vaultUrl.replace(/\/+$/, '')
  let client: Promise<SecretClient> | undefined

  function secretClient (): Promise<SecretClient> {
    client ??= import('@azure/keyvault-secrets').then(({ SecretClient }) =>
      new SecretClient(vaultUrl, opts.credential, { retryOptions: DEFAULT_RETRY, ...opts.clientOptions }))
    return client
  }

  return {
    kind: 'azure-key-vault',
    location: `${vaultUrl} secret ${opts.secretName}`,
    rotatable: true,
    async read ({ signal }) {
      const secret = await (await secretClient()).getSecret(opts.secretName, { abortSignal: signal })
      return secret.value ?? ''
    }
  }
}
