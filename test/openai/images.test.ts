import OpenAI, { toFile } from 'openai'
import sharp from 'sharp'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sniffImageType } from '../../src/net/image-type.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, storeWithKeys } from '../tenancy/helpers.ts'

let gw: TestGateway
let keys: Record<'basic' | 'premium' | 'poor', string>
let client: OpenAI

beforeAll(async () => {
  const made = await storeWithKeys({ basic: { plan: 'basic' }, premium: { plan: 'premium' }, poor: { plan: 'basic', budgetCredits: 1 } })
  keys = made.keys
  gw = await startGateway({ overrides: { tenancy: { store: made.store } } })
  // The official SDK, pointed at the gateway; no retries, so every request it makes is one we see.
  client = new OpenAI({ apiKey: keys.basic, baseURL: `${gw.url}/v1`, maxRetries: 0 })
})
afterAll(async () => {
  await gw.close()
})

const creates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

describe('the OpenAI Images API, through the official openai package', () => {
  it('generates with response_format url: signed URLs of kept images, one upstream create, the credits settled', async () => {
    const before = creates().length
    const { data: result, response } = await client.images.generate({ model: 'flux-schnell', prompt: 'a lighthouse at dusk, oil painting', n: 2, size: '1024x1024' }).withResponse()
    expect(result.created).toBeGreaterThan(1_700_000_000)
    expect(result.data).toHaveLength(2)
    const id = response.headers.get('x-prediction-id')!
    expect(result.data!.map((d) => d.url)).toEqual([signedImageUrl(gw.url, id, 0), signedImageUrl(gw.url, id, 1)])
    const image = await request(result.data![0]!.url!)
    expect(image.statusCode).toBe(200)
    expect(sniffImageType(Buffer.from(await image.body.arrayBuffer()))).toBe('image/webp')
    expect(creates().length - before).toBe(1)
    const upstream = creates().at(-1)!.body as { input: Record<string, unknown> }
    expect(upstream.input).toMatchObject({ prompt: 'a lighthouse at dusk, oil painting', num_outputs: 2 })
    const prediction = await call(gw.url, 'GET', `/v1/predictions/${id}`, { key: keys.basic })
    expect(prediction.body).toMatchObject({ status: 'succeeded', model: 'flux-schnell', cost_credits: 2 })
  })

  it('generates with response_format b64_json: the kept image bytes inline', async () => {
    const result = await client.images.generate({ model: 'flux-dev', prompt: 'a paper boat on a pond', response_format: 'b64_json' })
    expect(result.data).toHaveLength(1)
    const bytes = Buffer.from(result.data![0]!.b64_json!, 'base64')
    expect(sniffImageType(bytes)).toBe('image/webp')
    expect((await sharp(bytes).metadata()).width).toBeGreaterThan(0)
  })

  it('says in a Warning header what it adjusted or ignored (size, quality, style)', async () => {
    const { response } = await client.images.generate({ model: 'flux-schnell', prompt: 'a wide harbour at noon', size: '1792x1024', quality: 'hd', style: 'vivid' }).withResponse()
    const warning = response.headers.get('warning')!
    expect(warning).toContain('299 flux-gateway "size 1792x1024 was read as')
    expect(warning).toContain('quality is not used by FLUX models')
    expect(warning).toContain('style is not used by FLUX models')
  })

  it('edits an uploaded image with the image-to-image pipeline', async () => {
    const png = await sharp({ create: { width: 96, height: 64, channels: 3, background: '#3366cc' } }).png().toBuffer()
    const before = creates().length
    const result = await client.images.edit({ model: 'flux-dev', image: await toFile(png, 'barn.png', { type: 'image/png' }), prompt: 'the same barn in winter', response_format: 'b64_json' })
    expect(result.data).toHaveLength(1)
    expect(sniffImageType(Buffer.from(result.data![0]!.b64_json!, 'base64'))).toBe('image/webp')
    expect(creates().length - before).toBe(1)
    const input = (creates().at(-1)!.body as { input: Record<string, unknown> }).input
    // The uploaded bytes, as a data URI, exactly.
    expect(input.image).toBe(`data:image/png;base64,${png.toString('base64')}`)
  })

  it('refuses a prompt by the content policy as OpenAI does: a BadRequestError with code content_policy_violation, nothing sent upstream', async () => {
    const before = creates().length
    const err = await client.images.generate({ model: 'flux-schnell', prompt: 'a n.u.d.e statue' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect(err).toMatchObject({ status: 400, code: 'content_policy_violation', type: 'invalid_request_error' })
    expect(creates().length).toBe(before)
  })

  it('answers an unknown model with OpenAI\'s NotFoundError model_not_found', async () => {
    const err = await client.images.generate({ model: 'dall-e-3', prompt: 'a cat' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.NotFoundError)
    expect(err).toMatchObject({ status: 404, code: 'model_not_found', param: 'model' })
    expect((err as Error).message).toContain('flux-schnell')
  })

  it('names the OpenAI field at fault, and refuses a model outside the plan as PermissionDenied', async () => {
    const premium = new OpenAI({ apiKey: keys.premium, baseURL: `${gw.url}/v1`, maxRetries: 0 })
    const many = await premium.images.generate({ model: 'flux-1.1-pro', prompt: 'two cats', n: 2 }).catch((e: unknown) => e)
    expect(many).toBeInstanceOf(OpenAI.BadRequestError)
    expect(many).toMatchObject({ status: 400, param: 'n', code: 'validation_error' })
    expect((many as Error).message).toMatch(/^400 n: flux-1\.1-pro makes one image per prediction/)

    const notInPlan = await client.images.generate({ model: 'flux-1.1-pro', prompt: 'two cats' }).catch((e: unknown) => e)
    expect(notInPlan).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(notInPlan).toMatchObject({ status: 403, code: 'model_not_in_plan' })

    const short = await client.images.generate({ model: 'flux-schnell', prompt: 'no' }).catch((e: unknown) => e)
    expect(short).toBeInstanceOf(OpenAI.BadRequestError)
    expect(short).toMatchObject({ param: 'prompt', code: 'validation_error' })
  })

  it('answers authentication and budget refusals in OpenAI\'s shape, and tells the SDK not to retry a spent budget', async () => {
    const stranger = new OpenAI({ apiKey: 'fgw_0000000000000000_notarealkeynotarealkeynotarealkey', baseURL: `${gw.url}/v1`, maxRetries: 0 })
    const denied = await stranger.images.generate({ prompt: 'a cat' }).catch((e: unknown) => e)
    expect(denied).toBeInstanceOf(OpenAI.AuthenticationError)
    expect(denied).toMatchObject({ status: 401, code: 'invalid_api_key' })

    const poor = new OpenAI({ apiKey: keys.poor, baseURL: `${gw.url}/v1`, maxRetries: 2 })
    const before = gw.emulator.requests.length
    const spent = await poor.images.generate({ model: 'flux-dev', prompt: 'an expensive cat' }).catch((e: unknown) => e)
    expect(spent).toBeInstanceOf(OpenAI.RateLimitError)
    expect(spent).toMatchObject({ status: 429, code: 'insufficient_quota', type: 'insufficient_quota' })
    expect((spent as InstanceType<typeof OpenAI.APIError>).headers?.get('x-should-retry')).toBe('false')
    expect(gw.emulator.requests.length).toBe(before)
  })
})
