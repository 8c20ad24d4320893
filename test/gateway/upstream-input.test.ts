import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import type { AnySchema, ValidateFunction } from 'ajv'
import formats from 'ajv-formats'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { makeImage } from '../net/helpers.ts'

/**
 * What reaches Replicate for valid requests, over HTTP: for every model, the `input` of the create that arrived at
 * the emulator is valid against that model's schema in test/fixtures/replicate/flux-models.json (read from disk, not
 * from src/), holds no key the model does not have, goes to the model's own path, and the response's `warnings` say
 * exactly what was dropped or adjusted on the way.
 */

// ---- the reference: the real models' input schemas ---------------------------------------------------------

interface ReferenceFile {
  models: Record<string, { input: { type: 'object', required: string[], properties: Record<string, unknown> } }>
}

const REFERENCE_PATH = fileURLToPath(new URL('../fixtures/replicate/flux-models.json', import.meta.url))
const REFERENCE = JSON.parse(readFileSync(REFERENCE_PATH, 'utf8')) as ReferenceFile

const ajv = new Ajv({ allErrors: true, strict: false })
formats.default(ajv)

/** Per model: the schema as published (Replicate ignores unknown keys), and the same with unknown keys refused. */
const VALIDATORS: Record<string, { published: ValidateFunction, exact: ValidateFunction }> = {}
for (const [ref, model] of Object.entries(REFERENCE.models)) {
  VALIDATORS[ref] = {
    published: ajv.compile(model.input as AnySchema),
    exact: ajv.compile({ ...model.input, additionalProperties: false } as AnySchema)
  }
}

const MODELS = {
  'flux-schnell': 'black-forest-labs/flux-schnell',
  'flux-dev': 'black-forest-labs/flux-dev',
  'flux-1.1-pro': 'black-forest-labs/flux-1.1-pro',
  'flux-kontext-pro': 'black-forest-labs/flux-kontext-pro'
} as const
type ModelId = keyof typeof MODELS

// ---- the gateway ------------------------------------------------------------------------------------------------

let gw: TestGateway
let png: string
let jpeg: string

beforeAll(async () => {
  gw = await startGateway({ env: { DEFAULT_PLAN: 'premium' } })
  png = `data:image/png;base64,${(await makeImage('png', 64, 48)).toString('base64')}`
  jpeg = `data:image/jpeg;base64,${(await makeImage('jpeg', 40, 60)).toString('base64')}`
})

afterAll(async () => {
  await gw?.close()
})

beforeEach(() => {
  gw.emulator.reset()
})

const post = (path: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => gw.call('POST', path, body, headers)

/** The one create that reached the emulator: its path and input, after checking both against the reference. */
function theCreate (model: ModelId): Record<string, unknown> {
  const created = gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))
  expect(created).toHaveLength(1)
  const ref = MODELS[model]
  expect(created[0]!.path).toBe(`/v1/models/${ref}/predictions`)
  const input = (created[0]!.body as { input: Record<string, unknown> }).input
  const { published, exact } = VALIDATORS[ref]!
  expect(published(input), JSON.stringify(published.errors)).toBe(true)
  expect(exact(input), `keys ${ref} does not have: ${JSON.stringify(exact.errors)}`).toBe(true)
  return input
}

function warningsOf (body: Record<string, unknown>): string[] {
  const warnings = body.warnings as Array<{ field: string, code: string, message: string }>
  for (const w of warnings) expect(w.message).toEqual(expect.any(String))
  return warnings.map((w) => `${w.field}:${w.code}`).sort()
}

// ---- exact inputs -----------------------------------------------------------------------------------------------

interface Case {
  label: string
  model: ModelId
  request: Record<string, unknown>
  /** The whole upstream input, prompt left out. */
  input: Record<string, unknown>
  warnings: string[]
}

const T2I: Case[] = [
  // flux-schnell: aspect_ratio + megapixels, steps 1–4, no guidance, seed turns go_fast off.
  { label: 'defaults', model: 'flux-schnell', request: {}, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: '512×512 is exact at 0.25 MP', model: 'flux-schnell', request: { width: 512, height: 512 }, input: { aspect_ratio: '1:1', megapixels: '0.25', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: 'width 512 alone means 512×512', model: 'flux-schnell', request: { width: 512 }, input: { aspect_ratio: '1:1', megapixels: '0.25', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: '768×768 → 1024×1024', model: 'flux-schnell', request: { width: 768, height: 768 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: 'height 768 alone → adjusted height only', model: 'flux-schnell', request: { height: 768 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted'] },
  { label: '1024×768 → 4:3 (1152×896)', model: 'flux-schnell', request: { width: 1024, height: 768 }, input: { aspect_ratio: '4:3', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '512×1536 → 9:21', model: 'flux-schnell', request: { width: 512, height: 1536 }, input: { aspect_ratio: '9:21', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '1536×1536 → 1024×1024', model: 'flux-schnell', request: { width: 1536, height: 1536 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '1 step, 4 outputs, jpeg → jpg', model: 'flux-schnell', request: { num_inference_steps: 1, num_outputs: 4, output_format: 'jpeg' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 1, num_outputs: 4, output_format: 'jpg' }, warnings: [] },
  { label: '4 steps, png', model: 'flux-schnell', request: { num_inference_steps: 4, output_format: 'png' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'png' }, warnings: [] },
  { label: 'guidance_scale and negative_prompt are ignored', model: 'flux-schnell', request: { guidance_scale: 3.5, negative_prompt: 'blurry, low quality' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['guidance_scale:ignored', 'negative_prompt:ignored'] },
  { label: 'seed 42 turns go_fast off', model: 'flux-schnell', request: { seed: 42 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, seed: 42, go_fast: false, output_format: 'webp' }, warnings: [] },
  { label: 'seed 0 means random: not sent', model: 'flux-schnell', request: { seed: 0 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, output_format: 'webp' }, warnings: ['seed:ignored'] },
  { label: 'the largest seed', model: 'flux-schnell', request: { seed: 4_294_967_295 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 4, num_outputs: 1, seed: 4_294_967_295, go_fast: false, output_format: 'webp' }, warnings: [] },

  // flux-dev: steps 20–50, guidance 1–10.
  { label: 'defaults', model: 'flux-dev', request: {}, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: 'the lowest steps and guidance', model: 'flux-dev', request: { num_inference_steps: 20, guidance_scale: 1 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 20, guidance: 1, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: 'the highest steps and guidance', model: 'flux-dev', request: { num_inference_steps: 50, guidance_scale: 10 }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 50, guidance: 10, num_outputs: 1, output_format: 'webp' }, warnings: [] },
  { label: 'guidance 2.5, 4 outputs, jpeg', model: 'flux-dev', request: { guidance_scale: 2.5, num_outputs: 4, output_format: 'jpeg' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 2.5, num_outputs: 4, output_format: 'jpg' }, warnings: [] },
  { label: 'negative_prompt is ignored', model: 'flux-dev', request: { negative_prompt: 'text, watermark' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' }, warnings: ['negative_prompt:ignored'] },
  { label: '1536×1024 → 3:2 (1216×832)', model: 'flux-dev', request: { width: 1536, height: 1024 }, input: { aspect_ratio: '3:2', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '768×512 → 3:2 at 0.25 MP (608×416)', model: 'flux-dev', request: { width: 768, height: 512 }, input: { aspect_ratio: '3:2', megapixels: '0.25', num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: 'seed 1', model: 'flux-dev', request: { seed: 1, output_format: 'png' }, input: { aspect_ratio: '1:1', megapixels: '1', num_inference_steps: 28, guidance: 3, num_outputs: 1, seed: 1, go_fast: false, output_format: 'png' }, warnings: [] },

  // flux-1.1-pro: custom sizes up to 1440, one image, no steps or guidance.
  { label: 'defaults', model: 'flux-1.1-pro', request: {}, input: { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' }, warnings: [] },
  { label: '512×768 is exact', model: 'flux-1.1-pro', request: { width: 512, height: 768 }, input: { aspect_ratio: 'custom', width: 512, height: 768, output_format: 'webp' }, warnings: [] },
  { label: '1536×1536 → 1440×1440', model: 'flux-1.1-pro', request: { width: 1536, height: 1536 }, input: { aspect_ratio: 'custom', width: 1440, height: 1440, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '1536×1024 → 1440×960, ratio kept', model: 'flux-1.1-pro', request: { width: 1536, height: 1024 }, input: { aspect_ratio: 'custom', width: 1440, height: 960, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '768×1536 → 736×1440', model: 'flux-1.1-pro', request: { width: 768, height: 1536 }, input: { aspect_ratio: 'custom', width: 736, height: 1440, output_format: 'webp' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: 'steps, guidance and negative_prompt are ignored; num_outputs 1 is not sent', model: 'flux-1.1-pro', request: { num_inference_steps: 28, guidance_scale: 3, negative_prompt: 'blurry', num_outputs: 1 }, input: { aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' }, warnings: ['guidance_scale:ignored', 'negative_prompt:ignored', 'num_inference_steps:ignored'] },
  { label: 'seed 0 is a seed here', model: 'flux-1.1-pro', request: { seed: 0, output_format: 'jpeg' }, input: { aspect_ratio: 'custom', width: 1024, height: 1024, seed: 0, output_format: 'jpg' }, warnings: [] },
  { label: 'png', model: 'flux-1.1-pro', request: { output_format: 'png', seed: 123456 }, input: { aspect_ratio: 'custom', width: 1024, height: 1024, seed: 123456, output_format: 'png' }, warnings: [] },

  // flux-kontext-pro: aspect ratio only, jpg/png only, default png.
  { label: 'defaults', model: 'flux-kontext-pro', request: {}, input: { aspect_ratio: '1:1', output_format: 'png' }, warnings: [] },
  { label: '1024×768 → 4:3, the model picks the size', model: 'flux-kontext-pro', request: { width: 1024, height: 768 }, input: { aspect_ratio: '4:3', output_format: 'png' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '1536×768 → 2:1', model: 'flux-kontext-pro', request: { width: 1536, height: 768 }, input: { aspect_ratio: '2:1', output_format: 'png' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: '512×1024 → 1:2', model: 'flux-kontext-pro', request: { width: 512, height: 1024 }, input: { aspect_ratio: '1:2', output_format: 'png' }, warnings: ['height:adjusted', 'width:adjusted'] },
  { label: 'webp → jpg (adjusted)', model: 'flux-kontext-pro', request: { output_format: 'webp' }, input: { aspect_ratio: '1:1', output_format: 'jpg' }, warnings: ['output_format:adjusted'] },
  { label: 'jpeg → jpg', model: 'flux-kontext-pro', request: { output_format: 'jpeg' }, input: { aspect_ratio: '1:1', output_format: 'jpg' }, warnings: [] },
  { label: 'steps, guidance, negative_prompt ignored; seed sent without go_fast', model: 'flux-kontext-pro', request: { num_inference_steps: 30, guidance_scale: 4, negative_prompt: 'noise', seed: 7 }, input: { aspect_ratio: '1:1', seed: 7, output_format: 'png' }, warnings: ['guidance_scale:ignored', 'negative_prompt:ignored', 'num_inference_steps:ignored'] }
]

const I2I: Array<Omit<Case, 'request' | 'input'> & { request: () => Record<string, unknown>, input: () => Record<string, unknown> }> = [
  { label: 'a PNG with defaults', model: 'flux-dev', request: () => ({ image_url: png }), input: () => ({ image: png, prompt_strength: 0.8, num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'webp' }), warnings: [] },
  { label: 'prompt_strength 0, guidance 10, seed, png', model: 'flux-dev', request: () => ({ image_url: png, prompt_strength: 0, guidance_scale: 10, seed: 9, output_format: 'png' }), input: () => ({ image: png, prompt_strength: 0, num_inference_steps: 28, guidance: 10, num_outputs: 1, seed: 9, go_fast: false, output_format: 'png' }), warnings: [] },
  { label: 'a JPEG, prompt_strength 1, jpeg', model: 'flux-dev', request: () => ({ image_url: jpeg, prompt_strength: 1, output_format: 'jpeg' }), input: () => ({ image: jpeg, prompt_strength: 1, num_inference_steps: 28, guidance: 3, num_outputs: 1, output_format: 'jpg' }), warnings: [] },
  { label: 'a PNG with defaults', model: 'flux-kontext-pro', request: () => ({ image_url: png }), input: () => ({ input_image: png, aspect_ratio: 'match_input_image', output_format: 'png' }), warnings: [] },
  { label: 'prompt_strength and guidance ignored, webp adjusted, seed sent', model: 'flux-kontext-pro', request: () => ({ image_url: jpeg, prompt_strength: 0.5, guidance_scale: 5, output_format: 'webp', seed: 3 }), input: () => ({ input_image: jpeg, aspect_ratio: 'match_input_image', seed: 3, output_format: 'jpg' }), warnings: ['guidance_scale:ignored', 'output_format:adjusted', 'prompt_strength:ignored'] }
]

describe('text-to-image: the exact upstream input', () => {
  it('covers every model', () => {
    expect(new Set(T2I.map((c) => c.model))).toEqual(new Set(Object.keys(MODELS)))
  })

  it.each(T2I.map((c) => [c.model, c.label, c] as const))('%s: %s', async (model, _label, c) => {
    const prompt = `a lighthouse on a cliff at dusk (${model}, ${c.label})`
    const res = await post('/v1/text-to-image', { prompt, model, ...c.request })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body).toMatchObject({ status: 'succeeded', model, error: null })
    const input = theCreate(model)
    expect(input).toEqual({ prompt, ...c.input })
    expect(warningsOf(res.body)).toEqual([...c.warnings].sort())
    // Each output is one image the model made.
    expect(res.body.output).toHaveLength((c.input.num_outputs as number | undefined) ?? 1)
  })
})

describe('image-to-image: the exact upstream input', () => {
  it.each(I2I.map((c) => [c.model, c.label, c] as const))('%s: %s', async (model, _label, c) => {
    const prompt = `the same scene in winter (${model}, ${c.label})`
    const res = await post('/v1/image-to-image', { prompt, model, ...c.request() })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body).toMatchObject({ status: 'succeeded', model, error: null })
    const input = theCreate(model)
    expect(input).toEqual({ prompt, ...c.input() })
    expect(warningsOf(res.body)).toEqual([...c.warnings].sort())
  })

  it('the plan\'s image-to-image model is used when none is given (premium: flux-kontext-pro)', async () => {
    const res = await post('/v1/image-to-image', { prompt: 'make it autumn', image_url: png })
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('flux-kontext-pro')
    expect(theCreate('flux-kontext-pro').input_image).toBe(png)
  })

  it('the plan\'s text-to-image model is used when none is given (premium: flux-1.1-pro)', async () => {
    const res = await post('/v1/text-to-image', { prompt: 'a quiet harbour' })
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('flux-1.1-pro')
    expect(theCreate('flux-1.1-pro')).toEqual({ prompt: 'a quiet harbour', aspect_ratio: 'custom', width: 1024, height: 1024, output_format: 'webp' })
  })
})

// ---- a sweep of sizes and formats ---------------------------------------------------------------------------

const SIZES = [512, 768, 1024, 1536]
const FORMATS = [undefined, 'webp', 'jpg', 'jpeg', 'png'] as const

describe('sweep: every size pair on every model, formats in rotation', () => {
  const cases = (Object.keys(MODELS) as ModelId[]).flatMap((model) =>
    SIZES.flatMap((width, i) => SIZES.map((height, j) => [model, width, height, FORMATS[(i * SIZES.length + j) % FORMATS.length]] as const)))

  it.each(cases)('%s %i×%i (%s)', async (model, width, height, format) => {
    const res = await post('/v1/text-to-image', {
      prompt: 'a field of sunflowers',
      model,
      width,
      height,
      ...(format === undefined ? {} : { output_format: format })
    }, { prefer: 'respond-async' })
    expect(res.status, JSON.stringify(res.body)).toBe(202)
    const input = theCreate(model)
    // Warnings name only fields the request gave, and a size warning is always 'adjusted'.
    const warnings = warningsOf(res.body)
    for (const w of warnings) expect(['width:adjusted', 'height:adjusted', 'output_format:adjusted']).toContain(w)
    // The two sides are reported together: both adjusted, or neither.
    expect(warnings.includes('width:adjusted')).toBe(warnings.includes('height:adjusted'))
    const wanted = format === 'jpeg' ? 'jpg' : format
    if (model === 'flux-kontext-pro') {
      expect(warnings).toContain('width:adjusted')
      expect(input.output_format).toBe(wanted === undefined ? 'png' : wanted === 'webp' ? 'jpg' : wanted)
      expect(warnings.includes('output_format:adjusted')).toBe(wanted === 'webp')
    } else {
      expect(input.output_format).toBe(wanted ?? 'webp')
      expect(warnings).not.toContain('output_format:adjusted')
    }
    if (model === 'flux-1.1-pro') {
      // The exact size when it fits, otherwise scaled down to 1440 on the long side.
      const scale = Math.min(1, 1440 / Math.max(width, height))
      expect(Math.max(input.width as number, input.height as number)).toBe(Math.round(Math.max(width, height) * scale))
      expect(warnings.includes('width:adjusted')).toBe(input.width !== width || input.height !== height)
    }
  })
})
