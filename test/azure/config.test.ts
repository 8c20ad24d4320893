import { describe, expect, it } from 'vitest'
import { ConfigError, contentSafetyBlocklists, hasTokenProvider, loadConfig } from '../../src/config.ts'

/** The token-provider and Azure settings in the one config schema: defaults, inference, bounds and cross-checks. */

function configError (env: Record<string, string>): ConfigError {
  try {
    loadConfig(env)
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

describe('token provider settings', () => {
  it('defaults: env provider, an hour of caching, the secret name replicate-api-token', () => {
    const c = loadConfig({})
    expect(c).toMatchObject({ REPLICATE_TOKEN_PROVIDER: 'env', TOKEN_CACHE_SECONDS: 3600, TOKEN_FETCH_TIMEOUT_MS: 5000, REPLICATE_TOKEN_SECRET_NAME: 'replicate-api-token' })
    expect(hasTokenProvider(c)).toBe(false)
  })

  it('the provider is inferred from the one source that is set', () => {
    expect(loadConfig({ REPLICATE_API_TOKEN: 'r8_x' }).REPLICATE_TOKEN_PROVIDER).toBe('env')
    expect(loadConfig({ REPLICATE_API_TOKEN_FILE: '/run/secrets/replicate' }).REPLICATE_TOKEN_PROVIDER).toBe('file')
    expect(loadConfig({ AZURE_KEY_VAULT_URL: 'https://kv-flux.vault.azure.net' }).REPLICATE_TOKEN_PROVIDER).toBe('azure-key-vault')
    expect(hasTokenProvider(loadConfig({ AZURE_KEY_VAULT_URL: 'https://kv-flux.vault.azure.net' }))).toBe(true)
  })

  it('two sources without REPLICATE_TOKEN_PROVIDER is ambiguous; naming the provider settles it', () => {
    const err = configError({ REPLICATE_API_TOKEN: 'r8_x', AZURE_KEY_VAULT_URL: 'https://kv-flux.vault.azure.net' })
    expect(err.variables).toEqual(['REPLICATE_TOKEN_PROVIDER'])
    expect(err.message).toContain('REPLICATE_API_TOKEN, AZURE_KEY_VAULT_URL')
    expect(loadConfig({ REPLICATE_TOKEN_PROVIDER: 'azure-key-vault', REPLICATE_API_TOKEN: 'r8_x', AZURE_KEY_VAULT_URL: 'https://kv-flux.vault.azure.net' }).REPLICATE_TOKEN_PROVIDER).toBe('azure-key-vault')
  })

  it('a named provider needs its setting', () => {
    expect(configError({ REPLICATE_TOKEN_PROVIDER: 'file' }).variables).toEqual(['REPLICATE_API_TOKEN_FILE'])
    expect(configError({ REPLICATE_TOKEN_PROVIDER: 'azure-key-vault' }).variables).toEqual(['AZURE_KEY_VAULT_URL'])
    expect(configError({ REPLICATE_TOKEN_PROVIDER: 'vault' }).variables).toEqual(['REPLICATE_TOKEN_PROVIDER'])
  })

  it('production needs a configured provider: a token, a token file or a vault URL', () => {
    const err = configError({ NODE_ENV: 'production' })
    expect(err.variables).toEqual(['REPLICATE_API_TOKEN'])
    expect(err.message).toMatch(/REPLICATE_API_TOKEN is required in production.*REPLICATE_API_TOKEN_FILE or AZURE_KEY_VAULT_URL/)
    expect(loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN_FILE: '/run/secrets/replicate' }).REPLICATE_TOKEN_PROVIDER).toBe('file')
    expect(loadConfig({ NODE_ENV: 'production', AZURE_KEY_VAULT_URL: 'https://kv-flux.vault.azure.net' }).REPLICATE_TOKEN_PROVIDER).toBe('azure-key-vault')
  })

  it('bounds: an https vault URL, a valid secret name, a cache time of 1 s to a day', () => {
    expect(configError({ AZURE_KEY_VAULT_URL: 'http://kv-flux.vault.azure.net' }).variables).toEqual(['AZURE_KEY_VAULT_URL'])
    expect(configError({ REPLICATE_TOKEN_SECRET_NAME: 'replicate_token' }).variables).toEqual(['REPLICATE_TOKEN_SECRET_NAME'])
    expect(configError({ TOKEN_CACHE_SECONDS: '0' }).variables).toEqual(['TOKEN_CACHE_SECONDS'])
    expect(configError({ TOKEN_CACHE_SECONDS: '86401' }).variables).toEqual(['TOKEN_CACHE_SECONDS'])
    expect(loadConfig({ TOKEN_CACHE_SECONDS: '300', REPLICATE_TOKEN_SECRET_NAME: 'flux-replicate-prod' })).toMatchObject({ TOKEN_CACHE_SECONDS: 300, REPLICATE_TOKEN_SECRET_NAME: 'flux-replicate-prod' })
  })

  it('the Azure credential: managed identity in production, DefaultAzureCredential elsewhere, unless set', () => {
    expect(loadConfig({}).AZURE_CREDENTIAL).toBe('default')
    expect(loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN: 'r8_x' }).AZURE_CREDENTIAL).toBe('managed-identity')
    expect(loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN: 'r8_x', AZURE_CREDENTIAL: 'default' }).AZURE_CREDENTIAL).toBe('default')
    expect(configError({ AZURE_CREDENTIAL: 'cli' }).variables).toEqual(['AZURE_CREDENTIAL'])
    expect(configError({ AZURE_CLIENT_ID: 'not-a-guid' }).variables).toEqual(['AZURE_CLIENT_ID'])
  })
})

describe('moderation settings', () => {
  it('defaults: local provider; for azure: fail closed, local first, block at 4, 3 s timeout, no images', () => {
    expect(loadConfig({})).toMatchObject({
      MODERATION_PROVIDER: 'local',
      MODERATION_FAILURE_MODE: 'closed',
      MODERATION_LOCAL_FIRST: true,
      AZURE_CONTENT_SAFETY_TIMEOUT_MS: 3000,
      AZURE_CONTENT_SAFETY_THRESHOLD_HATE: 4,
      AZURE_CONTENT_SAFETY_THRESHOLD_SELF_HARM: 4,
      AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL: 4,
      AZURE_CONTENT_SAFETY_THRESHOLD_VIOLENCE: 4,
      AZURE_CONTENT_SAFETY_IMAGES: false
    })
  })

  it('azure needs an https endpoint', () => {
    expect(configError({ MODERATION_PROVIDER: 'azure' }).variables).toEqual(['AZURE_CONTENT_SAFETY_ENDPOINT'])
    expect(configError({ MODERATION_PROVIDER: 'azure', AZURE_CONTENT_SAFETY_ENDPOINT: 'http://cs.example.com' }).variables).toEqual(['AZURE_CONTENT_SAFETY_ENDPOINT'])
    expect(loadConfig({ MODERATION_PROVIDER: 'azure', AZURE_CONTENT_SAFETY_ENDPOINT: 'https://cs-flux.cognitiveservices.azure.com/' }).MODERATION_PROVIDER).toBe('azure')
  })

  it('thresholds are 1–7, the failure mode closed or open, booleans as true/false', () => {
    expect(configError({ AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL: '0', AZURE_CONTENT_SAFETY_THRESHOLD_HATE: '8' }).variables.sort())
      .toEqual(['AZURE_CONTENT_SAFETY_THRESHOLD_HATE', 'AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL'])
    expect(configError({ MODERATION_FAILURE_MODE: 'ignore' }).variables).toEqual(['MODERATION_FAILURE_MODE'])
    expect(loadConfig({ MODERATION_FAILURE_MODE: 'open', MODERATION_LOCAL_FIRST: 'false', AZURE_CONTENT_SAFETY_IMAGES: 'true', AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL: '2' }))
      .toMatchObject({ MODERATION_FAILURE_MODE: 'open', MODERATION_LOCAL_FIRST: false, AZURE_CONTENT_SAFETY_IMAGES: true, AZURE_CONTENT_SAFETY_THRESHOLD_SEXUAL: 2 })
  })

  it('blocklists are a comma-separated list of names', () => {
    expect(contentSafetyBlocklists(loadConfig({}))).toEqual([])
    expect(contentSafetyBlocklists(loadConfig({ AZURE_CONTENT_SAFETY_BLOCKLISTS: 'brand-names, internal_codenames,x.y' }))).toEqual(['brand-names', 'internal_codenames', 'x.y'])
    expect(configError({ AZURE_CONTENT_SAFETY_BLOCKLISTS: 'ok,not ok' }).variables).toEqual(['AZURE_CONTENT_SAFETY_BLOCKLISTS'])
  })
})
