import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { IMAGE_URL_MESSAGE } from '../../src/schemas/generation.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

/** What a person reads when a request is refused: a sentence that says what to send, never a regex. */

let gw: TestGateway
beforeAll(async () => {
  gw = await startGateway({
    env: { DEFAULT_PLAN: 'basic' },
    overrides: { imageFetch: { lookup: async (host) => { throw Object.assign(new Error(`no such host ${host}`), { code: 'ENOTFOUND' }) } } }
  })
})
afterAll(async () => { await gw.close() })
beforeEach(() => { gw.emulator.reset() })

async function errorsOf (path: string, body: unknown): Promise<Record<string, string>> {
  const res = await gw.call('POST', path, body)
  expect(res.status, JSON.stringify(res.body)).toBe(400)
  expect(res.body.code).toBe('validation_error')
  expect(gw.emulator.requests).toEqual([])
  return Object.fromEntries((res.body.errors as Array<{ field: string, message: string }>).map((e) => [e.field, e.message]))
}

describe('validation messages', () => {
  it.each([
    'http://example.com/cat.png',
    'ftp://example.com/cat.png',
    'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=',
    'https://example.com/a cat.png'
  ])('image_url %s says in words what is accepted', async (url) => {
    const errors = await errorsOf('/v1/image-to-image', { prompt: 'make it night', image_url: url })
    expect(errors.image_url).toBe(IMAGE_URL_MESSAGE)
    expect(errors.image_url).toMatch(/^must be an https:\/\/ URL .* data: URI of a PNG, JPEG, GIF or WebP image/)
    expect(errors.image_url).not.toMatch(/pattern|\^|\[A-Z/)
    expect(errors.image_url?.length).toBeLessThan(140)
  })

  it('a blank prompt is "must not be blank", not a pattern', async () => {
    expect((await errorsOf('/v1/text-to-image', { prompt: '     ' })).prompt).toBe('must not be blank')
  })

  it.each([
    ['/v1/text-to-image', { steps: 28 }, 'steps', 'num_inference_steps'],
    ['/v1/text-to-image', { guidance: 3 }, 'guidance', 'guidance_scale'],
    ['/v1/text-to-image', { num_images: 2 }, 'num_images', 'num_outputs'],
    ['/v1/text-to-image', { n: 2 }, 'n', 'num_outputs'],
    ['/v1/text-to-image', { numInferenceSteps: 28 }, 'numInferenceSteps', 'num_inference_steps'],
    ['/v1/text-to-image', { Prompt: 'a cat on a mat' }, 'Prompt', 'prompt'],
    ['/v1/text-to-image', { format: 'png' }, 'format', 'output_format'],
    ['/v1/text-to-image', { aspect_ratio: '1:1' }, 'aspect_ratio', 'width or height'],
    ['/v1/image-to-image', { image_url: 'https://example.com/a.png', image: 'https://example.com/a.png' }, 'image', 'image_url'],
    ['/v1/image-to-image', { image_url: 'https://example.com/a.png', strength: 0.5 }, 'strength', 'prompt_strength'],
    ['/v1/quotes', { model: 'flux-dev', num_outputs: 2 }, 'num_outputs', 'num_images']
  ])('%s: unknown field %j hints at the catalog\'s own name', async (path, patch, field, meant) => {
    const errors = await errorsOf(path, { prompt: 'a lighthouse at dusk', ...patch })
    expect(errors[field]).toBe(`is not a known field; did you mean ${meant}?`)
  })

  it('gives no hint where the named field does not exist, or for a name that resembles nothing', async () => {
    // num_inference_steps is a text-to-image field only.
    expect((await errorsOf('/v1/image-to-image', { prompt: 'make it night', image_url: 'https://example.com/a.png', steps: 28 })).steps)
      .toBe('is not a known field')
    expect((await errorsOf('/v1/text-to-image', { prompt: 'a lighthouse', colour: 'red' })).colour).toBe('is not a known field')
  })
})

describe('image data that is not what it says', () => {
  it('data:image/png;base64,AAAA is "not a valid PNG image", not a list of types', async () => {
    const res = await gw.call('POST', '/v1/image-to-image', { prompt: 'make it night', image_url: 'data:image/png;base64,AAAA' })
    expect(res.status).toBe(415)
    expect(res.body.code).toBe('unsupported_media_type')
    const message = 'The data is not a valid PNG image, as its data: URI declares: its bytes are not PNG, JPEG, WebP or GIF data.'
    expect(res.body.detail).toBe(message)
    expect(res.body.errors).toEqual([{ field: 'image_url', message }])
    expect(gw.emulator.requests).toEqual([])
  })
})
