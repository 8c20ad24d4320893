import { describe, expect, it } from 'vitest'
import {
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  parseRetryAfter,
  provablyNotSent,
  retryDelay,
  withRetries
} from '../../src/replicate/retry.ts'
import type { AttemptOutcome, RetryPolicy } from '../../src/replicate/retry.ts'

const policy: RetryPolicy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 500, maxDelayMs: 8_000, jitter: 0.2, maxAttempts: 5 }

function recorder () {
  const delays: number[] = []
  return { delays, sleep: async (ms: number) => { delays.push(ms) } }
}

describe('parseRetryAfter', () => {
  it('reads delta-seconds, fractions and HTTP dates', () => {
    expect(parseRetryAfter('2')).toBe(2000)
    expect(parseRetryAfter('0.5')).toBe(500)
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:07 GMT', now)).toBe(7000)
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0)
  })
  it('ignores what it cannot read', () => {
    expect(parseRetryAfter(undefined)).toBeUndefined()
    expect(parseRetryAfter('')).toBeUndefined()
    expect(parseRetryAfter('soon')).toBeUndefined()
    expect(parseRetryAfter('-3')).toBeUndefined()
  })
})

describe('backoff', () => {
  it('doubles from the base, is capped, and jitter only adds up to the fraction', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, policy, () => 0))).toEqual([500, 1000, 2000, 4000, 8000, 8000])
    expect(backoffDelay(1, policy, () => 1)).toBe(600)
    expect(backoffDelay(6, policy, () => 1)).toBe(8000)
  })
  it('takes the largest of Retry-After, body retry_after and backoff', () => {
    expect(retryDelay(1, { retryAfterHeaderMs: 2000 }, policy, () => 0)).toBe(2000)
    expect(retryDelay(1, { bodyRetryAfterSeconds: 5 }, policy, () => 0)).toBe(5000)
    expect(retryDelay(1, { retryAfterHeaderMs: 2000, bodyRetryAfterSeconds: 3 }, policy, () => 0)).toBe(3000)
    expect(retryDelay(4, { retryAfterHeaderMs: 1000 }, policy, () => 0)).toBe(4000)
  })
})

describe('provablyNotSent', () => {
  it('only trusts failures before the connection existed', () => {
    expect(provablyNotSent(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true)
    expect(provablyNotSent(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe(true)
    expect(provablyNotSent(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }))).toBe(true)
    expect(provablyNotSent(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(false)
    expect(provablyNotSent(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }))).toBe(false)
    expect(provablyNotSent(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }))).toBe(false)
    expect(provablyNotSent(new Error('no code'))).toBe(false)
  })
})

describe('withRetries', () => {
  const status = (s: number, hints = {}): AttemptOutcome<string> => ({ kind: 'retryable-status', status: s, hints, error: new Error(`status ${s}`) })
  const network = (code: string): AttemptOutcome<string> => ({ kind: 'network', error: Object.assign(new Error(code), { code }), wrapped: new Error(`net ${code}`) })

  it('a create retries 429 with the server-given delay', async () => {
    const r = recorder()
    const outcomes = [status(429, { retryAfterHeaderMs: 2000 }), status(429, { bodyRetryAfterSeconds: 3 }), { kind: 'done', value: 'ok' } as const]
    let calls = 0
    const value = await withRetries(async () => outcomes[calls++]!, { kind: 'create', policy, sleep: r.sleep, random: () => 0 })
    expect(value).toBe('ok')
    expect(calls).toBe(3)
    expect(r.delays).toEqual([2000, 3000])
  })

  it('a create is not retried after 500 or a reset, but is after a refused connection', async () => {
    for (const outcome of [status(500), status(503), network('ECONNRESET'), network('UND_ERR_SOCKET')]) {
      let calls = 0
      await expect(withRetries(async () => { calls++; return outcome }, { kind: 'create', policy, sleep: recorder().sleep })).rejects.toThrow()
      expect(calls).toBe(1)
    }
    let calls = 0
    const r = recorder()
    await expect(withRetries(async () => { calls++; return network('ECONNREFUSED') }, { kind: 'create', policy, sleep: r.sleep, random: () => 0 })).rejects.toThrow('net ECONNREFUSED')
    expect(calls).toBe(policy.maxAttempts)
    expect(r.delays).toEqual([500, 1000, 2000, 4000])
  })

  it('reads retry 5xx and resets until the attempts run out', async () => {
    let calls = 0
    const r = recorder()
    const value = await withRetries(async () => (++calls < 4 ? (calls % 2 ? status(503) : network('ECONNRESET')) : { kind: 'done', value: 'v' }), { kind: 'idempotent', policy, sleep: r.sleep, random: () => 0 })
    expect(value).toBe('v')
    expect(r.delays).toEqual([500, 1000, 2000])
  })

  it('gives up at once when the server wants a longer wait than the policy allows', async () => {
    let calls = 0
    const tooLong = new Error('too long')
    await expect(withRetries(async () => { calls++; return status(429, { retryAfterHeaderMs: 120_000 }) }, {
      kind: 'create', policy, sleep: recorder().sleep, tooLongWait: () => tooLong
    })).rejects.toBe(tooLong)
    expect(calls).toBe(1)
  })

  it('an abort during a wait stops everything with the abort reason', async () => {
    const controller = new AbortController()
    let calls = 0
    const promise = withRetries(async () => { calls++; return status(503) }, {
      kind: 'idempotent',
      policy: { ...policy, baseDelayMs: 10_000 },
      signal: controller.signal,
      sleep: (ms, signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason)))
    })
    setTimeout(() => controller.abort(new Error('caller left')), 10)
    await expect(promise).rejects.toThrow('caller left')
    expect(calls).toBe(1)
  })
})
