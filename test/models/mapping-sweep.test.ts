/**
 * Property-style sweep of the mapping: for every model, over a spread of requests, every input we would send
 * validates against the model's schema in test/fixtures/replicate/flux-models.json (read from disk, independent of
 * src/), sends no key the model does not know (Replicate would drop it silently), and every request that should be
 * refused is refused, naming exactly the bad fields.
 */
import { describe, expect, it } from 'vitest'
import { ValidationError } from '../../src/errors.ts'
import { mapImageToImage, mapTextToImage, type ImageInput, type MappedRequest } from '../../src/models/mapping.ts'
import { GENERATION_SCHEMAS, type ImageToImageRequest, type TextToImageRequest } from '../../src/schemas/generation.ts'
import { REFERENCE, newAjv, referenceModel, referenceValidators } from './reference.ts'

const MODELS = ['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'] as const
type Model = typeof MODELS[number]

/** Our per-model policy, restated here; each range is checked to lie within the reference schema's. */
const POLICY: Record<Model, { steps: [number, number] | null, guidance: [number, number] | null, i2i: boolean }> = {
  'flux-schnell': { steps: [1, 4], guidance: null, i2i: false },
  'flux-dev': { steps: [20, 50], guidance: [1, 10], i2i: true },
  'flux-1.1-pro': { steps: null, guidance: null, i2i: false },
  'flux-kontext-pro': { steps: null, guidance: null, i2i: true }
}

const SIZES = [undefined, 512, 768, 1024, 1536] as const
const FORMATS = [undefined, 'webp', 'jpg', 'jpeg', 'png'] as const
const STEPS = [undefined, 1, 2, 3, 4, 5, 19, 20, 21, 28, 49, 50, 51, 100]
const GUIDANCE = [undefined, 0, 0.5, 0.99, 1, 2.5, 3, 7.5, 10, 10.01, 15, 20]
const SEEDS = [undefined, 0, 1, 42, 2 ** 31, 4294967295]
const NUM_OUTPUTS = [undefined, 1, 2, 3, 4]
const NEGATIVE = [undefined, 'blurry, low quality']
const PROMPT_STRENGTH = [undefined, 0, 0.3, 0.8, 1]
const SMALL_PNG = 'data:image/png;base64,' + 'iVBORw0KGgoAAAANSUhEUgAA'.repeat(2_000)
const IMAGES: ImageInput[] = [
  { url: 'https://example.com/photos/street.jpg', width: 1024, height: 768 },
  { url: 'https://example.com/photos/street.jpg' },
  { url: SMALL_PNG, width: 4000, height: 3000 },
  { url: 'https://api.replicate.com/v1/files/abc/download?expiry=1&signature=a%2Bb', width: 333, height: 777 }
]

const validators = referenceValidators()
const staticAjv = newAjv()
for (const schema of GENERATION_SCHEMAS) staticAjv.addSchema(schema)
const staticTextToImage = staticAjv.getSchema('TextToImageRequest')!
const staticImageToImage = staticAjv.getSchema('ImageToImageRequest')!

const refOf = (model: Model) => `black-forest-labs/${model}`
const inRange = (value: number, [min, max]: [number, number]) => value >= min && value <= max

/** Deterministic PRNG (mulberry32), so a failure reproduces. */
function random (seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

function pick<T> (rand: () => number, values: readonly T[]): T {
  return values[Math.floor(rand() * values.length)] as T
}

function compact<T extends object> (request: T): T {
  return Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined)) as T
}

function textRequests (): TextToImageRequest[] {
  const out: TextToImageRequest[] = []
  const prompt = 'A lighthouse on a cliff at dusk'
  for (const width of SIZES) for (const height of SIZES) for (const output_format of FORMATS) {
    out.push(compact({ prompt, width, height, output_format }))
  }
  for (const num_inference_steps of STEPS) for (const guidance_scale of GUIDANCE) for (const num_outputs of NUM_OUTPUTS) {
    out.push(compact({ prompt, num_inference_steps, guidance_scale, num_outputs }))
  }
  for (const seed of SEEDS) for (const output_format of FORMATS) for (const negative_prompt of NEGATIVE) {
    out.push(compact({ prompt, seed, output_format, negative_prompt }))
  }
  const rand = random(20_240_801)
  for (let i = 0; i < 4_000; i++) {
    out.push(compact({
      prompt,
      width: pick(rand, SIZES),
      height: pick(rand, SIZES),
      num_outputs: pick(rand, NUM_OUTPUTS),
      num_inference_steps: pick(rand, STEPS),
      guidance_scale: pick(rand, GUIDANCE),
      seed: pick(rand, SEEDS),
      output_format: pick(rand, FORMATS),
      negative_prompt: pick(rand, NEGATIVE)
    }))
  }
  return out as TextToImageRequest[]
}

function imageRequests (): [ImageToImageRequest, ImageInput][] {
  const out: [ImageToImageRequest, ImageInput][] = []
  for (const image of IMAGES) for (const prompt_strength of PROMPT_STRENGTH) for (const guidance_scale of GUIDANCE) {
    for (const seed of [undefined, 0, 42]) for (const output_format of FORMATS) {
      out.push([compact({ prompt: 'make it night', image_url: image.url, prompt_strength, guidance_scale, seed, output_format }) as ImageToImageRequest, image])
    }
  }
  return out
}

/** The fields a request should be refused on, from POLICY and the reference alone. */
function expectedRefusals (model: Model, request: Partial<TextToImageRequest>): string[] {
  const policy = POLICY[model]
  const props = referenceModel(refOf(model)).input.properties
  const bad: string[] = []
  if (policy.steps && request.num_inference_steps !== undefined && !inRange(request.num_inference_steps, policy.steps)) bad.push('num_inference_steps')
  if (policy.guidance && request.guidance_scale !== undefined && !inRange(request.guidance_scale, policy.guidance)) bad.push('guidance_scale')
  if (request.num_outputs !== undefined && request.num_outputs > (props.num_outputs?.maximum ?? 1)) bad.push('num_outputs')
  return bad.sort()
}

type Outcome = { refused: string[] } | { mapped: MappedRequest }

function attempt (fn: () => MappedRequest): Outcome {
  try {
    return { mapped: fn() }
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err
    return { refused: [...new Set(err.errors.map((e) => e.field))].sort() }
  }
}

/** Checks every accepted mapping must pass; returns what is wrong. */
function checkInput (model: Model, mapped: MappedRequest): string[] {
  const wrong: string[] = []
  const validate = validators[refOf(model)]!
  if (!validate(mapped.input)) wrong.push(`fails the reference schema: ${JSON.stringify(validate.errors)}`)
  const known = Object.keys(referenceModel(refOf(model)).input.properties)
  const unknown = Object.keys(mapped.input).filter((k) => !known.includes(k))
  if (unknown.length > 0) wrong.push(`sends keys the model does not know: ${unknown.join(', ')}`)
  if (mapped.replicateModel !== refOf(model)) wrong.push(`replicateModel ${mapped.replicateModel}`)
  if (mapped.numImages !== (mapped.input.num_outputs ?? 1)) wrong.push(`numImages ${mapped.numImages} vs num_outputs ${mapped.input.num_outputs}`)
  for (const w of mapped.warnings) {
    if (w.code !== 'ignored' && w.code !== 'adjusted') wrong.push(`warning code ${w.code}`)
  }
  return wrong
}

const logDistance = (w: number, h: number, ratio: string) => {
  const [a, b] = ratio.split(':').map(Number)
  return Math.abs(Math.log(w / h) - Math.log(a! / b!))
}

function checkTextMapping (model: Model, request: TextToImageRequest, mapped: MappedRequest): string[] {
  const wrong = checkInput(model, mapped)
  const { input, warnings } = mapped
  const has = (field: string, code: string) => warnings.some((w) => w.field === field && w.code === code)
  const props = referenceModel(refOf(model)).input.properties

  // Nothing the caller asked for disappears without a word.
  if (request.num_inference_steps !== undefined && input.num_inference_steps !== request.num_inference_steps && !has('num_inference_steps', 'ignored')) wrong.push('steps dropped silently')
  if (request.guidance_scale !== undefined && input.guidance !== request.guidance_scale && !has('guidance_scale', 'ignored')) wrong.push('guidance dropped silently')
  if (request.negative_prompt !== undefined && !has('negative_prompt', 'ignored')) wrong.push('negative_prompt dropped silently')
  if (request.seed !== undefined && input.seed !== request.seed && !has('seed', 'ignored')) wrong.push('seed dropped silently')
  if (request.output_format !== undefined) {
    const asked = request.output_format === 'jpeg' ? 'jpg' : request.output_format
    if (input.output_format !== asked && !has('output_format', 'adjusted')) wrong.push('output_format changed silently')
  }
  if ((request.num_outputs ?? 1) !== mapped.numImages) wrong.push(`numImages ${mapped.numImages} for num_outputs ${request.num_outputs}`)
  // A seed is only repeatable on cog-flux with fp8 off.
  if (input.seed !== undefined && props.go_fast !== undefined && input.go_fast !== false) wrong.push('seed sent with go_fast on')

  const askedW = request.width ?? request.height ?? 1024
  const askedH = request.height ?? request.width ?? 1024
  const given = (['width', 'height'] as const).filter((side) => request[side] !== undefined)
  const sizeWarnings = warnings.filter((w) => (w.field === 'width' || w.field === 'height') && w.code === 'adjusted').map((w) => w.field)

  if (input.aspect_ratio === 'custom') {
    const w = input.width as number
    const h = input.height as number
    if (w % 32 !== 0 || h % 32 !== 0) wrong.push(`custom size ${w}×${h} not a multiple of 32`)
    if (mapped.expectedSize?.width !== w || mapped.expectedSize?.height !== h) wrong.push('expectedSize is not the custom size')
    if (Math.abs(Math.log(w / h) - Math.log(askedW / askedH)) > 0.05) wrong.push(`custom size ${w}×${h} lost the ratio of ${askedW}×${askedH}`)
  } else {
    const ratio = input.aspect_ratio as string
    const ratios = (props.aspect_ratio?.enum ?? []).filter((r): r is string => typeof r === 'string' && r.includes(':'))
    const closer = ratios.find((r) => logDistance(askedW, askedH, r) < logDistance(askedW, askedH, ratio) - 1e-12)
    if (closer !== undefined) wrong.push(`${askedW}×${askedH} sent as ${ratio} though ${closer} is nearer`)
    if (props.megapixels !== undefined) {
      const full = REFERENCE['x-pixels-at-1mp'][ratio]!
      const size = input.megapixels === '0.25' ? { width: full[0] / 2, height: full[1] / 2 } : { width: full[0], height: full[1] }
      if (mapped.expectedSize?.width !== size.width || mapped.expectedSize?.height !== size.height) {
        wrong.push(`expectedSize ${JSON.stringify(mapped.expectedSize)} but the reference makes ${size.width}×${size.height}`)
      }
      const small = askedW * askedH <= 0.45 * 1024 * 1024
      if ((input.megapixels === '0.25') !== small) wrong.push(`megapixels ${input.megapixels} for ${askedW}×${askedH}`)
    } else if (mapped.expectedSize !== undefined) {
      wrong.push('expectedSize given though the model picks the size')
    }
  }

  const changed = mapped.expectedSize === undefined ? given.length > 0 : (mapped.expectedSize.width !== askedW || mapped.expectedSize.height !== askedH)
  const expectedWarnings = changed ? given : []
  if (JSON.stringify(sizeWarnings) !== JSON.stringify(expectedWarnings)) {
    wrong.push(`size warnings ${JSON.stringify(sizeWarnings)}, expected ${JSON.stringify(expectedWarnings)}`)
  }
  return wrong
}

function report (failures: string[]): void {
  expect(failures.slice(0, 20), `${failures.length} failures`).toEqual([])
}

describe('mapping sweep against test/fixtures/replicate/flux-models.json', () => {
  it('restates a policy the reference schemas can honour', () => {
    for (const model of MODELS) {
      const props = referenceModel(refOf(model)).input.properties
      const { steps, guidance, i2i } = POLICY[model]
      expect(steps === null).toBe(props.num_inference_steps === undefined)
      if (steps) expect(steps[0] >= props.num_inference_steps!.minimum! && steps[1] <= props.num_inference_steps!.maximum!).toBe(true)
      expect(guidance === null).toBe(props.guidance === undefined)
      if (guidance) expect(guidance[0] >= props.guidance!.minimum! && guidance[1] <= props.guidance!.maximum!).toBe(true)
      expect(i2i).toBe(props.image !== undefined || props.input_image !== undefined)
    }
  })

  const texts = textRequests()

  it(`sweeps ${texts.length} static-valid text-to-image requests`, () => {
    for (const request of texts) expect(staticTextToImage(request), JSON.stringify(request)).toBe(true)
  })

  for (const model of MODELS) {
    it(`${model}: every text-to-image input validates, and every refusal is the expected one`, () => {
      const failures: string[] = []
      let accepted = 0
      let refused = 0
      for (const request of texts) {
        const expected = expectedRefusals(model, request)
        const outcome = attempt(() => mapTextToImage(request, model))
        const label = `${model} ${JSON.stringify(request)}`
        if ('refused' in outcome) {
          refused++
          if (JSON.stringify(outcome.refused) !== JSON.stringify(expected)) failures.push(`${label}: refused on ${outcome.refused}, expected ${expected}`)
          continue
        }
        accepted++
        if (expected.length > 0) failures.push(`${label}: accepted, expected a refusal on ${expected}`)
        for (const problem of checkTextMapping(model, request, outcome.mapped)) failures.push(`${label}: ${problem}`)
      }
      report(failures)
      // The spread must exercise both sides.
      expect(accepted).toBeGreaterThan(100)
      expect(refused).toBeGreaterThan(100)
    })
  }

  const images = imageRequests()

  for (const model of MODELS) {
    it(`${model}: every image-to-image input validates, or the model is refused`, () => {
      const failures: string[] = []
      for (const [request, image] of images) {
        expect(staticImageToImage(request)).toBe(true)
        const label = `${model} ${JSON.stringify({ ...request, image_url: request.image_url.slice(0, 40) })} ${image.width}×${image.height}`
        const expected = POLICY[model].i2i ? expectedRefusals(model, request) : ['model']
        const outcome = attempt(() => mapImageToImage(request, model, image))
        if ('refused' in outcome) {
          if (JSON.stringify(outcome.refused) !== JSON.stringify(expected)) failures.push(`${label}: refused on ${outcome.refused}, expected ${expected}`)
          continue
        }
        if (expected.length > 0) failures.push(`${label}: accepted, expected a refusal on ${expected}`)
        const { input, expectedSize, warnings } = outcome.mapped
        failures.push(...checkInput(model, outcome.mapped).map((p) => `${label}: ${p}`))
        if (input.image !== image.url && input.input_image !== image.url) failures.push(`${label}: image not sent`)
        if (request.prompt_strength !== undefined && input.prompt_strength !== request.prompt_strength &&
          !warnings.some((w) => w.field === 'prompt_strength' && w.code === 'ignored')) failures.push(`${label}: prompt_strength dropped silently`)
        if (expectedSize !== undefined) {
          const { width, height } = expectedSize
          if (width % 16 !== 0 || height % 16 !== 0 || width > 1440 || height > 1440) failures.push(`${label}: expectedSize ${width}×${height}`)
          if (Math.abs(Math.log(width / height) - Math.log(image.width! / image.height!)) > 0.05) failures.push(`${label}: expectedSize lost the input's ratio`)
        }
      }
      report(failures)
    })
  }

  // Callers that skip the schema still cannot make us send an input the model refuses.
  it('never sends an invalid input even for requests outside the static envelope', () => {
    const odd: Partial<TextToImageRequest>[] = [
      { width: 1000 as 1024, height: 3000 as 1024 },
      { width: 64 as 512, height: 64 as 512 },
      { width: 100_000 as 1536 },
      { num_inference_steps: 0 },
      { num_inference_steps: 1.5 },
      { num_inference_steps: -4 },
      { guidance_scale: -1 },
      { guidance_scale: Number.NaN },
      { guidance_scale: 25 },
      { seed: -1 },
      { seed: 2 ** 40 },
      { seed: 0.5 },
      { num_outputs: 0 },
      { num_outputs: 9 },
      { num_outputs: 2.5 },
      { output_format: 'gif' as 'png' },
      { output_format: 'WEBP' as 'webp' },
      { prompt: '' },
      { prompt: '   ' }
    ]
    const failures: string[] = []
    for (const model of MODELS) {
      for (const fields of odd) {
        const request = { prompt: 'a cat', ...fields } as TextToImageRequest
        if (staticTextToImage(request)) failures.push(`the static schema accepts ${JSON.stringify(request)}`)
        const outcome = attempt(() => mapTextToImage(request, model))
        if ('mapped' in outcome) failures.push(...checkInput(model, outcome.mapped).map((p) => `${model} ${JSON.stringify(fields)}: ${p}`))
      }
    }
    report(failures)
  })
})
