import { DefaultAzureCredential, ManagedIdentityCredential } from '@azure/identity'
import { describe, expect, it } from 'vitest'
import { createIdentityCredential, lazyCredential } from '../../src/vault/azure-credential.ts'
import { fakeCredential } from '../fakes/credential.ts'

/**
 * Which identity the service signs in with. The real credentials are only built here, never asked for a token
 * (that would probe the instance metadata service); building one does no I/O.
 */

describe('the identity credential', () => {
  it('managed-identity is a ManagedIdentityCredential (system-assigned, or the client id given)', async () => {
    expect(await createIdentityCredential({ kind: 'managed-identity' })).toBeInstanceOf(ManagedIdentityCredential)
    expect(await createIdentityCredential({ kind: 'managed-identity', clientId: '0f9d7c2a-1b3e-4f56-8a9b-0c1d2e3f4a5b' })).toBeInstanceOf(ManagedIdentityCredential)
  })

  it('default is a DefaultAzureCredential (local use)', async () => {
    expect(await createIdentityCredential({ kind: 'default' })).toBeInstanceOf(DefaultAzureCredential)
  })
})

describe('lazyCredential', () => {
  it('builds nothing until the first getToken, then builds once', async () => {
    let built = 0
    const inner = fakeCredential('entra-lazy-token')
    const credential = lazyCredential(async () => { built++; return inner })
    expect(built).toBe(0)
    expect((await credential.getToken('https://vault.azure.net/.default'))?.token).toBe('entra-lazy-token')
    await credential.getToken(['https://cognitiveservices.azure.com/.default'])
    expect(built).toBe(1)
    expect(inner.calls.map((c) => c.scopes)).toEqual([['https://vault.azure.net/.default'], ['https://cognitiveservices.azure.com/.default']])
  })

  it('a failed build is tried again on the next call', async () => {
    let attempts = 0
    const credential = lazyCredential(async () => {
      attempts++
      if (attempts === 1) throw new Error('identity library unavailable')
      return fakeCredential()
    })
    await expect(credential.getToken('s')).rejects.toThrow('identity library unavailable')
    expect((await credential.getToken('s'))?.token).toBe('entra-test-token')
    expect(attempts).toBe(2)
  })
})
