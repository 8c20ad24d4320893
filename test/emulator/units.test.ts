import { describe, expect, it } from 'vitest'
import { formatTimestamp } from '../../src/emulator/clock.ts'
import { createFaultQueue } from '../../src/emulator/faults.ts'
import { parseAuthorization, parseCancelAfter, parsePreferWait } from '../../src/emulator/headers.ts'
import { newPredictionId } from '../../src/emulator/ids.ts'
import { dataUriByteLength, decodeDataUri } from '../../src/emulator/input-images.ts'
import { resolveOptions } from '../../src/emulator/options.ts'
import { outputSize, sizeForRatio } from '../../src/emulator/output-size.ts'
import { createRateLimiter } from '../../src/emulator/rate-limit.ts'
import { createImageCache } from '../../src/emulator/render.ts'
import type { RenderSpec } from '../../src/emulator/render.ts'

/** The emulator's pure parts, without HTTP. */

describe('header parsing', () => {
  it.each([
    ['30s', 30_000], ['5m', 300_000], ['1h30m', 5_400_000], ['1h30m45s', 5_445_000], ['90', 90_000], ['2.5s', 2500], [' 10m ', 600_000]
  ])('Cancel-After %j = %i ms', (value, ms) => {
    expect(parseCancelAfter(value)).toBe(ms)
  })

  it.each(['', 'abc', '5x', '1d', 'm', '-5s', '30s5m'])('Cancel-After %j is not a duration', (value) => {
    expect(parseCancelAfter(value)).toBeUndefined()
  })

  it('Prefer: wait and wait=N among other preferences', () => {
    expect(parsePreferWait(undefined)).toEqual({ kind: 'none' })
    expect(parsePreferWait('wait')).toEqual({ kind: 'wait', seconds: 60, applied: 'wait' })
    expect(parsePreferWait('respond-async, wait=10')).toEqual({ kind: 'wait', seconds: 10, applied: 'wait=10' })
    expect(parsePreferWait('wait=0')).toEqual({ kind: 'out-of-range', requested: 0 })
    expect(parsePreferWait('wait=99')).toEqual({ kind: 'out-of-range', requested: 99 })
    expect(parsePreferWait('wait=soon')).toEqual({ kind: 'none' })
  })

  it('Authorization: Bearer and Token schemes', () => {
    expect(parseAuthorization(undefined)).toEqual({ present: false })
    expect(parseAuthorization('Bearer r8_x')).toEqual({ present: true, token: 'r8_x' })
    expect(parseAuthorization('Token r8_x')).toEqual({ present: true, token: 'r8_x' })
    expect(parseAuthorization('Basic r8_x')).toEqual({ present: true, token: undefined })
  })
})

describe('identifiers and timestamps', () => {
  it('prediction ids are 26 lowercase alphanumerics and differ', () => {
    const ids = Array.from({ length: 50 }, newPredictionId)
    for (const id of ids) expect(id).toMatch(/^[a-z0-9]{26}$/)
    expect(new Set(ids).size).toBe(50)
  })

  it('formats 3, 6 or 9 fractional digits', () => {
    const t = Date.UTC(2024, 9, 4, 18, 7, 40, 328) + 0.123456
    expect(formatTimestamp(t)).toBe('2024-10-04T18:07:40.328Z')
    expect(formatTimestamp(t, 'us')).toBe('2024-10-04T18:07:40.328123Z')
    expect(formatTimestamp(t, 'ns')).toMatch(/^2024-10-04T18:07:40\.328123\d{3}Z$/)
  })
})

describe('output sizes', () => {
  it('schnell/dev: aspect ratio × megapixels', () => {
    expect(outputSize('black-forest-labs/flux-schnell', {})).toEqual({ width: 1024, height: 1024 })
    expect(outputSize('black-forest-labs/flux-schnell', { aspect_ratio: '3:2', megapixels: '0.25' })).toEqual({ width: 608, height: 416 })
    expect(outputSize('black-forest-labs/flux-dev', { aspect_ratio: '9:21' })).toEqual({ width: 640, height: 1536 })
  })

  it('1.1-pro: custom sides rounded to 32 and clamped to 256–1440', () => {
    expect(outputSize('black-forest-labs/flux-1.1-pro', { aspect_ratio: 'custom', width: 1500, height: 100 })).toEqual({ width: 1440, height: 256 })
    expect(outputSize('black-forest-labs/flux-1.1-pro', { aspect_ratio: 'custom', width: 513, height: 783 })).toEqual({ width: 512, height: 768 })
    expect(outputSize('black-forest-labs/flux-1.1-pro', { aspect_ratio: '16:9' })).toEqual({ width: 1344, height: 768 })
  })

  it('kontext: match_input_image without an image is square; other ratios at ~1 MP, sides ×16', () => {
    expect(outputSize('black-forest-labs/flux-kontext-pro', {})).toEqual({ width: 1024, height: 1024 })
    expect(outputSize('black-forest-labs/flux-kontext-pro', { aspect_ratio: '1:2' })).toEqual({ width: 720, height: 1456 })
    const fromImage = outputSize('black-forest-labs/flux-kontext-pro', {}, { width: 4000, height: 3000 })
    expect(fromImage).toEqual(sizeForRatio(4 / 3))
    expect(fromImage.width % 16 + fromImage.height % 16).toBe(0)
    expect(fromImage.width * fromImage.height / (1024 * 1024)).toBeCloseTo(1, 1)
  })
})

describe('data URIs', () => {
  it('decodes base64 and percent-encoded payloads, and measures without decoding', () => {
    const uri = `data:image/png;base64,${Buffer.from('hello world').toString('base64')}`
    expect(decodeDataUri(uri)).toEqual({ mime: 'image/png', bytes: Buffer.from('hello world') })
    expect(dataUriByteLength(uri)).toBe(11)
    expect(decodeDataUri('data:,a%20b')!.bytes.toString()).toBe('a b')
    expect(decodeDataUri('https://example.com/x.png')).toBeUndefined()
  })
})

describe('rate limiter', () => {
  it('refills at perMinute and reports remaining, reset and retry-after', () => {
    let now = 0
    const limiter = createRateLimiter({
      create: { perMinute: 60, burst: 2 },
      other: { perMinute: 600, burst: 10 },
      lowCreditCreate: { perMinute: 6, burst: 1 },
      lowCreditTokens: new Set(['poor']),
      now: () => now
    })
    expect(limiter.take('a', 'create')).toMatchObject({ allowed: true, remaining: 1 })
    expect(limiter.take('a', 'create')).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 2 })
    expect(limiter.take('a', 'create')).toMatchObject({ allowed: false, retryAfterSeconds: 1 })
    now += 1000
    expect(limiter.take('a', 'create')).toMatchObject({ allowed: true, remaining: 0 })
    expect(limiter.take('poor', 'create')).toMatchObject({ allowed: true, lowCredit: true })
    expect(limiter.take('poor', 'create')).toMatchObject({ allowed: false, retryAfterSeconds: 10, lowCredit: true })
    expect(limiter.take('poor', 'other')).toMatchObject({ allowed: true, remaining: 9, lowCredit: false })
    limiter.reset()
    expect(limiter.take('a', 'create')).toMatchObject({ allowed: true, remaining: 1 })
  })
})

describe('fault queue', () => {
  it('matches by method and path, counts down, and defaults to /v1 calls', () => {
    const queue = createFaultQueue()
    queue.inject({ kind: 'reset', method: 'post', count: 2 })
    queue.inject({ kind: 'delay', delayMs: 5, path: '/delivery/x/out-0.webp' })
    expect(queue.take('GET', '/v1/account')).toBeUndefined()
    expect(queue.take('POST', '/not-v1')).toBeUndefined()
    expect(queue.take('POST', '/v1/predictions')?.kind).toBe('reset')
    expect(queue.take('POST', '/v1/predictions')?.kind).toBe('reset')
    expect(queue.take('POST', '/v1/predictions')).toBeUndefined()
    expect(queue.take('GET', '/delivery/x/out-0.webp')?.kind).toBe('delay')
    expect(queue.pending()).toEqual([])
  })
})

describe('image cache', () => {
  const spec = (index: number): RenderSpec => ({ prompt: 'p', seed: 1, index, width: 8, height: 8, format: 'png', quality: 80 })

  it('renders once per key, evicts least recently used past its budget, and re-renders on demand', async () => {
    const rendered: number[] = []
    const cache = createImageCache(250, async (s) => {
      rendered.push(s.index)
      return Buffer.alloc(100, s.index)
    })
    await Promise.all([cache.get('a', spec(0)), cache.get('a', spec(0))])
    await cache.get('b', spec(1))
    await cache.get('a', spec(0))
    await cache.get('c', spec(2))
    expect(rendered).toEqual([0, 1, 2])
    await cache.get('b', spec(1))
    expect(rendered).toEqual([0, 1, 2, 1])
    const image = await cache.get('c', spec(2))
    expect(image.contentType).toBe('image/png')
    expect(image.etag).toMatch(/^"[0-9a-f]{40}"$/)
  })
})

describe('options', () => {
  it('refuses nonsense early, naming the option', () => {
    expect(() => resolveOptions({ timeScale: 0 })).toThrow(/timeScale/)
    expect(() => resolveOptions({ startingMs: [500, 100] })).toThrow(/startingMs/)
    expect(() => resolveOptions({ webhookSecret: 'plain' })).toThrow(/webhookSecret/)
    expect(() => resolveOptions({ tokens: [] })).toThrow(/tokens/)
  })

  it('special tokens are valid tokens; per-model predict seconds override the catalogue', () => {
    const options = resolveOptions({ billingRequiredTokens: ['r8_b'], predictSeconds: { 'black-forest-labs/flux-dev': 9 } })
    expect(options.tokens).toEqual(['r8_emulator_local_token', 'r8_b'])
    expect(options.predictSeconds['black-forest-labs/flux-dev']).toBe(9)
    expect(options.predictSeconds['black-forest-labs/flux-schnell']).toBe(1)
    expect(options.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/)
  })
})
