import { Readable } from 'node:stream'
import { request } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { makeImage } from '../net/helpers.ts'

/**
 * Every way a request can be malformed, over real HTTP: each is refused with a problem document
 * that names the offending fields, and nothing reaches Replicate (the emulator records no request
 * at all, so nothing was created, fetched or polled on the caller's behalf).
 */

let gw: TestGateway
let pngDataUri: string
/** Host names the image fetcher tried to resolve; it must never get that far here. */
const lookups: string[] = []

// The documented limits (src/config.ts defaults): 64 KiB bodies, and for image-to-image room for an 8 MiB image
// as base64 plus 64 KiB.
const BODY_LIMIT = 64 * 1024
const IMAGE_TO_IMAGE_BODY_LIMIT = Math.ceil(8 * 1024 * 1024 * 4 / 3) + 64 * 1024

beforeAll(async () => {
  gw = await startGateway({
    // basic: image-to-image without a model runs flux-dev, so refusals below are about the input, not the plan.
    env: { DEFAULT_PLAN: 'basic' },
    overrides: {
      imageFetch: {
        // No test here may reach DNS, let alone the network.
        lookup: async (hostname) => {
          lookups.push(hostname)
          throw Object.assign(new Error(`no such host ${hostname}`), { code: 'ENOTFOUND' })
        }
      }
    }
  })
  pngDataUri = `data:image/png;base64,${(await makeImage('png', 32, 24)).toString('base64')}`
})

afterAll(async () => {
  await gw?.close()
})

beforeEach(() => {
  gw.emulator.reset()
  lookups.length = 0
})

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Record<string, unknown>
}

async function send (method: 'GET' | 'POST', path: string, opts: { body?: string | Readable, contentType?: string | null } = {}): Promise<Answer> {
  const headers: Record<string, string> = {}
  const contentType = opts.contentType === undefined ? 'application/json' : opts.contentType
  if (opts.body !== undefined && contentType !== null) headers['content-type'] = contentType
  const res = await request(gw.url + path, { method, headers, body: opts.body })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

const postJson = (path: string, body: unknown): Promise<Answer> => send('POST', path, { body: JSON.stringify(body) })

/** The problem document of a refusal, and nothing behind it upstream. */
function expectRefused (res: Answer, status: number, code: string, fields?: string[]): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json(;|$)/)
  expect(res.body).toMatchObject({ type: `urn:flux-gateway:problem:${code}`, status, code, title: expect.any(String), detail: expect.any(String) })
  expect(res.body.request_id).toBe(res.headers['x-request-id'])
  if (fields !== undefined) {
    const errors = res.body.errors as Array<{ field: string, message: string }>
    expect(errors.map((e) => e.field).sort()).toEqual([...fields].sort())
    for (const e of errors) expect(e.message).toEqual(expect.any(String))
  }
  expect(gw.emulator.requests).toEqual([])
  expect(lookups).toEqual([])
}

type Case = [label: string, body: Record<string, unknown>, fields: string[]]

function label (value: unknown): string {
  const text = JSON.stringify(value)
  return text.length > 48 ? `${text.slice(0, 40)}… (${text.length} chars)` : text
}

/** Wrong JSON types and out-of-range values for a field, all refused by the schema. */
function typeCases (field: string, values: unknown[]): Case[] {
  return values.map((value) => [`${field} = ${label(value)}`, { [field]: value }, [field]])
}

const WRONG_TYPES_FOR_NUMBER = ['1', null, true, false, [1], { value: 1 }]
const WRONG_TYPES_FOR_STRING = [123, null, true, ['a lighthouse'], { text: 'a lighthouse' }]

// ---- text-to-image -------------------------------------------------------------------------------------------

describe('POST /v1/text-to-image', () => {
  const base = { prompt: 'a lighthouse on a cliff at dusk', model: 'flux-dev' }

  const cases: Case[] = [
    ['no fields at all', { prompt: undefined, model: undefined }, ['prompt']],
    ['no prompt', { prompt: undefined }, ['prompt']],
    ...typeCases('prompt', [...WRONG_TYPES_FOR_STRING, '', 'ab', 'x'.repeat(501), '   ', '\t\n\r', '\u00a0\u00a0\u00a0', '\u3000\u3000\u3000\u3000']),
    ...typeCases('model', [...WRONG_TYPES_FOR_STRING, 'flux-pro', 'FLUX-DEV', 'flux-dev ', '', 'black-forest-labs/flux-dev', 'flux-1.1-pro-ultra']),
    ...typeCases('width', [...WRONG_TYPES_FOR_NUMBER, '1024', 1024.5, 0, -512, 256, 1000, 1440, 2048]),
    ...typeCases('height', [...WRONG_TYPES_FOR_NUMBER, '768', 767.9, 0, -768, 1025, 1280, 4096]),
    ...typeCases('num_outputs', [...WRONG_TYPES_FOR_NUMBER, 0, -1, 5, 1.5]),
    ...typeCases('num_inference_steps', [...WRONG_TYPES_FOR_NUMBER, '28', 0, 101, 28.5, -4]),
    ...typeCases('guidance_scale', [...WRONG_TYPES_FOR_NUMBER, '3.5', -0.1, 20.01, 100]),
    ...typeCases('seed', [...WRONG_TYPES_FOR_NUMBER, '42', -1, 4_294_967_296, 1.5, 1e20]),
    ...typeCases('output_format', [...WRONG_TYPES_FOR_STRING, 'gif', 'JPG', 'PNG', 'tiff', '']),
    ...typeCases('negative_prompt', [...WRONG_TYPES_FOR_STRING, 'x'.repeat(501)]),
    // Unknown fields, including the real models' own names for things, which we do not take.
    ['an unknown field', { colour: 'red' }, ['colour']],
    ['a field in the wrong case', { Prompt: 'a cat' }, ['Prompt']],
    ['upstream name: steps', { steps: 28 }, ['steps']],
    ['upstream name: guidance', { guidance: 3 }, ['guidance']],
    ['upstream name: aspect_ratio', { aspect_ratio: '1:1' }, ['aspect_ratio']],
    ['an image-to-image field', { prompt_strength: 0.5 }, ['prompt_strength']],
    ['image_url on text-to-image', { image_url: 'https://example.com/a.png' }, ['image_url']],
    // Limits of the chosen model (from the catalog), refused before anything is sent.
    ['flux-dev: 60 steps', { num_inference_steps: 60 }, ['num_inference_steps']],
    ['flux-dev: 19 steps', { num_inference_steps: 19 }, ['num_inference_steps']],
    ['flux-dev: guidance 11', { guidance_scale: 11 }, ['guidance_scale']],
    ['flux-dev: guidance 0.5', { guidance_scale: 0.5 }, ['guidance_scale']],
    ['flux-schnell: 5 steps', { model: 'flux-schnell', num_inference_steps: 5 }, ['num_inference_steps']],
    ['flux-schnell: 28 steps', { model: 'flux-schnell', num_inference_steps: 28 }, ['num_inference_steps']],
    ['flux-1.1-pro: 2 outputs', { model: 'flux-1.1-pro', num_outputs: 2 }, ['num_outputs']],
    ['flux-kontext-pro: 4 outputs', { model: 'flux-kontext-pro', num_outputs: 4 }, ['num_outputs']],
    // Several at once: every one is named.
    ['five schema errors at once', { prompt: 'ab', width: 1000, seed: -1, output_format: 'gif', colour: 'red' }, ['prompt', 'width', 'seed', 'output_format', 'colour']],
    ['every field of the wrong type', {
      prompt: 1, model: 2, width: '3', height: '4', num_outputs: '5', num_inference_steps: '6', guidance_scale: '7', seed: '8', output_format: 9, negative_prompt: 10
    }, ['prompt', 'model', 'width', 'height', 'num_outputs', 'num_inference_steps', 'guidance_scale', 'seed', 'output_format', 'negative_prompt']],
    ['two per-model errors at once', { num_inference_steps: 60, guidance_scale: 11 }, ['num_inference_steps', 'guidance_scale']],
    ['three per-model errors at once', { num_inference_steps: 10, guidance_scale: 0, prompt: '\u200b\u200b\u200b' }, ['num_inference_steps', 'guidance_scale', 'prompt']],
    ['flux-1.1-pro: 3 outputs and an invisible prompt', { model: 'flux-1.1-pro', num_outputs: 3, prompt: '\u2060\u2060\u2060' }, ['num_outputs', 'prompt']],
    // Blank to the eye: invisible characters only.
    ['a prompt of zero-width spaces', { prompt: '\u200b\u200b\u200b' }, ['prompt']],
    ['a prompt of joiners and a BOM around a space', { prompt: '\u200d \u2060\ufeff' }, ['prompt']],
    ['a prompt of control characters', { prompt: '\u0001\u0002\u0003\u0000' }, ['prompt']]
  ]

  it.each(cases)('%s → 400 naming the field(s)', async (_label, patch, fields) => {
    const body: Record<string, unknown> = { ...base, ...patch }
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key]
    const res = await postJson('/v1/text-to-image', body)
    expectRefused(res, 400, 'validation_error', fields)
  })

  it.each([
    ['the lower edges of every static bound', { model: 'flux-1.1-pro', prompt: 'abc', num_inference_steps: 1, guidance_scale: 0, seed: 0, negative_prompt: '' }],
    ['the upper edges of every static bound', {
      model: 'flux-1.1-pro', prompt: 'p'.repeat(500), num_inference_steps: 100, guidance_scale: 20, seed: 4_294_967_295, negative_prompt: 'n'.repeat(500)
    }],
    ['500 emoji (500 characters, 1000 UTF-16 units)', { model: 'flux-schnell', prompt: '🌊'.repeat(500) }],
    ['flux-dev\'s own edges', { model: 'flux-dev', num_inference_steps: 20, guidance_scale: 1, num_outputs: 4, width: 512, height: 1536 }],
    ['flux-schnell\'s own edges', { model: 'flux-schnell', num_inference_steps: 4, num_outputs: 4, output_format: 'jpeg' }],
    ['a prompt with visible text among invisible characters', { model: 'flux-schnell', prompt: '\u200b a \u200bcat\u200b' }]
  ])('%s → accepted (202)', async (_label, body) => {
    const res = await request(`${gw.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'respond-async' },
      body: JSON.stringify({ ...base, ...body })
    })
    const answer = await res.body.json() as Record<string, unknown>
    expect(res.statusCode, JSON.stringify(answer)).toBe(202)
    // Sent upstream after the answer.
    await gw.upstreamId(answer.id as string)
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })

  it('the valid base request is accepted (so the refusals above are about the patched field)', async () => {
    const res = await send('POST', '/v1/text-to-image', { body: JSON.stringify({ ...base, width: 768, height: 512, seed: 7 }) })
    expect(res.status).toBe(200)
    expect(res.body.status).toBe('succeeded')
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })
})

// ---- image-to-image ------------------------------------------------------------------------------------------

describe('POST /v1/image-to-image', () => {
  // Stands for the PNG data URI, which exists only once beforeAll has run.
  const PNG = '<png data uri>'
  const withPng = (body: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(Object.entries(body).map(([key, value]) => [key, value === PNG ? pngDataUri : value]))
  const base = { prompt: 'make it night-time', model: 'flux-dev', image_url: PNG }

  const cases: Case[] = [
    ['no image_url', { image_url: undefined }, ['image_url']],
    ['no prompt', { prompt: undefined }, ['prompt']],
    ['no prompt and no image_url', { prompt: undefined, image_url: undefined }, ['prompt', 'image_url']],
    ...typeCases('prompt', [...WRONG_TYPES_FOR_STRING, '', 'ab', 'y'.repeat(501), '    ', '\u200b\u200b\u200b\u200b']),
    ...typeCases('image_url', [
      ...WRONG_TYPES_FOR_STRING,
      '',
      'http://example.com/cat.png',
      'ftp://example.com/cat.png',
      'file:///etc/passwd',
      'javascript:alert(1)',
      'example.com/cat.png',
      '//example.com/cat.png',
      'https://example.com/a cat.png',
      'https://user:secret@example.com/cat.png',
      ' https://example.com/cat.png',
      'data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=',
      'data:image/bmp;base64,Qk0=',
      'data:text/plain;base64,aGVsbG8=',
      'data:image/png,not-base64',
      'data:image/png;base64,!!!!',
      // Longer than 10,000,000 characters; and one within that but far past what a URL may be. (Both once made the
      // schema's pattern overflow the stack: a 500.)
      `https://example.com/${'a'.repeat(10_000_000)}`,
      `https://example.com/${'a'.repeat(9_000_000)}.png`,
      `https://example.com/${'a%20'.repeat(2_000_000)}.png`
    ]),
    ...typeCases('model', [...WRONG_TYPES_FOR_STRING, 'flux-pro', 'Flux-Dev']),
    // Models without image-to-image.
    ['flux-schnell', { model: 'flux-schnell' }, ['model']],
    ['flux-1.1-pro', { model: 'flux-1.1-pro' }, ['model']],
    ...typeCases('prompt_strength', [...WRONG_TYPES_FOR_NUMBER, '0.5', -0.01, 1.01, 2]),
    ...typeCases('guidance_scale', [...WRONG_TYPES_FOR_NUMBER, 21, -1]),
    ...typeCases('seed', [...WRONG_TYPES_FOR_NUMBER, -5, 2.5, 4_294_967_296]),
    ...typeCases('output_format', [...WRONG_TYPES_FOR_STRING, 'bmp']),
    // Text-to-image fields have no place here.
    ['width', { width: 1024 }, ['width']],
    ['height', { height: 1024 }, ['height']],
    ['num_outputs', { num_outputs: 2 }, ['num_outputs']],
    ['num_inference_steps', { num_inference_steps: 28 }, ['num_inference_steps']],
    ['negative_prompt', { negative_prompt: 'blurry' }, ['negative_prompt']],
    ['upstream name: image', { image: PNG }, ['image']],
    ['upstream name: input_image', { input_image: PNG }, ['input_image']],
    ['flux-dev: guidance 10.5', { guidance_scale: 10.5 }, ['guidance_scale']],
    ['several at once', { prompt: 'ab', image_url: 'http://example.com/a.png', prompt_strength: 3, seed: -1, extra: true }, ['prompt', 'image_url', 'prompt_strength', 'seed', 'extra']]
  ]

  it('covers every field', () => {
    const named = new Set(cases.flatMap(([, , fields]) => fields))
    for (const field of ['prompt', 'image_url', 'model', 'prompt_strength', 'guidance_scale', 'seed', 'output_format']) expect(named).toContain(field)
  })

  it.each(cases)('%s → 400 naming the field(s)', async (_label, patch, fields) => {
    const body: Record<string, unknown> = withPng({ ...base, ...patch })
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key]
    const res = await postJson('/v1/image-to-image', body)
    expectRefused(res, 400, 'validation_error', fields)
  })

  it('the valid base request is accepted', async () => {
    const res = await postJson('/v1/image-to-image', withPng(base))
    expect(res.status).toBe(200)
    expect(res.body.status).toBe('succeeded')
    expect(gw.emulator.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })

  it('anonymous, with no model on the free plan → the cheapest image-to-image model (flux-dev), as the README promises', async () => {
    // Auth is off (no key ever existed): the anonymous caller has no plan restriction, so naming no model must
    // not be refused when naming flux-dev is allowed.
    const free = await startGateway({ env: { DEFAULT_PLAN: 'free' } })
    try {
      const res = await request(`${free.url}/v1/image-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'make it night-time', image_url: pngDataUri })
      })
      const body = await res.body.json() as Record<string, unknown>
      expect(res.statusCode).toBe(200)
      expect(body).toMatchObject({ model: 'flux-dev', status: 'succeeded', cost_credits: 2 })
      const creates = free.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))
      expect(creates.map((r) => r.path)).toEqual(['/v1/models/black-forest-labs/flux-dev/predictions'])
    } finally {
      await free.close()
    }
  })
})

// ---- quotes ------------------------------------------------------------------------------------------------

describe('POST /v1/quotes', () => {
  const base = { model: 'flux-dev', num_images: 2 }
  const cases: Case[] = [
    ['no model', { model: undefined }, ['model']],
    ['no fields', { model: undefined, num_images: undefined }, ['model']],
    ...typeCases('model', [...WRONG_TYPES_FOR_STRING, 'flux-pro', 'FLUX-DEV', '']),
    ...typeCases('num_images', [...WRONG_TYPES_FOR_NUMBER, '2', 0, -1, 5, 1.5, 100]),
    ['an unknown field', { num_outputs: 2 }, ['num_outputs']],
    ['all at once', { model: 'nope', num_images: 0, plan: 'premium' }, ['model', 'num_images', 'plan']]
  ]

  it.each(cases)('%s → 400 naming the field(s)', async (_label, patch, fields) => {
    const body: Record<string, unknown> = { ...base, ...patch }
    for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key]
    const res = await postJson('/v1/quotes', body)
    expectRefused(res, 400, 'validation_error', fields)
  })

  it('the valid base request is priced', async () => {
    const res = await postJson('/v1/quotes', base)
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ model: 'flux-dev', num_images: 2, credits_per_image: 2, total_credits: 4 })
  })
})

// ---- bodies that are not a JSON object ---------------------------------------------------------------------

describe.each(['/v1/text-to-image', '/v1/image-to-image', '/v1/quotes'])('POST %s with a body that is not a JSON object', (path) => {
  it.each([
    ['truncated JSON', '{"prompt": "a cat"'],
    ['a trailing comma', '{"prompt": "a cat",}'],
    ['single quotes', "{'prompt': 'a cat'}"],
    ['form encoding sent as JSON', 'prompt=a+cat'],
    ['a __proto__ key', '{"prompt": "a cat", "__proto__": {"polluted": true}}'],
    ['a constructor.prototype key', '{"prompt": "a cat", "constructor": {"prototype": {"polluted": true}}}']
  ])('%s → 400 naming body', async (_label, text) => {
    const res = await send('POST', path, { body: text })
    expectRefused(res, 400, 'validation_error', ['body'])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it.each([
    ['null', 'null'],
    ['an array', '[{"prompt": "a cat"}]'],
    ['a string', '"a cat"'],
    ['a number', '42'],
    ['true', 'true']
  ])('%s → 400 naming body', async (_label, text) => {
    const res = await send('POST', path, { body: text })
    expectRefused(res, 400, 'validation_error', ['body'])
  })

  it('an empty body with a JSON content type → 400 naming body', async () => {
    const res = await send('POST', path, { body: '' })
    expectRefused(res, 400, 'validation_error', ['body'])
  })

  it('no body and no content type → 400 naming body', async () => {
    const res = await send('POST', path)
    expectRefused(res, 400, 'validation_error', ['body'])
  })

  it.each([
    'text/plain',
    'text/plain; charset=utf-8',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=xyz',
    'application/xml',
    'text/json',
    'application/octet-stream'
  ])('a JSON body sent as %s → 415 unsupported_media_type', async (contentType) => {
    const res = await send('POST', path, { body: JSON.stringify({ prompt: 'a lighthouse', model: 'flux-dev' }), contentType })
    expectRefused(res, 415, 'unsupported_media_type')
  })

  it('a body without a content type → 415 unsupported_media_type', async () => {
    const res = await send('POST', path, { body: JSON.stringify({ prompt: 'a lighthouse', model: 'flux-dev' }), contentType: null })
    expectRefused(res, 415, 'unsupported_media_type')
  })
})

// ---- body size ---------------------------------------------------------------------------------------------

/** A JSON text of exactly `size` bytes: `fields` plus a padding field whose value fills it up. */
function jsonOfSize (size: number, fields: Record<string, unknown>, pad: string): string {
  const empty = JSON.stringify({ ...fields, [pad]: '' })
  const text = JSON.stringify({ ...fields, [pad]: 'x'.repeat(size - Buffer.byteLength(empty)) })
  expect(Buffer.byteLength(text)).toBe(size)
  return text
}

describe('body size limits', () => {
  it('text-to-image: a body of exactly the limit is read (400 on its content), one byte more is 413', async () => {
    const atLimit = jsonOfSize(BODY_LIMIT, { prompt: 'a lighthouse', model: 'flux-dev' }, 'negative_prompt')
    expectRefused(await send('POST', '/v1/text-to-image', { body: atLimit }), 400, 'validation_error', ['negative_prompt'])
    const over = jsonOfSize(BODY_LIMIT + 1, { prompt: 'a lighthouse', model: 'flux-dev' }, 'negative_prompt')
    expectRefused(await send('POST', '/v1/text-to-image', { body: over }), 413, 'payload_too_large')
  })

  it('quotes: one byte over the limit is 413', async () => {
    const atLimit = jsonOfSize(BODY_LIMIT, { model: 'flux-dev' }, 'note')
    expectRefused(await send('POST', '/v1/quotes', { body: atLimit }), 400, 'validation_error', ['note'])
    expectRefused(await send('POST', '/v1/quotes', { body: jsonOfSize(BODY_LIMIT + 1, { model: 'flux-dev' }, 'note') }), 413, 'payload_too_large')
  })

  it('text-to-image: an oversized body sent chunked, without a Content-Length, is 413 too', async () => {
    const chunk = Buffer.from('x'.repeat(8 * 1024))
    const body = Readable.from((function * () {
      yield Buffer.from('{"prompt": "a lighthouse", "negative_prompt": "')
      for (let i = 0; i < 10; i++) yield chunk
      yield Buffer.from('"}')
    })())
    expectRefused(await send('POST', '/v1/text-to-image', { body }), 413, 'payload_too_large')
  })

  it('image-to-image takes far larger bodies: 1 MB is read, not refused for its size', async () => {
    // A data URI of 750 KB of zero bytes: within the body limit, so it is read and then refused as not a PNG.
    const body = JSON.stringify({ prompt: 'make it night-time', model: 'flux-dev', image_url: `data:image/png;base64,${'A'.repeat(1_000_000)}` })
    expect(Buffer.byteLength(body)).toBeGreaterThan(BODY_LIMIT * 15)
    const res = await send('POST', '/v1/image-to-image', { body })
    expectRefused(res, 415, 'unsupported_media_type', ['image_url'])
  })

  it('image-to-image: a body of exactly its limit is read (400 on its content), one byte more is 413', async () => {
    const fields = { prompt: 'make it night-time', model: 'flux-dev' }
    expectRefused(await send('POST', '/v1/image-to-image', { body: jsonOfSize(IMAGE_TO_IMAGE_BODY_LIMIT, fields, 'image_url') }), 400, 'validation_error', ['image_url'])
    expectRefused(await send('POST', '/v1/image-to-image', { body: jsonOfSize(IMAGE_TO_IMAGE_BODY_LIMIT + 1, fields, 'image_url') }), 413, 'payload_too_large')
  })
})

// ---- GET /v1/predictions/{id} and cancel -------------------------------------------------------------------

describe('GET /v1/predictions/{id}', () => {
  it.each([
    ['wait=abc', 'query.wait'],
    ['wait=-1', 'query.wait'],
    ['wait=61', 'query.wait'],
    ['wait=1.5', 'query.wait'],
    ['wait=true', 'query.wait'],
    ['wait=1e3', 'query.wait'],
    ['wait=1&wait=2', 'query.wait'],
    ['timeout=5', 'query.timeout']
  ])('?%s → 400 naming %s', async (query, field) => {
    const res = await send('GET', `/v1/predictions/abc123?${query}`)
    expectRefused(res, 400, 'validation_error', [field])
  })

  it('several bad query parameters are all named', async () => {
    const res = await send('GET', '/v1/predictions/abc123?wait=99&poll=1')
    expectRefused(res, 400, 'validation_error', ['query.wait', 'query.poll'])
  })

  it.each([
    ['upper case', 'ABC123'],
    ['a hyphen', 'abc-123'],
    ['an underscore', 'abc_123'],
    ['65 characters', 'a'.repeat(65)],
    ['an encoded space', 'abc%20123'],
    ['an encoded slash', 'abc%2F123'],
    ['a dot', 'abc.123'],
    ['non-ASCII', '%C3%A9t%C3%A9']
  ])('an id with %s → 400 naming params.id', async (_label, id) => {
    const res = await send('GET', `/v1/predictions/${id}`)
    expectRefused(res, 400, 'validation_error', ['params.id'])
  })

  it.each([
    ['upper case', 'ABC123'],
    ['65 characters', 'b'.repeat(65)]
  ])('cancel with an id with %s → 400 naming params.id', async (_label, id) => {
    const res = await send('POST', `/v1/predictions/${id}/cancel`)
    expectRefused(res, 400, 'validation_error', ['params.id'])
  })

  it('a well-formed id and wait are taken (so the refusals above are about the input): unknown is 404, asked of nobody upstream', async () => {
    const res = await send('GET', '/v1/predictions/abc123?wait=0')
    expect(res.status).toBe(404)
    expect(res.body.code).toBe('not_found')
    expect(gw.emulator.requests).toEqual([])
  })
})
