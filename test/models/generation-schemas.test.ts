import swagger from '@fastify/swagger'
import type { TSchema } from '@sinclair/typebox'
import type { Ajv } from 'ajv'
import Fastify from 'fastify'
import { describe, expect, it } from 'vitest'
import {
  GENERATION_SCHEMAS,
  IMAGE_URL_PATTERN,
  ImageToImageRequestSchema,
  QuoteRequestSchema,
  TextToImageRequestSchema
} from '../../src/schemas/generation.ts'
import { newAjv } from './reference.ts'

function generationAjv (): Ajv {
  const ajv = newAjv()
  for (const schema of GENERATION_SCHEMAS) ajv.addSchema(schema)
  return ajv
}

const ajv = generationAjv()
const textToImage = ajv.getSchema('TextToImageRequest')
const imageToImage = ajv.getSchema('ImageToImageRequest')
const quoteRequest = ajv.getSchema('QuoteRequest')
if (!textToImage || !imageToImage || !quoteRequest) throw new Error('schemas did not register')

/** The request fields a body fails on (property names, `/`-free). */
function badFields (validate: typeof textToImage, body: unknown): string[] {
  if (validate!(body)) return []
  const fields = new Set<string>()
  for (const e of validate!.errors ?? []) {
    const params = e.params as { additionalProperty?: string, missingProperty?: string }
    const field = e.instancePath.split('/')[1] ?? params.additionalProperty ?? params.missingProperty ?? ''
    fields.add(field)
  }
  return [...fields].sort()
}

describe('generation schemas', () => {
  it('all have a $id and compile under strict Ajv with each other as references', () => {
    expect(GENERATION_SCHEMAS.map((s) => s.$id)).toEqual([
      'ModelId', 'OutputFormat', 'Warning', 'TextToImageRequest', 'ImageToImageRequest',
      'QuoteRequest', 'Quote', 'ModelInfo', 'ModelList'
    ])
    for (const schema of GENERATION_SCHEMAS) expect(ajv.getSchema(schema.$id!)).toBeTypeOf('function')
  })

  // Descriptions and examples are the API documentation: every field has both, and every example is valid.
  for (const schema of GENERATION_SCHEMAS) {
    const properties = (schema as { properties?: Record<string, TSchema> }).properties
    if (properties === undefined) continue
    it(`${schema.$id}: every field is described and its examples are valid`, () => {
      for (const [name, property] of Object.entries(properties)) {
        expect(property.description, `${schema.$id}.${name} description`).toBeTypeOf('string')
        expect(property.examples, `${schema.$id}.${name} examples`).toBeInstanceOf(Array)
        const validate = ajv.compile({ ...property, $id: undefined })
        for (const example of property.examples as unknown[]) {
          expect(validate(example), `${schema.$id}.${name} example ${JSON.stringify(example)}`).toBe(true)
        }
      }
    })
  }

  describe('TextToImageRequest', () => {
    const full = {
      prompt: 'A lighthouse on a cliff at dusk',
      model: 'flux-dev',
      width: 1024,
      height: 768,
      num_outputs: 2,
      num_inference_steps: 28,
      guidance_scale: 3.5,
      seed: 42,
      output_format: 'jpeg',
      negative_prompt: 'blurry'
    }

    it('accepts a prompt alone and a full request', () => {
      expect(badFields(textToImage, { prompt: 'a cat' })).toEqual([])
      expect(badFields(textToImage, full)).toEqual([])
    })

    it.each([
      ['a blank prompt', { prompt: '   \t\n' }, ['prompt']],
      ['a 2-character prompt', { prompt: 'ab' }, ['prompt']],
      ['a 501-character prompt', { prompt: 'a'.repeat(501) }, ['prompt']],
      ['no prompt', { width: 512 }, ['prompt']],
      ['an unknown model', { prompt: 'a cat', model: 'flux-pro' }, ['model']],
      ['a size off the list', { prompt: 'a cat', width: 1000, height: 2048 }, ['height', 'width']],
      ['5 outputs', { prompt: 'a cat', num_outputs: 5 }, ['num_outputs']],
      ['0 steps', { prompt: 'a cat', num_inference_steps: 0 }, ['num_inference_steps']],
      ['101 steps', { prompt: 'a cat', num_inference_steps: 101 }, ['num_inference_steps']],
      ['fractional steps', { prompt: 'a cat', num_inference_steps: 2.5 }, ['num_inference_steps']],
      ['guidance 20.5', { prompt: 'a cat', guidance_scale: 20.5 }, ['guidance_scale']],
      ['negative guidance', { prompt: 'a cat', guidance_scale: -1 }, ['guidance_scale']],
      ['a negative seed', { prompt: 'a cat', seed: -1 }, ['seed']],
      ['a seed past 32 bits', { prompt: 'a cat', seed: 4294967296 }, ['seed']],
      ['gif output', { prompt: 'a cat', output_format: 'gif' }, ['output_format']],
      ['an unknown field', { prompt: 'a cat', steps: 4 }, ['steps']]
    ])('refuses %s', (_name, body, fields) => {
      expect(badFields(textToImage, body)).toEqual(fields)
    })

    it('accepts the edges of the static ranges', () => {
      for (const body of [
        { prompt: 'abc' },
        { prompt: 'a'.repeat(500) },
        { prompt: ' x ' },
        { prompt: 'a cat', num_inference_steps: 1, guidance_scale: 0, seed: 0, num_outputs: 1 },
        { prompt: 'a cat', num_inference_steps: 100, guidance_scale: 20, seed: 4294967295, num_outputs: 4 }
      ]) {
        expect(badFields(textToImage, body), JSON.stringify(body)).toEqual([])
      }
    })

    it('has no `default` keywords, so a validator that fills defaults adds nothing (the service applies them)', () => {
      const filling = newAjvWithDefaults()
      const body: Record<string, unknown> = { prompt: 'a cat' }
      expect(filling(body)).toBe(true)
      expect(body).toEqual({ prompt: 'a cat' })
    })
  })

  describe('ImageToImageRequest', () => {
    it('accepts https URLs and image data URIs', () => {
      for (const imageUrl of [
        'https://example.com/photos/street.jpg',
        'https://cdn.example.com:8443/a/b%20c.png?x=1&y=a/b#frag',
        'https://api.replicate.com/v1/files/abc123/download?expiry=1&owner=me&signature=a%2Bb',
        'data:image/png;base64,iVBORw0KGgo=',
        'data:image/jpeg;base64,/9j/4AAQSkZJRg==',
        'data:image/webp;base64,UklGRg',
        'data:image/gif;base64,R0lGODlh'
      ]) {
        expect(badFields(imageToImage, { prompt: 'make it night', image_url: imageUrl }), imageUrl).toEqual([])
      }
    })

    it.each([
      'http://example.com/a.png',
      'ftp://example.com/a.png',
      'https://',
      'https://example.com/a b.png',
      'https://example.com/a|b.png',
      'https://example.com/é.png',
      'https://user@example.com/a.png',
      'data:text/plain;base64,aGVsbG8=',
      'data:image/svg+xml;base64,PHN2Zz4=',
      'data:image/png,rawbytes',
      'data:image/png;base64,not base64!',
      ''
    ])('refuses the image_url %j', (imageUrl) => {
      expect(badFields(imageToImage, { prompt: 'make it night', image_url: imageUrl })).toEqual(['image_url'])
    })

    it('takes a data URI of several MB quickly, and refuses one past 10,000,000 characters', () => {
      const head = 'data:image/png;base64,'
      const big = head + 'A'.repeat(9_999_000 - head.length)
      const started = performance.now()
      expect(badFields(imageToImage, { prompt: 'make it night', image_url: big })).toEqual([])
      expect(performance.now() - started).toBeLessThan(2_000)
      const tooBig = head + 'A'.repeat(10_000_001 - head.length)
      expect(badFields(imageToImage, { prompt: 'make it night', image_url: tooBig })).toEqual(['image_url'])
    })

    it('only accepts https URLs that the upstream `format: uri` check accepts too', () => {
      const uri = newAjv().compile({ type: 'string', format: 'uri' })
      const pattern = new RegExp(IMAGE_URL_PATTERN, 'u')
      const candidates = [
        'https://example.com/a.png', 'https://e.com', 'https://e.com/', 'https://e.com?q', 'https://e.com/#x',
        "https://e.com/a!$&'()*+,;=:@b.png", 'https://e.com/%41%42', 'https://e.com/a%zz', 'https://e.com/a#b#c',
        'https://e.com/[x]', 'https://e.com/a\\b', 'https://e.com/a"b', 'https://e.com/a{b}', 'https://e.com/a^b',
        'https://e.com/a`b', 'https://e.com/a<b>', 'https://1.2.3.4:99999/x', 'https://-e-.com/x'
      ]
      for (const candidate of candidates) {
        if (pattern.test(candidate)) expect(uri(candidate), candidate).toBe(true)
      }
    })

    it.each([
      ['no image_url', { prompt: 'make it night' }, ['image_url']],
      ['prompt_strength 1.5', { prompt: 'make it night', image_url: 'https://e.com/a.png', prompt_strength: 1.5 }, ['prompt_strength']],
      ['num_outputs (not an image-to-image field)', { prompt: 'make it night', image_url: 'https://e.com/a.png', num_outputs: 1 }, ['num_outputs']],
      ['width (not an image-to-image field)', { prompt: 'make it night', image_url: 'https://e.com/a.png', width: 512 }, ['width']]
    ])('refuses %s', (_name, body, fields) => {
      expect(badFields(imageToImage, body)).toEqual(fields)
    })
  })

  describe('QuoteRequest', () => {
    it('takes a model and up to 4 images', () => {
      expect(badFields(quoteRequest, { model: 'flux-dev' })).toEqual([])
      expect(badFields(quoteRequest, { model: 'flux-dev', num_images: 4 })).toEqual([])
      expect(badFields(quoteRequest, { model: 'flux-dev', num_images: 5 })).toEqual(['num_images'])
      expect(badFields(quoteRequest, { num_images: 1 })).toEqual(['model'])
    })
  })

  it('registers on Fastify, validates a route body through the $refs and becomes named OpenAPI components', async () => {
    // The schemas' `x-error-message` wording is an annotation Fastify's strict Ajv must know about.
    const app = Fastify({ ajv: { customOptions: { keywords: ['x-error-message'] } } })
    try {
      // As the app's swagger plugin does: a schema's $id is its component name.
      await app.register(swagger, {
        openapi: { openapi: '3.1.0', info: { title: 'test', version: '0' } },
        refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) }
      })
      for (const schema of GENERATION_SCHEMAS) app.addSchema(schema)
      app.post('/t2i', { schema: { body: TextToImageRequestSchema } }, async () => ({ ok: true }))
      app.post('/i2i', { schema: { body: ImageToImageRequestSchema } }, async () => ({ ok: true }))
      app.get('/quote', { schema: { querystring: QuoteRequestSchema } }, async () => ({ ok: true }))
      await app.ready()

      expect((await app.inject({ method: 'POST', url: '/t2i', payload: { prompt: 'a cat', model: 'flux-dev' } })).statusCode).toBe(200)
      expect((await app.inject({ method: 'POST', url: '/t2i', payload: { prompt: 'a cat', model: 'nope' } })).statusCode).toBe(400)
      expect((await app.inject({ method: 'POST', url: '/t2i', payload: { prompt: 'a cat', output_format: 'gif' } })).statusCode).toBe(400)
      expect((await app.inject({ method: 'GET', url: '/quote?model=flux-1.1-pro&num_images=4' })).statusCode).toBe(200)

      const doc = app.swagger() as { components?: { schemas?: Record<string, unknown> } }
      const components = doc.components?.schemas ?? {}
      for (const name of ['ModelId', 'OutputFormat', 'Warning', 'TextToImageRequest', 'ImageToImageRequest', 'Quote', 'ModelInfo', 'ModelList']) {
        expect(Object.keys(components)).toContain(name)
      }
      expect(JSON.stringify(components.TextToImageRequest)).toContain('#/components/schemas/ModelId')
    } finally {
      await app.close()
    }
  })
})

function newAjvWithDefaults () {
  const filling = newAjv({ useDefaults: true })
  for (const schema of GENERATION_SCHEMAS) filling.addSchema(schema)
  const validate = filling.getSchema('TextToImageRequest')
  if (!validate) throw new Error('TextToImageRequest did not register')
  return validate
}
