import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'

export interface FakeCredential extends TokenCredential {
  /** Each getToken call: the scopes asked for and the tenant the challenge named. */
  readonly calls: Array<{ scopes: string[], tenantId: string | undefined }>
  /** The bearer token handed out; change it to simulate a new Entra token. */
  token: string
}

/** A TokenCredential that answers from memory. Tests use it so no real credential (and no IMDS probe) is ever involved. */
export function fakeCredential (token = 'entra-test-token'): FakeCredential {
  const calls: FakeCredential['calls'] = []
  const credential: FakeCredential = {
    calls,
    token,
    async getToken (scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken> {
      calls.push({ scopes: Array.isArray(scopes) ? [...scopes] : [scopes], tenantId: options?.tenantId })
      return { token: credential.token, expiresOnTimestamp: Date.now() + 3_600_000 }
    }
  }
  return credential
}
