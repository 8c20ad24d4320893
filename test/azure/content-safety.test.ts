import sharp from 'sharp'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { ModerationUnavailableError, createAzureModerator, imageForAnalysis } from '../../src/moderation/azure-content-safety.ts'
import type { AzureModeratorOptions } from '../../src/moderation/azure-content-safety.ts'
import { createLocalModerator } from '../../src/moderation/local-moderator.ts'
import { toProblem } from '../../src/problems.ts'
import { CONTENT_SAFETY_ENDPOINT, CONTENT_SAFETY_HOST, startFakeContentSafety } from '../fakes/content-safety.ts'
import type { FakeContentSafety } from '../fakes/content-safety.ts'
import { fakeCredential } from '../fakes/credential.ts'
import { loopbackHttpClient } from '../fakes/loopback-http-client.ts'
import { recordingLog } from './helpers.ts'

/**
 * The Azure moderation provider with the real @azure-rest/ai-content-safety against the fake service
 * (REFERENCE.md §3): the request it sends, per-category thresholds, blocklists, the failure modes, the local
 * pre-check, and image:analyze.
 */

const KEY = 'cs-key-that-must-never-be-logged'
let cs: FakeContentSafety
const http = () => loopbackHttpClient({ [CONTENT_SAFETY_HOST]: cs.port })

beforeAll(async () => {
  cs = await startFakeContentSafety({ keys: [KEY] })
})
afterAll(async () => {
  await cs.close()
})
beforeEach(() => {
  cs.reset()
  cs.textRules.set('lantern', { Violence: 3 }) // scored 2: "low"
  cs.textRules.set('crossbow', { Violence: 5 }) // scored 4: "medium"
  cs.textRules.set('riot', { Violence: 7, Hate: 6 }) // 6 and 6
  cs.textRules.set('swimsuit', { Sexual: 2 })
  cs.blocklists.set('brand-names', ['acmecorp', 'globex'])
  cs.blocklists.set('internal-codenames', ['bluebird'])
})

const THRESHOLDS = { Hate: 4, SelfHarm: 4, Sexual: 4, Violence: 4 }

function moderator (opts: Partial<AzureModeratorOptions> = {}) {
  const log = recordingLog()
  const m = createAzureModerator({
    endpoint: CONTENT_SAFETY_ENDPOINT,
    key: KEY,
    thresholds: THRESHOLDS,
    blocklists: ['brand-names', 'internal-codenames'],
    timeoutMs: 2_000,
    failureMode: 'closed',
    clientOptions: { httpClient: http(), retryOptions: { maxRetries: 0 } },
    log,
    ...opts
  })
  return { m, log }
}

describe('text:analyze', () => {
  it('sends the prompt with all four categories, the blocklists and the key, to /contentsafety/text:analyze', async () => {
    const { m } = moderator()
    expect(await m.checkText('a paper lantern festival')).toEqual({ allowed: true, categories: [], blocklists: [], provider: 'azure' })
    expect(cs.requests).toEqual([{
      path: '/contentsafety/text:analyze',
      apiVersion: '2023-10-01',
      key: KEY,
      bearer: undefined,
      body: {
        text: 'a paper lantern festival',
        categories: ['Hate', 'SelfHarm', 'Sexual', 'Violence'],
        blocklistNames: ['brand-names', 'internal-codenames'],
        haltOnBlocklistHit: true,
        outputType: 'FourSeverityLevels'
      }
    }])
  })

  it('without a key it signs in with the credential (Entra ID) for the Cognitive Services scope', async () => {
    const credential = fakeCredential()
    const { m } = moderator({ key: undefined, credential })
    expect((await m.checkText('a quiet harbour')).allowed).toBe(true)
    expect(cs.requests[0]).toMatchObject({ key: undefined, bearer: 'entra-test-token' })
    expect(credential.calls).toEqual([{ scopes: ['https://cognitiveservices.azure.com/.default'], tenantId: undefined }])
  })

  it('blocks a category at its threshold or above (default 4) and lets "low" (2) through', async () => {
    const { m } = moderator()
    expect(await m.checkText('a lantern in the rain')).toMatchObject({ allowed: true, categories: [] })
    expect(await m.checkText('a knight with a crossbow')).toEqual({ allowed: false, categories: ['violence'], blocklists: [], provider: 'azure' })
    expect(await m.checkText('a riot in the square')).toMatchObject({ allowed: false, categories: ['violence', 'hate'] })
  })

  it('thresholds are per category', async () => {
    const { m } = moderator({ thresholds: { ...THRESHOLDS, Sexual: 2, Violence: 7 } })
    // Sexual at 2 now blocks; Violence 6 no longer does, Hate 6 still does.
    expect(await m.checkText('a swimsuit catalogue')).toMatchObject({ allowed: false, categories: ['sexual'] })
    expect(await m.checkText('a knight with a crossbow')).toMatchObject({ allowed: true })
    expect(await m.checkText('a riot in the square')).toMatchObject({ allowed: false, categories: ['hate'] })
  })

  it('a hit on any blocklist blocks, whatever the severities, and names the list (not the item)', async () => {
    const { m } = moderator()
    expect(await m.checkText('a billboard for AcmeCorp at night')).toEqual({ allowed: false, categories: [], blocklists: ['brand-names'], provider: 'azure' })
    expect(await m.checkText('project bluebird launch poster')).toMatchObject({ allowed: false, blocklists: ['internal-codenames'] })
    expect(await m.checkText('a globex and bluebird mashup')).toMatchObject({ allowed: false, blocklists: ['brand-names', 'internal-codenames'] })
  })

  it('without configured blocklists, none are sent', async () => {
    const { m } = moderator({ blocklists: [] })
    await m.checkText('a billboard for acmecorp')
    expect(cs.requests[0]!.body).not.toHaveProperty('blocklistNames')
  })
})

describe('when Content Safety gives no verdict', () => {
  const failures: Array<[string, () => void, string]> = [
    ['500', () => { cs.fault = { kind: 'status', status: 500 } }, 'server_error_500'],
    ['503', () => { cs.fault = { kind: 'status', status: 503 } }, 'server_error_503'],
    ['429 without Retry-After', () => { cs.fault = { kind: 'status', status: 429, body: { error: { code: 'TooManyRequests', message: 'fake-content-safety-outage-detail' } } } }, 'throttled'],
    ['400 InvalidRequestBody', () => { cs.fault = { kind: 'status', status: 400, body: { error: { code: 'InvalidRequestBody', message: 'fake-content-safety-outage-detail', details: [], innererror: { code: 'x' } } } } }, 'http_400'],
    ['a wrong key (401)', () => { cs.keys.delete(KEY) }, 'unauthorized'],
    ['a dropped connection', () => { cs.fault = { kind: 'reset' } }, 'unreachable'],
    ['no answer within the timeout', () => { cs.fault = { kind: 'hang' } }, 'timeout']
  ]

  it.each(failures)('%s → fail closed by default: 503 service_unavailable / moderation_unavailable', async (_name, breakIt, reason) => {
    breakIt()
    try {
      const { m, log } = moderator({ timeoutMs: 200 })
      const err = await m.checkText('a knight with a crossbow').catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ModerationUnavailableError)
      const { status, headers, body } = toProblem(err, 'req-1')
      expect(status).toBe(503)
      expect(body).toMatchObject({ code: 'service_unavailable', reason: 'moderation_unavailable', retry_after: 5 })
      expect(headers['retry-after']).toBe('5')
      const line = log.lines.find((l) => l.msg.startsWith('content safety gave no verdict'))
      expect(line?.level).toBe(reason === 'unauthorized' ? 'error' : 'warn')
      expect(line?.obj).toEqual({ provider: 'azure', operation: 'text', reason, failureMode: 'closed' })
      expect(log.text()).not.toContain('fake-content-safety-outage-detail')
      expect(log.text()).not.toContain(KEY)
    } finally {
      cs.keys.add(KEY)
    }
  })

  it.each(failures)('%s → MODERATION_FAILURE_MODE=open lets it through and logs that it did', async (_name, breakIt, reason) => {
    breakIt()
    try {
      const { m, log } = moderator({ timeoutMs: 200, failureMode: 'open' })
      expect(await m.checkText('a knight with a crossbow')).toEqual({ allowed: true, categories: [], blocklists: [], provider: 'azure' })
      expect(log.lines.find((l) => l.msg === 'content safety gave no verdict; allowed unchecked (MODERATION_FAILURE_MODE=open)')?.obj)
        .toMatchObject({ reason, failureMode: 'open' })
    } finally {
      cs.keys.add(KEY)
    }
  })

  it('the caller going away is passed on as its abort, not an outage', async () => {
    cs.fault = { kind: 'hang' }
    const { m, log } = moderator({ timeoutMs: 5_000 })
    const controller = new AbortController()
    const pending = m.checkText('a quiet harbour', { signal: controller.signal })
    setTimeout(() => controller.abort(new Error('client went away')), 20)
    await expect(pending).rejects.toThrow('client went away')
    expect(log.lines).toEqual([])
  })
})

describe('the local pre-check', () => {
  it('refuses what the term lists refuse without calling Azure; the rest goes to Azure', async () => {
    const { m } = moderator({ precheck: createLocalModerator() })
    expect(await m.checkText('a nude statue in a park')).toEqual({ allowed: false, categories: ['sexual'], provider: 'local' })
    expect(cs.requests).toEqual([])
    expect(await m.checkText('a knight with a crossbow')).toMatchObject({ allowed: false, provider: 'azure' })
    expect(cs.requests).toHaveLength(1)
  })
})

describe('image:analyze', () => {
  const png = (width: number, height: number, colour = { r: 40, g: 120, b: 200 }) =>
    sharp({ create: { width, height, channels: 3, background: colour } }).png().toBuffer()

  it('sends the image as base64 content and applies the same thresholds', async () => {
    cs.imageRule = ({ red }) => (red > 150 ? { Sexual: 6 } : {})
    const { m } = moderator()
    const blue = await png(64, 64)
    expect(await m.checkImage(blue)).toEqual({ allowed: true, categories: [], blocklists: [], provider: 'azure' })
    expect(cs.requests[0]).toMatchObject({ path: '/contentsafety/image:analyze', apiVersion: '2023-10-01', key: KEY })
    expect(cs.requests[0]!.body).toEqual({ image: { content: blue.toString('base64') }, categories: ['Hate', 'SelfHarm', 'Sexual', 'Violence'], outputType: 'FourSeverityLevels' })
    expect(await m.checkImage(await png(64, 64, { r: 220, g: 10, b: 10 }))).toMatchObject({ allowed: false, categories: ['sexual'] })
  })

  it('an image outside the service\'s 50–2048 px bounds is scaled into them (the fake refuses anything else)', async () => {
    const { m } = moderator()
    expect((await m.checkImage(await png(32, 32))).allowed).toBe(true)
    expect((await m.checkImage(await png(2600, 300))).allowed).toBe(true)
    expect(cs.requests).toHaveLength(2)
    const small = await sharp(await imageForAnalysis(await png(32, 32))).metadata()
    const wide = await sharp(await imageForAnalysis(await png(2600, 300))).metadata()
    expect([[small.width, small.height, small.format], [wide.width, wide.height, wide.format]]).toEqual([[50, 50, 'jpeg'], [2048, 236, 'jpeg']])
  })

  it('fails closed like text', async () => {
    cs.fault = { kind: 'status', status: 503 }
    const { m, log } = moderator()
    await expect(m.checkImage(await png(64, 64))).rejects.toBeInstanceOf(ModerationUnavailableError)
    expect(log.lines[0]?.obj).toMatchObject({ operation: 'image', reason: 'server_error_503' })
  })
})
