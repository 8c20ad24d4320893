import type { AccessToken, GetTokenOptions, TokenCredential } from '@azure/core-auth'

export type AzureCredentialKind = 'managed-identity' | 'default'

export interface IdentityCredentialOptions {
  kind: AzureCredentialKind
  /** A user-assigned managed identity's client id; absent means the system-assigned identity. */
  clientId?: string | undefined
}

/**
 * The credential the service signs in to Azure with. In production it is `ManagedIdentityCredential`: one
 * deterministic identity, as Microsoft recommends for production. `DefaultAzureCredential` is for local use, where
 * its chain finds a developer's `az login`; in production that same chain could silently pick a different identity.
 * `@azure/identity` (and MSAL) is imported here only, on first use.
 */
export async function createIdentityCredential (opts: IdentityCredentialOptions): Promise<TokenCredential> {
  const identity = await import('@azure/identity')
  if (opts.kind === 'managed-identity') {
    return opts.clientId ? new identity.ManagedIdentityCredential({ clientId: opts.clientId }) : new identity.ManagedIdentityCredential()
  }
  return new identity.DefaultAzureCredential(opts.clientId ? { managedIdentityClientId: opts.clientId } : {})
}

/**
 * A credential built on its first `getToken`, so a process that never talks to Azure never loads the identity
 * library, and building a client does no I/O.
 */
export function lazyCredential (create: () => Promise<TokenCredential>): TokenCredential {
  let pending: Promise<TokenCredential> | undefined
  return {
    async getToken (scopes: string | string[], options?: GetTokenOptions): Promise<AccessToken | null> {
      pending ??= create().catch((err: unknown) => {
        pending = undefined
        throw err
      })
      return (await pending).getToken(scopes, options)
    }
  }
}
