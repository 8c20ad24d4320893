import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { fileSecretSource } from '../../src/vault/sources.ts'
import { TokenUnavailableError, createTokenVault } from '../../src/vault/token-vault.ts'
import { manualClock, recordingLog } from './helpers.ts'

/**
 * REPLICATE_API_TOKEN_FILE: a mounted secret, re-read as soon as it changes (an in-place write, or the atomic
 * rename Kubernetes does), well within TOKEN_CACHE_SECONDS, without a restart.
 */

let dir: string
let file: string

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-token-file-'))
  file = path.join(dir, 'replicate-api-token')
})
afterEach(() => {
  rmSync(dir, { recursive: true, force: true })
})

function vaultFor (log = recordingLog()) {
  const clock = manualClock()
  return { clock, log, vault: createTokenVault({ source: fileSecretSource(file), cacheSeconds: 3600, fetchTimeoutMs: 1_000, now: clock.now, log }) }
}

describe('file token provider', () => {
  it('reads the file, trimming the trailing newline secret mounts usually have', async () => {
    writeFileSync(file, 'r8_file_token_one\n')
    const { vault } = vaultFor()
    expect(await vault.getToken()).toBe('r8_file_token_one')
    expect(vault.status()).toMatchObject({ state: 'fresh', provider: 'file', location: file })
  })

  it('an in-place rewrite is picked up on the next call, long before the cache time', async () => {
    writeFileSync(file, 'r8_file_token_one\n')
    const { vault } = vaultFor()
    expect(await vault.getToken()).toBe('r8_file_token_one')
    expect(await vault.getToken()).toBe('r8_file_token_one')
    writeFileSync(file, 'r8_file_token_number_two\n')
    expect(await vault.getToken()).toBe('r8_file_token_number_two')
  })

  it('an atomic swap (a new file renamed over the old, as Kubernetes does) is picked up', async () => {
    writeFileSync(file, 'r8_file_token_one\n')
    const { vault, log } = vaultFor()
    expect(await vault.getToken()).toBe('r8_file_token_one')
    const next = path.join(dir, '.next')
    writeFileSync(next, 'r8_file_token_two\n')
    renameSync(next, file)
    expect(await vault.getToken()).toBe('r8_file_token_two')
    expect(log.lines.map((l) => l.msg)).toContain('Replicate token changed at its source')
    expect(log.text()).not.toContain('r8_file_token')
  })

  it('a file that disappears for a moment keeps the token in hand', async () => {
    writeFileSync(file, 'r8_file_token_one\n')
    const { vault } = vaultFor()
    await vault.getToken()
    unlinkSync(file)
    expect(await vault.getToken()).toBe('r8_file_token_one')
  })

  it('a missing file at start is no token: 503, with the reason file_not_found', async () => {
    const { vault } = vaultFor()
    await expect(vault.getToken()).rejects.toBeInstanceOf(TokenUnavailableError)
    expect(vault.status()).toMatchObject({ state: 'missing', lastError: 'file_not_found' })
  })

  it('a 401 re-reads the file even when it looks unchanged', async () => {
    writeFileSync(file, 'r8_file_token_one\n')
    const { vault } = vaultFor()
    await vault.getToken()
    vault.invalidate()
    expect(await vault.getToken()).toBe('r8_file_token_one')
    expect(vault.status().state).toBe('rejected')
  })
})
