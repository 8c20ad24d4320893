import { RestError } from '@azure/core-rest-pipeline'
import { describe, expect, it } from 'vitest'
import { toProblem } from '../../src/problems.ts'
import { envSecretSource } from '../../src/vault/sources.ts'
import { TokenUnavailableError, createTokenVault } from '../../src/vault/token-vault.ts'
import { manualClock, recordingLog, scriptedSource } from './helpers.ts'

/**
 * The token vault on its own, with a scripted source and a hand-moved clock: caching for TOKEN_CACHE_SECONDS,
 * one shared read for concurrent callers, serving a held token through an outage, re-reading after a 401, and
 * failing fast (503 replicate_token_missing) with no token at all.
 */

const TOKEN_A = 'r8_vault_unit_token_aaaaaaaaaaaa'
const TOKEN_B = 'r8_vault_unit_token_bbbbbbbbbbbb'
const outage = () => new RestError('Service Unavailable: fake-vault-outage-detail', { statusCode: 503, code: 'ServiceUnavailable' })

function setup (opts: { cacheSeconds?: number, failureBackoffMs?: number, rejectedRecheckMs?: number } = {}) {
  const clock = manualClock()
  const source = scriptedSource(TOKEN_A)
  const log = recordingLog()
  const vault = createTokenVault({ source, cacheSeconds: opts.cacheSeconds ?? 3600, fetchTimeoutMs: 1_000, now: clock.now, log, failureBackoffMs: opts.failureBackoffMs, rejectedRecheckMs: opts.rejectedRecheckMs })
  return { clock, source, log, vault }
}

/** Lets background reads settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve))

describe('caching', () => {
  it('reads once and serves the cached token until TOKEN_CACHE_SECONDS have passed', async () => {
    const { vault, source, clock } = setup({ cacheSeconds: 60 })
    expect(await vault.getToken()).toBe(TOKEN_A)
    clock.advance(59_000)
    expect(await vault.getToken()).toBe(TOKEN_A)
    expect(source.reads).toBe(1)
    expect(vault.status()).toMatchObject({ state: 'fresh', provider: 'azure-key-vault', ageMs: 59_000, lastError: null })
  })

  it('concurrent callers on a cold cache share one read', async () => {
    const { vault, source } = setup()
    source.hold()
    const calls = Array.from({ length: 25 }, () => vault.getToken())
    source.release()
    expect(await Promise.all(calls)).toEqual(Array(25).fill(TOKEN_A))
    expect(source.reads).toBe(1)
  })

  it('past its cache time the token is still served while one background read fetches the new one', async () => {
    const { vault, source, clock } = setup({ cacheSeconds: 60 })
    await vault.getToken()
    source.value = TOKEN_B
    clock.advance(60_000)
    source.hold()
    // Callers do not wait for the vault: they get the token in hand, and only one read starts.
    expect(await Promise.all([vault.getToken(), vault.getToken(), vault.getToken()])).toEqual([TOKEN_A, TOKEN_A, TOKEN_A])
    expect(source.reads).toBe(2)
    source.release()
    await settle()
    expect(await vault.getToken()).toBe(TOKEN_B)
    expect(source.reads).toBe(2)
  })
})

describe('an outage of the source', () => {
  it('fails no call while a token is held, even past its cache time, and says so in the status', async () => {
    const { vault, source, clock, log } = setup({ cacheSeconds: 60 })
    await vault.getToken()
    source.failWith = outage()
    clock.advance(61_000)
    for (let i = 0; i < 5; i++) expect(await vault.getToken()).toBe(TOKEN_A)
    await settle()
    expect(vault.status()).toMatchObject({ state: 'stale', lastError: 'server_error_503' })
    // One failed read, then the backoff keeps the vault from being asked on every call.
    expect(source.reads).toBe(2)
    expect(log.lines.find((l) => l.msg === 'Replicate token could not be read')?.obj).toMatchObject({ reason: 'server_error_503', holdingToken: true })
    expect(log.text()).not.toContain('fake-vault-outage-detail')
    expect(log.text()).not.toContain(TOKEN_A)
  })

  it('with no token at all: 503 service_unavailable / replicate_token_missing, fast during the backoff, then a new read', async () => {
    const { vault, source, clock } = setup({ failureBackoffMs: 5_000 })
    source.failWith = outage()
    const err = await vault.getToken().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TokenUnavailableError)
    const { status, headers, body } = toProblem(err, 'req-1')
    expect(status).toBe(503)
    expect(body).toMatchObject({ code: 'service_unavailable', reason: 'replicate_token_missing', retry_after: 5 })
    expect(headers['retry-after']).toBe('5')
    expect(JSON.stringify(body)).not.toContain('fake-vault-outage-detail')
    expect(vault.status()).toMatchObject({ state: 'missing', lastError: 'server_error_503' })

    await expect(vault.getToken()).rejects.toBeInstanceOf(TokenUnavailableError)
    expect(source.reads).toBe(1)

    source.failWith = undefined
    clock.advance(5_000)
    expect(await vault.getToken()).toBe(TOKEN_A)
    expect(source.reads).toBe(2)
    expect(vault.status()).toMatchObject({ state: 'fresh', lastError: null })
  })

  it('a read that hangs ends at the fetch timeout, as a timeout', async () => {
    const source = scriptedSource(TOKEN_A)
    source.hold()
    const vault = createTokenVault({ source, cacheSeconds: 60, fetchTimeoutMs: 100 })
    await expect(vault.getToken()).rejects.toBeInstanceOf(TokenUnavailableError)
    expect(vault.status().lastError).toBe('timeout')
    source.release()
  })

  it('an empty secret is no token', async () => {
    const { vault, source } = setup()
    source.value = '  \n'
    await expect(vault.getToken()).rejects.toBeInstanceOf(TokenUnavailableError)
    expect(vault.status()).toMatchObject({ state: 'missing', lastError: 'empty_secret' })
  })

  it('ensure() reads when no token is held and reports the state; it respects the backoff', async () => {
    const { vault, source, clock } = setup({ failureBackoffMs: 5_000 })
    source.failWith = outage()
    expect(await vault.ensure()).toMatchObject({ state: 'missing', lastError: 'server_error_503' })
    expect(await vault.ensure()).toMatchObject({ state: 'missing' })
    expect(source.reads).toBe(1)
    source.failWith = undefined
    clock.advance(5_000)
    expect(await vault.ensure()).toMatchObject({ state: 'fresh' })
  })
})

describe('invalidate (Replicate answered 401)', () => {
  it('drops the token and the next call waits for a fresh read: a rotated token is picked up', async () => {
    const { vault, source, log } = setup()
    await vault.getToken()
    source.value = TOKEN_B
    vault.invalidate()
    expect(await vault.getToken()).toBe(TOKEN_B)
    expect(source.reads).toBe(2)
    expect(log.lines.map((l) => l.msg)).toEqual(['Replicate token loaded', 'Replicate rejected the token; reading it again', 'Replicate token changed at its source'])
    expect(log.text()).not.toContain(TOKEN_A)
    expect(log.text()).not.toContain(TOKEN_B)
  })

  it('many 401s at once cause one read', async () => {
    const { vault, source } = setup()
    await vault.getToken()
    source.value = TOKEN_B
    source.hold()
    for (let i = 0; i < 10; i++) vault.invalidate()
    const calls = Array.from({ length: 10 }, () => vault.getToken())
    source.release()
    expect(await Promise.all(calls)).toEqual(Array(10).fill(TOKEN_B))
    expect(source.reads).toBe(2)
  })

  it('a source that still holds the refused token is not asked again for rejectedRecheckMs', async () => {
    const { vault, source, clock } = setup({ rejectedRecheckMs: 30_000 })
    await vault.getToken()
    vault.invalidate()
    expect(await vault.getToken()).toBe(TOKEN_A)
    expect(source.reads).toBe(2)
    expect(vault.status().state).toBe('rejected')
    vault.invalidate()
    vault.invalidate()
    expect(await vault.getToken()).toBe(TOKEN_A)
    expect(source.reads).toBe(2)
    clock.advance(30_000)
    expect(vault.status().state).toBe('fresh')
    source.value = TOKEN_B
    vault.invalidate()
    expect(await vault.getToken()).toBe(TOKEN_B)
    expect(source.reads).toBe(3)
  })

  it('with the source down, a refused token leaves no token: 503 replicate_token_missing', async () => {
    const { vault, source } = setup()
    await vault.getToken()
    source.failWith = outage()
    vault.invalidate()
    await expect(vault.getToken()).rejects.toBeInstanceOf(TokenUnavailableError)
    expect(vault.status()).toMatchObject({ state: 'missing', lastError: 'server_error_503' })
  })

  it('the Replicate client only gets invalidate from sources that can rotate', () => {
    expect(createTokenVault({ source: envSecretSource(TOKEN_A), cacheSeconds: 60, fetchTimeoutMs: 100 }).tokenSource.invalidate).toBeUndefined()
    expect(createTokenVault({ source: scriptedSource(TOKEN_A, 'file'), cacheSeconds: 60, fetchTimeoutMs: 100 }).tokenSource.invalidate).toBeTypeOf('function')
    expect(createTokenVault({ source: scriptedSource(TOKEN_A), cacheSeconds: 60, fetchTimeoutMs: 100 }).tokenSource.invalidate).toBeTypeOf('function')
  })
})
