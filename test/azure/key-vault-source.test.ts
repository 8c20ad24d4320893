import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { keyVaultSecretSource } from '../../src/vault/key-vault-source.ts'
import { TokenUnavailableError, createTokenVault } from '../../src/vault/token-vault.ts'
import { fakeCredential } from '../fakes/credential.ts'
import { VAULT_HOST, VAULT_TENANT, VAULT_URL, startFakeKeyVault } from '../fakes/key-vault.ts'
import type { FakeKeyVault } from '../fakes/key-vault.ts'
import { loopbackHttpClient } from '../fakes/loopback-http-client.ts'
import type { LoopbackHttpClient } from '../fakes/loopback-http-client.ts'
import { manualClock, recordingLog } from './helpers.ts'

/**
 * The Key Vault provider with the real @azure/keyvault-secrets against the fake vault (REFERENCE.md §2): the 401
 * challenge, the bearer GET, the secret bundle, and the vault's 404/403/5xx answers. The client is built exactly as
 * in production, on the https vault URL; only its transport is the loopback client.
 */

const TOKEN_A = 'r8_keyvault_token_aaaaaaaaaaaaaaaaaa'
const TOKEN_B = 'r8_keyvault_token_bbbbbbbbbbbbbbbbbb'
const SECRET = 'replicate-api-token'

let kv: FakeKeyVault
let http: LoopbackHttpClient

beforeAll(async () => {
  kv = await startFakeKeyVault()
  http = loopbackHttpClient({ [VAULT_HOST]: kv.port })
})
afterAll(async () => {
  await kv.close()
})
beforeEach(() => {
  kv.outage = undefined
  kv.forbidden = false
  kv.requests.length = 0
  http.sent.length = 0
  kv.setSecret(SECRET, TOKEN_A, { tags: { owner: 'tag-value-from-the-vault' }, contentType: 'text/plain' })
})

function vaultWith (secretName = SECRET) {
  const credential = fakeCredential()
  const log = recordingLog()
  const clock = manualClock()
  const source = keyVaultSecretSource({ vaultUrl: VAULT_URL, secretName, credential, clientOptions: { httpClient: http, retryOptions: { maxRetries: 0 } } })
  const vault = createTokenVault({ source, cacheSeconds: 3600, fetchTimeoutMs: 1_000, now: clock.now, log })
  return { credential, log, clock, source, vault }
}

describe('Key Vault exchange', () => {
  it('the challenge, then the bearer GET with an Entra token for https://vault.azure.net in the challenge\'s tenant', async () => {
    const { vault, credential } = vaultWith()
    expect(await vault.getToken()).toBe(TOKEN_A)
    expect(kv.requests).toEqual([
      { method: 'GET', path: `/secrets/${SECRET}/`, apiVersion: expect.any(String), bearer: undefined },
      { method: 'GET', path: `/secrets/${SECRET}/`, apiVersion: expect.any(String), bearer: 'entra-test-token' }
    ])
    expect(credential.calls).toEqual([{ scopes: ['https://vault.azure.net/.default'], tenantId: VAULT_TENANT }])
    // The SDK addressed the production https URL; only the transport was loopback.
    expect(http.sent).toEqual([`GET ${VAULT_URL}/secrets/${SECRET}/?api%2Dversion=${kv.requests[0]!.apiVersion}`, `GET ${VAULT_URL}/secrets/${SECRET}/?api%2Dversion=${kv.requests[0]!.apiVersion}`])
  })

  it('a later read (after a 401 from Replicate) is one request with the cached Entra token, and gets the new version', async () => {
    const { vault, credential } = vaultWith()
    await vault.getToken()
    kv.setSecret(SECRET, TOKEN_B)
    vault.invalidate()
    expect(await vault.getToken()).toBe(TOKEN_B)
    expect(kv.requests.map((r) => r.bearer)).toEqual([undefined, 'entra-test-token', 'entra-test-token'])
    expect(credential.calls).toHaveLength(1)
  })

  it('reads the secret named by REPLICATE_TOKEN_SECRET_NAME', async () => {
    kv.setSecret('flux-replicate-prod', TOKEN_B)
    const { vault } = vaultWith('flux-replicate-prod')
    expect(await vault.getToken()).toBe(TOKEN_B)
    expect(kv.requests.at(-1)?.path).toBe('/secrets/flux-replicate-prod/')
  })
})

describe('Key Vault errors', () => {
  const cases: Array<[string, (kv: FakeKeyVault) => void, string]> = [
    ['404 SecretNotFound', (v) => { v.deleteSecret(SECRET) }, 'not_found'],
    ['403 ForbiddenByRbac', (v) => { v.forbidden = true }, 'forbidden'],
    ['503', (v) => { v.outage = { kind: 'status', status: 503 } }, 'server_error_503'],
    ['a dropped connection', (v) => { v.outage = { kind: 'reset' } }, 'unreachable'],
    ['no answer (the fetch timeout ends it)', (v) => { v.outage = { kind: 'hang' } }, 'timeout']
  ]

  it.each(cases)('%s at a cold start: no token (503), the reason logged in our words only', async (_name, breakIt, reason) => {
    breakIt(kv)
    const { vault, log } = vaultWith()
    const err = await vault.getToken().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TokenUnavailableError)
    expect(vault.status()).toMatchObject({ state: 'missing', lastError: reason })
    const warning = log.lines.find((l) => l.msg === 'Replicate token could not be read')
    expect(warning?.obj).toEqual({ provider: 'azure-key-vault', location: `${VAULT_URL} secret ${SECRET}`, reason, holdingToken: false })
    // Nothing the vault said reaches the log or the error.
    for (const text of [log.text(), JSON.stringify(err), (err as Error).message]) {
      expect(text).not.toMatch(/fake-vault|SecretNotFound|ForbiddenByRbac|not authorized|AKV10000/)
    }
  })

  it.each(cases)('%s with a token held: every call still gets the token', async (_name, breakIt) => {
    const { vault, clock } = vaultWith()
    await vault.getToken()
    breakIt(kv)
    clock.advance(3_600_000)
    for (let i = 0; i < 3; i++) expect(await vault.getToken()).toBe(TOKEN_A)
  })

  it('the secret\'s value, version id and tags never reach the log', async () => {
    const version = kv.setSecret(SECRET, TOKEN_A, { tags: { owner: 'tag-value-from-the-vault' } })
    const { vault, log } = vaultWith()
    await vault.getToken()
    kv.setSecret(SECRET, TOKEN_B)
    vault.invalidate()
    await vault.getToken()
    expect(log.lines.length).toBeGreaterThanOrEqual(3)
    for (const secretThing of [TOKEN_A, TOKEN_B, version, 'tag-value-from-the-vault', 'entra-test-token']) expect(log.text()).not.toContain(secretThing)
  })
})
