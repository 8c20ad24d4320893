import sharp from 'sharp'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { Answer, TestGateway } from '../helpers/gateway.ts'
import { CONTENT_SAFETY_ENDPOINT, CONTENT_SAFETY_HOST, startFakeContentSafety } from '../fakes/content-safety.ts'
import type { FakeContentSafety } from '../fakes/content-safety.ts'
import { fakeCredential } from '../fakes/credential.ts'
import { loopbackHttpClient } from '../fakes/loopback-http-client.ts'
import { makeImage } from '../net/helpers.ts'

/**
 * MODERATION_PROVIDER=azure over HTTP, with the real Content Safety client against the fake service: thresholds
 * and blocklist hits refuse with 422, an outage or a timeout refuses with 503 (fail closed, nothing sent to
 * Replicate) unless MODERATION_FAILURE_MODE=open, the local lists spare Azure calls, and image-to-image inputs go
 * through image:analyze when enabled.
 */

const KEY = 'cs-gateway-key-PPPPPPPPPPPP'
let cs: FakeContentSafety

beforeAll(async () => {
  cs = await startFakeContentSafety({ keys: [KEY] })
})
afterAll(async () => {
  await cs.close()
})
beforeEach(() => {
  cs.reset()
  cs.textRules.set('crossbow', { Violence: 5 })
  cs.textRules.set('lantern', { Violence: 2 })
  cs.blocklists.set('brand-names', ['acmecorp'])
  cs.imageRule = ({ red }) => (red > 150 ? { Sexual: 6 } : {})
})

function azureGateway (env: Record<string, string> = {}): Promise<TestGateway> {
  return startGateway({
    env: {
      DEFAULT_PLAN: 'basic',
      MODERATION_PROVIDER: 'azure',
      AZURE_CONTENT_SAFETY_ENDPOINT: CONTENT_SAFETY_ENDPOINT,
      AZURE_CONTENT_SAFETY_KEY: KEY,
      AZURE_CONTENT_SAFETY_BLOCKLISTS: 'brand-names',
      AZURE_CONTENT_SAFETY_TIMEOUT_MS: '300',
      ...env
    },
    overrides: {
      // A credential is passed so that, whatever the settings, no real identity is ever asked for a token.
      azure: { credential: fakeCredential(), clientOptions: { httpClient: loopbackHttpClient({ [CONTENT_SAFETY_HOST]: cs.port }), retryOptions: { maxRetries: 0 } } }
    }
  })
}

const creates = (gw: TestGateway) => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))
const text = (gw: TestGateway, prompt: string): Promise<Answer> =>
  gw.call('POST', '/v1/text-to-image', { prompt, model: 'flux-schnell' }, { prefer: 'respond-async' })

describe('fail closed (the default)', () => {
  let gw: TestGateway
  beforeAll(async () => { gw = await azureGateway() })
  afterAll(async () => { await gw?.close() })
  beforeEach(() => { gw.emulator.reset() })

  it('a clean prompt is checked by Azure, then generated', async () => {
    const res = await text(gw, 'a paper lantern festival by the river')
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(cs.requests.map((r) => r.path)).toEqual(['/contentsafety/text:analyze'])
    expect(cs.requests[0]!.body.text).toBe('a paper lantern festival by the river')
    expect(creates(gw)).toHaveLength(1)
    expect((await gw.call('GET', '/health')).body.moderation).toEqual({ provider: 'azure' })
  })

  it('a category at its threshold → 422 content_policy_violation, nothing sent to Replicate', async () => {
    const prompt = 'a knight aiming a crossbow'
    const res = await text(gw, prompt)
    expect(res.status).toBe(422)
    expect(res.body).toMatchObject({ code: 'content_policy_violation', categories: ['violence'] })
    expect(res.body.blocklist_match).toBeUndefined()
    expect(creates(gw)).toEqual([])
    const warning = gw.logs.find((l) => l.request_id === res.body.request_id && l.msg === 'prompt refused by the content policy')
    expect(warning).toMatchObject({ provider: 'azure', categories: ['violence'] })
    expect(gw.logText()).not.toContain(prompt)
  })

  it('a blocklist hit → 422 with blocklist_match; the log names the list, neither the item nor the prompt', async () => {
    const prompt = 'a billboard for AcmeCorp on a highway'
    const res = await text(gw, prompt)
    expect(res.status).toBe(422)
    expect(res.body).toMatchObject({ code: 'content_policy_violation', categories: [], blocklist_match: true })
    expect(JSON.stringify(res.body)).not.toMatch(/acmecorp|brand-names/i)
    expect(creates(gw)).toEqual([])
    const warning = gw.logs.find((l) => l.request_id === res.body.request_id && l.msg === 'prompt refused by the content policy')
    expect(warning).toMatchObject({ provider: 'azure', blocklists: ['brand-names'] })
    expect(gw.logText()).not.toMatch(/acmecorp/i)
  })

  it('the local lists run first: what they refuse never reaches Azure', async () => {
    const res = await text(gw, 'a nude statue in a garden')
    expect(res.status).toBe(422)
    expect(res.body.categories).toEqual(['sexual'])
    expect(cs.requests).toEqual([])
  })

  it.each([
    ['Azure answering 503', () => { cs.fault = { kind: 'status', status: 503 } }],
    ['Azure answering 429', () => { cs.fault = { kind: 'status', status: 429 } }],
    ['Azure dropping the connection', () => { cs.fault = { kind: 'reset' } }],
    ['Azure not answering within AZURE_CONTENT_SAFETY_TIMEOUT_MS', () => { cs.fault = { kind: 'hang' } }]
  ])('%s → 503 service_unavailable / moderation_unavailable, nothing sent to Replicate', async (_name, breakIt) => {
    breakIt()
    const res = await text(gw, 'a quiet harbour at dawn')
    expect(res.status, JSON.stringify(res.body)).toBe(503)
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    expect(res.headers['retry-after']).toBe('5')
    expect(res.body).toMatchObject({ code: 'service_unavailable', reason: 'moderation_unavailable' })
    expect(cs.requests).toHaveLength(1)
    expect(gw.emulator.requests).toEqual([])
    expect(JSON.stringify(res.body)).not.toContain('fake-content-safety-outage-detail')
  })

  it('the key and the service\'s error text never reach the log', () => {
    expect(gw.logText()).toContain('content safety gave no verdict; request refused (MODERATION_FAILURE_MODE=closed)')
    expect(gw.logText()).not.toContain(KEY)
    expect(gw.logText()).not.toContain('fake-content-safety-outage-detail')
  })
})

describe('MODERATION_FAILURE_MODE=open, local lists off, images checked', () => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await azureGateway({ MODERATION_FAILURE_MODE: 'open', MODERATION_LOCAL_FIRST: 'false', AZURE_CONTENT_SAFETY_IMAGES: 'true' })
  })
  afterAll(async () => { await gw?.close() })
  beforeEach(() => { gw.emulator.reset() })

  it('an outage lets the request through, and the log says it went unchecked', async () => {
    cs.fault = { kind: 'status', status: 503 }
    const res = await text(gw, 'a quiet harbour at dawn')
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(creates(gw)).toHaveLength(1)
    expect(gw.logs.some((l) => l.msg === 'content safety gave no verdict; allowed unchecked (MODERATION_FAILURE_MODE=open)' && l.reason === 'server_error_503')).toBe(true)
  })

  it('without the local lists every prompt goes to Azure', async () => {
    const res = await text(gw, 'a nude statue in a garden')
    expect(res.status).toBe(202)
    expect(cs.requests).toHaveLength(1)
  })

  it('image-to-image: a flagged input image → 422 on image_url, after the prompt passed; nothing sent to Replicate', async () => {
    const red = `data:image/png;base64,${(await makeImage('png', 64, 64)).toString('base64')}`
    const res = await gw.call('POST', '/v1/image-to-image', { prompt: 'the same scene in winter', image_url: red, model: 'flux-dev' }, { prefer: 'respond-async' })
    expect(res.status, JSON.stringify(res.body)).toBe(422)
    expect(res.body).toMatchObject({ code: 'content_policy_violation', categories: ['sexual'], errors: [{ field: 'image_url', message: 'The input image was refused by the content policy.' }] })
    expect(cs.requests.map((r) => r.path)).toEqual(['/contentsafety/text:analyze', '/contentsafety/image:analyze'])
    expect(gw.emulator.requests).toEqual([])
  })

  it('image-to-image: a clean image (smaller than Azure accepts, so scaled up) is generated', async () => {
    const blue = await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 20, g: 60, b: 200 } } }).png().toBuffer()
    const res = await gw.call('POST', '/v1/image-to-image', { prompt: 'the same scene in winter', image_url: `data:image/png;base64,${blue.toString('base64')}`, model: 'flux-dev' }, { prefer: 'respond-async' })
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    expect(cs.requests.map((r) => r.path)).toEqual(['/contentsafety/text:analyze', '/contentsafety/image:analyze'])
    expect(creates(gw)).toHaveLength(1)
  })
})

describe('Entra ID instead of a key', () => {
  it('signs in with the credential when AZURE_CONTENT_SAFETY_KEY is not set', async () => {
    const credential = fakeCredential()
    const gw = await startGateway({
      env: { MODERATION_PROVIDER: 'azure', AZURE_CONTENT_SAFETY_ENDPOINT: CONTENT_SAFETY_ENDPOINT },
      overrides: { azure: { credential, clientOptions: { httpClient: loopbackHttpClient({ [CONTENT_SAFETY_HOST]: cs.port }), retryOptions: { maxRetries: 0 } } } }
    })
    try {
      expect((await text(gw, 'a paper lantern festival')).status).toBe(202)
      expect(cs.requests[0]).toMatchObject({ key: undefined, bearer: 'entra-test-token' })
      expect(credential.calls[0]?.scopes).toEqual(['https://cognitiveservices.azure.com/.default'])
    } finally {
      await gw.close()
    }
  })
})
