import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'

/**
 * A fake Azure Key Vault speaking the exchanges Azure documents for Key Vault secrets: an unauthenticated GET gets
 * the 401 challenge (WWW-Authenticate naming the tenant and https://vault.azure.net), the SDK then repeats it with a
 * bearer token and gets the secret bundle; a missing secret is the real 404 SecretNotFound body, a refused identity
 * the real 403 ForbiddenByRbac body. It listens on 127.0.0.1; clients reach it through the loopback http client
 * while addressing the production-looking https URL `VAULT_URL`.
 */

export const VAULT_HOST = 'flux-test.vault.azure.net'
export const VAULT_URL = `https://${VAULT_HOST}`
export const VAULT_TENANT = '4a6f1c2e-0d1b-4c8e-9a57-1f2e3d4c5b6a'
const CHALLENGE = `Bearer authorization="https://login.microsoftonline.com/${VAULT_TENANT}", resource="https://vault.azure.net"`

/** How the vault misbehaves: an HTTP status with Azure's error body, a dropped connection, or no answer at all. */
export type VaultOutage = { kind: 'status', status: number } | { kind: 'reset' } | { kind: 'hang' }

export interface VaultRequest {
  method: string
  path: string
  apiVersion: string | undefined
  /** The bearer token sent, if any. */
  bearer: string | undefined
}

export interface FakeKeyVault {
  readonly port: number
  readonly requests: VaultRequest[]
  /** Stores a new version of a secret; returns the version id. `extras` are returned with it (tags, contentType). */
  setSecret: (name: string, value: string, extras?: { tags?: Record<string, string>, contentType?: string }) => string
  deleteSecret: (name: string) => void
  /** Bearer tokens the vault accepts; anything else is answered with the challenge again. */
  readonly acceptedTokens: Set<string>
  /** Refuse every authenticated read with 403 ForbiddenByRbac (the identity lost its role). */
  forbidden: boolean
  outage: VaultOutage | undefined
  /** Secret GETs that got a secret back. */
  reads: () => number
  close: () => Promise<void>
}

interface StoredSecret {
  value: string
  version: string
  tags: Record<string, string>
  contentType: string | undefined
  created: number
}

function errorBody (code: string, message: string, inner?: string) {
  return { error: { code, message, ...(inner ? { innererror: { code: inner } } : {}) } }
}

export async function startFakeKeyVault (opts: { acceptedTokens?: string[] } = {}): Promise<FakeKeyVault> {
  const secrets = new Map<string, StoredSecret>()
  const requests: VaultRequest[] = []
  const acceptedTokens = new Set(opts.acceptedTokens ?? ['entra-test-token'])
  let reads = 0
  const app = Fastify({ logger: false, forceCloseConnections: true })

  const state = {
    forbidden: false,
    outage: undefined as VaultOutage | undefined
  }

  app.get('/secrets/:name/:version?', async (req, reply) => {
    const auth = req.headers.authorization
    const bearer = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined
    const query = req.query as Record<string, string | undefined>
    requests.push({ method: req.method, path: req.url.split('?')[0]!, apiVersion: query['api-version'], bearer })

    const outage = state.outage
    if (outage?.kind === 'hang') return new Promise<never>(() => {})
    if (outage?.kind === 'reset') {
      req.raw.socket.destroy()
      return reply
    }
    if (outage?.kind === 'status') {
      return reply.code(outage.status).send(errorBody('ServiceUnavailable', 'The service is temporarily unavailable (fake-vault-outage-detail).'))
    }
    if (bearer === undefined || !acceptedTokens.has(bearer)) {
      return reply.code(401).header('www-authenticate', CHALLENGE)
        .send(errorBody('Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.'))
    }
    if (state.forbidden) {
      return reply.code(403).send(errorBody('Forbidden', 'Caller is not authorized to perform action on resource (fake-vault-forbidden-detail).', 'ForbiddenByRbac'))
    }
    const { name, version } = req.params as { name: string, version?: string }
    const secret = secrets.get(name)
    if (!secret || (version !== undefined && version !== '' && version !== secret.version)) {
      return reply.code(404).send(errorBody('SecretNotFound',
        `A secret with (name/id) ${name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`))
    }
    reads++
    return {
      value: secret.value,
      id: `${VAULT_URL}/secrets/${name}/${secret.version}`,
      attributes: { enabled: true, created: secret.created, updated: secret.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 },
      tags: secret.tags,
      ...(secret.contentType ? { contentType: secret.contentType } : {})
    }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo

  return {
    port,
    requests,
    acceptedTokens,
    get forbidden () { return state.forbidden },
    set forbidden (value: boolean) { state.forbidden = value },
    get outage () { return state.outage },
    set outage (value: VaultOutage | undefined) { state.outage = value },
    reads: () => reads,
    setSecret (name, value, extras = {}) {
      const version = randomBytes(16).toString('hex')
      secrets.set(name, { value, version, tags: extras.tags ?? {}, contentType: extras.contentType, created: Math.floor(Date.now() / 1000) })
      return version
    },
    deleteSecret (name) { secrets.delete(name) },
    close: () => app.close()
  }
}
