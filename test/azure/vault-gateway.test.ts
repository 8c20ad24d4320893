import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { Answer, TestGateway } from '../helpers/gateway.ts'
import { fakeCredential } from '../fakes/credential.ts'
import { VAULT_HOST, VAULT_URL, startFakeKeyVault } from '../fakes/key-vault.ts'
import type { FakeKeyVault } from '../fakes/key-vault.ts'
import { loopbackHttpClient } from '../fakes/loopback-http-client.ts'
import { startReplicateTokenGate } from '../fakes/replicate-token-gate.ts'
import { makeImage } from '../net/helpers.ts'
import type { ReplicateTokenGate } from '../fakes/replicate-token-gate.ts'

/**
 * The gateway with REPLICATE_TOKEN_PROVIDER=azure-key-vault, over HTTP: the real SecretClient against the fake
 * vault, and a token gate in front of the emulator standing in for Replicate's token check. Covers a rotation
 * without restart (Replicate 401 → re-read → one retry), a vault outage while a token is held, a cold start with
 * the vault down (readiness 503, generation 503 replicate_token_missing, nothing sent upstream), and that no
 * token or vault answer ever reaches the log or a response.
 */

const TOKEN_A = 'r8_kv_gateway_token_AAAAAAAAAAAAAAAA'
const TOKEN_B = 'r8_kv_gateway_token_BBBBBBBBBBBBBBBB'
const ENTRA_TOKEN = 'entra-gateway-token-ZZZZZZZZ'
const TAG_VALUE = 'vault-tag-value-QQQQQQQQ'
const SECRET = 'replicate-api-token'

interface VaultGateway {
  gw: TestGateway
  gate: ReplicateTokenGate
  /** Moves the token vault's clock forward. */
  advance: (ms: number) => void
  close: () => Promise<void>
}

async function startVaultGateway (kv: FakeKeyVault, validTokens: string[]): Promise<VaultGateway> {
  const gate = await startReplicateTokenGate(validTokens)
  kv.acceptedTokens.add(ENTRA_TOKEN)
  let offset = 0
  const gw = await startGateway({
    env: { REPLICATE_TOKEN_PROVIDER: 'azure-key-vault', AZURE_KEY_VAULT_URL: VAULT_URL, REPLICATE_BASE_URL: gate.baseUrl, TOKEN_CACHE_SECONDS: '3600' },
    overrides: {
      azure: { credential: fakeCredential(ENTRA_TOKEN), clientOptions: { httpClient: loopbackHttpClient({ [VAULT_HOST]: kv.port }), retryOptions: { maxRetries: 0 } } },
      tokenVault: { now: () => Date.now() + offset }
    }
  })
  gate.upstream = { origin: gw.emulator.origin, token: gw.emulator.token }
  return {
    gw,
    gate,
    advance: (ms) => { offset += ms },
    close: async () => {
      await gw.close()
      await gate.close()
    }
  }
}

const answers: Answer[] = []
async function generate (gw: TestGateway, prompt = 'a lighthouse on a cliff at dusk'): Promise<Answer> {
  const res = await gw.call('POST', '/v1/text-to-image', { prompt, model: 'flux-schnell' }, { prefer: 'respond-async' })
  answers.push(res)
  return res
}
async function ready (gw: TestGateway): Promise<Answer> {
  const res = await gw.call('GET', '/health/ready')
  answers.push(res)
  return res
}

const creates = (gw: TestGateway) => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

describe('a warm gateway', () => {
  let kv: FakeKeyVault
  let vg: VaultGateway
  let versionA: string

  beforeAll(async () => {
    kv = await startFakeKeyVault()
    versionA = kv.setSecret(SECRET, TOKEN_A, { tags: { owner: TAG_VALUE }, contentType: 'text/plain' })
    vg = await startVaultGateway(kv, [TOKEN_A])
  })
  afterAll(async () => {
    await vg?.close()
    await kv?.close()
  })

  it('generates with the token read from Key Vault, and readiness says the token is there', async () => {
    const res = await generate(vg.gw)
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(vg.gate.presented.at(-1)).toBe(TOKEN_A)
    expect(creates(vg.gw)).toHaveLength(1)
    expect(kv.reads()).toBe(1)
    const probe = await ready(vg.gw)
    expect(probe.status).toBe(200)
    expect(probe.body.checks).toMatchObject({ token: { status: 'ok' }, upstream: { status: 'ok' } })
    // Cached: neither the generation nor the probe read the vault again.
    expect(kv.reads()).toBe(1)
  })

  it('a rotated token is picked up without a restart: Replicate\'s 401 → one vault read → the request retried once', async () => {
    kv.setSecret(SECRET, TOKEN_B)
    vg.gate.validTokens.delete(TOKEN_A)
    vg.gate.validTokens.add(TOKEN_B)
    const before = { presented: vg.gate.presented.length, rejected: vg.gate.rejected(), reads: kv.reads(), creates: creates(vg.gw).length }

    const res = await generate(vg.gw, 'a paper boat on a pond')
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(vg.gate.presented.slice(before.presented)).toEqual([TOKEN_A, TOKEN_B])
    expect(vg.gate.rejected() - before.rejected).toBe(1)
    expect(kv.reads() - before.reads).toBe(1)
    expect(creates(vg.gw).length - before.creates).toBe(1)

    // From now on the new token, with no further vault reads.
    expect((await generate(vg.gw, 'a red fox in fresh snow')).status).toBe(202)
    expect(vg.gate.presented.at(-1)).toBe(TOKEN_B)
    expect(kv.reads() - before.reads).toBe(1)
    expect(vg.gw.logs.some((l) => l.msg === 'Replicate rejected the token; reading it again')).toBe(true)
  })

  it('a vault outage while a token is held fails no request, even past TOKEN_CACHE_SECONDS', async () => {
    kv.outage = { kind: 'status', status: 503 }
    try {
      vg.advance(2 * 3600 * 1000)
      for (const prompt of ['a quiet harbour at dawn', 'a windmill in a tulip field', 'a snowy mountain pass']) {
        const res = await generate(vg.gw, prompt)
        expect(res.status, JSON.stringify(res.body)).toBe(202)
        expect(vg.gate.presented.at(-1)).toBe(TOKEN_B)
      }
      // The background re-read failed; readiness stays 200 and says why the token is an old one.
      await vi.waitFor(async () => {
        const probe = await ready(vg.gw)
        expect(probe.status).toBe(200)
        expect(probe.body.checks.token).toEqual({ status: 'ok', detail: expect.stringMatching(/^using the token read \d+ s ago; Key Vault could not be read again \(server_error_503\)$/) })
      })
    } finally {
      kv.outage = undefined
    }
    // Back up: the next call past the backoff re-reads, and the token is fresh again.
    vg.advance(5_000)
    expect((await generate(vg.gw)).status).toBe(202)
    await vi.waitFor(async () => {
      expect((await ready(vg.gw)).body.checks.token).toEqual({ status: 'ok' })
    })
  })

  it('the tokens and whatever the vault returned never appear in the log or in a response', () => {
    const text = vg.gw.logText()
    expect(text.length).toBeGreaterThan(0)
    expect(text).toContain('Replicate token loaded')
    const responses = JSON.stringify(answers)
    for (const secret of [TOKEN_A, TOKEN_B, versionA, TAG_VALUE, ENTRA_TOKEN, 'fake-vault-outage-detail', 'ServiceUnavailable']) {
      expect(text).not.toContain(secret)
      expect(responses).not.toContain(secret)
    }
  })
})

describe('a cold start with the vault down', () => {
  let kv: FakeKeyVault
  let vg: VaultGateway

  beforeAll(async () => {
    kv = await startFakeKeyVault()
    kv.setSecret(SECRET, TOKEN_A, { tags: { owner: TAG_VALUE } })
    kv.forbidden = true
    vg = await startVaultGateway(kv, [TOKEN_A])
  })
  afterAll(async () => {
    await vg?.close()
    await kv?.close()
  })

  it('readiness is 503 naming the reason; generation is 503 replicate_token_missing with nothing sent upstream', async () => {
    await vi.waitFor(() => { expect(kv.requests.length).toBeGreaterThan(0) })
    let probe = await ready(vg.gw)
    expect(probe.status).toBe(503)
    expect(probe.body).toEqual({
      status: 'unavailable',
      checks: {
        draining: { status: 'ok' },
        token: { status: 'fail', detail: 'no Replicate token: Key Vault could not be read (forbidden)' },
        upstream: { status: 'fail', detail: 'not checked without a token' }
      }
    })

    const image = `data:image/png;base64,${(await makeImage('png', 64, 64)).toString('base64')}`
    const requests: Array<[string, Record<string, unknown>]> = [
      ['/v1/text-to-image', { prompt: 'a lighthouse on a cliff at dusk', model: 'flux-schnell' }],
      ['/v1/image-to-image', { prompt: 'the same lighthouse in winter', image_url: image, model: 'flux-dev' }]
    ]
    for (const [path, body] of requests) {
      const res = await vg.gw.call('POST', path, body)
      answers.push(res)
      expect(res.status, JSON.stringify(res.body)).toBe(503)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(res.headers['retry-after']).toBe('5')
      expect(res.body).toMatchObject({ code: 'service_unavailable', reason: 'replicate_token_missing', status: 503 })
    }
    const res = await generate(vg.gw)
    expect(res.status).toBe(503)
    expect(res.body.reason).toBe('replicate_token_missing')
    expect(vg.gw.emulator.requests).toEqual([])
    expect(vg.gate.presented).toEqual([])

    // Still down, differently: readiness follows once the backoff has passed.
    kv.forbidden = false
    kv.outage = { kind: 'status', status: 503 }
    vg.advance(5_000)
    probe = await ready(vg.gw)
    expect(probe.status).toBe(503)
    expect(probe.body.checks.token).toEqual({ status: 'fail', detail: 'no Replicate token: Key Vault could not be read (server_error_503)' })
  })

  it('once the vault answers, readiness turns 200 and generation works, without a restart', async () => {
    kv.outage = undefined
    vg.advance(5_000)
    const probe = await ready(vg.gw)
    expect(probe.status, JSON.stringify(probe.body)).toBe(200)
    expect(probe.body.checks.token).toEqual({ status: 'ok' })
    const res = await generate(vg.gw)
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(vg.gate.presented).toEqual([TOKEN_A, TOKEN_A]) // the readiness account check, then the create
  })

  it('nothing secret in the log or the responses', () => {
    const text = vg.gw.logText()
    expect(text).toContain('Replicate token could not be read')
    const responses = JSON.stringify(answers)
    for (const secret of [TOKEN_A, TAG_VALUE, ENTRA_TOKEN, 'fake-vault-forbidden-detail', 'ForbiddenByRbac', 'not authorized', 'fake-vault-outage-detail']) {
      expect(text).not.toContain(secret)
      expect(responses).not.toContain(secret)
    }
  })
})
