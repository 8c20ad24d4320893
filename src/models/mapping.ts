/**
 * Maps our public generation requests onto each real model's Replicate input.
 *
 * The public request speaks the seed's language (width/height, num_inference_steps, guidance_scale,
 * negative_prompt); the real models do not (REFERENCE §7.9). Where they disagree the real model wins: a value the
 * model cannot take at all is dropped with an 'ignored' warning, a value it can take only approximately is adjusted
 * with an 'adjusted' warning, and a value it can take but outside its range is refused. Every problem in a request
 * is collected and thrown as one ValidationError, named by public field.
 *
 * | request field        | flux-schnell                | flux-dev                      | flux-1.1-pro                   | flux-kontext-pro                  |
 * |----------------------|-----------------------------|-------------------------------|--------------------------------|-----------------------------------|
 * | width × height (t2i) | nearest aspect_ratio +      | same as schnell               | aspect_ratio "custom", sides   | nearest aspect_ratio of its own   |
 * |                      | megapixels "0.25" when      |                               | scaled to fit 1440 keeping the | enum (incl. 2:1, 1:2); size is    |
 * |                      | w·h ≤ 0.45 MP else "1"      |                               | ratio, ≥ 256, multiple of 32   | the model's: warned when asked    |
 * | num_inference_steps  | 1–4, default 4 (sent)       | 20–50, default 28 (sent)      | ignored (no steps input)       | ignored                           |
 * | guidance_scale       | ignored (no guidance input) | `guidance` 1–10, default 3    | ignored                        | ignored                           |
 * | num_outputs          | 1–4, sent                   | 1–4, sent                     | only 1, not sent               | only 1, not sent                  |
 * | negative_prompt      | ignored                     | ignored                       | ignored                        | ignored                           |
 * | seed                 | sent + go_fast false; 0 is  | same as schnell               | sent                           | sent                              |
 * |                      | ignored (means "random")    |                               |                                |                                   |
 * | output_format        | jpeg → jpg; default webp    | jpeg → jpg; default webp      | jpeg → jpg; default webp       | jpeg → jpg; webp → jpg (adjusted);|
 * |                      |                             |                               |                                | default png                       |
 * | image_url (i2i)      | refused (no i2i)            | `image`; size follows input   | refused (no i2i)               | `input_image` + aspect_ratio      |
 * |                      |                             |                               |                                | "match_input_image"               |
 * | prompt_strength (i2i)| –                           | 0–1, default 0.8 (sent)       | –                              | ignored                           |
 *
 * Decisions beyond REFERENCE §7.9, and why:
 * - Defaults are sent explicitly (steps, guidance, prompt_strength, num_outputs, output_format, size), so what the
 *   catalog advertises is what runs even if Replicate changes a default, and the output format is known beforehand.
 * - No width and no height means 1024×1024; only one of them means a square of that side (asking for one side
 *   rarely means a 1:2 image).
 * - Nearest aspect ratio compares |ln(w/h) − ln(ratio)|, so 2:1 and 1:2 are equally far from 1:1; ties go to the
 *   ratio listed first upstream.
 * - 1.1-pro scales an oversized request down as a whole (1536×1024 → 1440×960) instead of clamping each side
 *   (→ 1440×1024), so the aspect ratio survives. Multiples of 32 suit both schema versions (32 and 16).
 * - A size change is reported once per width/height field the request gave ('adjusted').
 * - Seeds: cog-flux runs fp8 ("go_fast") by default, which "will not be deterministic … even if you set a seed", so
 *   a seed on schnell/dev also sends go_fast false; and cog-flux treats seed 0 as no seed, so 0 is not sent there.
 * - dev image-to-image: cog-flux sizes the output from the input image, scaled down to fit 1440 px a side (never
 *   up) and each side rounded (half to even, as Python does) to a multiple of 16 — it is not rescaled to 1 MP.
 *   expectedSize is given only when the input's size is known. kontext-pro picks its own size: no expectedSize.
 * - The static bounds (src/schemas/generation.ts) are checked again here for every value that is sent, so a caller
 *   that skipped schema validation still cannot send an input the model's schema refuses.
 */
import { ValidationError, type FieldProblem } from '../errors.ts'
import { GENERATION_LIMITS, IMAGE_URL_PATTERN } from '../schemas/generation.ts'
import type { ImageToImageRequest, TextToImageRequest, Warning } from '../schemas/generation.ts'
import { CAPABILITIES, MODEL_IDS, MODELS, isModelId, type ModelId, type ModelSpec, type UpstreamOutputFormat } from './catalog.ts'
import { PIXELS_AT_1MP, REPLICATE_MODELS, type JsonSchema, type ReplicateModelRef } from './replicate-models.ts'

export interface Size {
  width: number
  height: number
}

/** The input image as it will be sent upstream, with its pixel size when known. */
export interface ImageInput {
  url: string
  width?: number | undefined
  height?: number | undefined
}

export type ReplicateInput = Record<string, string | number | boolean>

export interface MappedRequest {
  model: ModelId
  replicateModel: ReplicateModelRef
  input: ReplicateInput
  warnings: Warning[]
  /** The size of each output image, when the model's rules make it predictable. */
  expectedSize?: Size
  /** Images this request produces (and bills). */
  numImages: number
}

// ---- per-model parameter maps -----------------------------------------------------------------------------------

type SizeControl =
  | { kind: 'aspect-megapixels', ratios: readonly string[] }
  | { kind: 'custom', min: number, max: number, multiple: number }
  | { kind: 'aspect-only', ratios: readonly string[] }

interface ImageControl {
  /** The upstream input that takes the image. */
  param: 'image' | 'input_image'
  promptStrength: { min: number, max: number, default: number } | null
  aspectRatio: string | null
  /** How the output size follows the input image; null when the model decides. */
  followsInput: { maxSide: number, multiple: number } | null
}

interface ParameterMap {
  size: SizeControl
  /** cog-flux's fp8 mode ignores seeds; turn it off when a seed is given. */
  seedTurnsOffGoFast: boolean
  /** cog-flux reads seed 0 as "no seed". */
  seedZeroIsRandom: boolean
  /** What to make instead of a format the model cannot write. */
  formatFallback: UpstreamOutputFormat
  image: ImageControl | null
}

function upstreamProperty (model: ReplicateModelRef, name: string): JsonSchema | undefined {
  const properties: Record<string, JsonSchema> = REPLICATE_MODELS[model].input.properties
  return properties[name]
}

/** The fixed aspect ratios a model offers (its `aspect_ratio` enum without the special values). */
function ratiosOf (model: ReplicateModelRef): readonly string[] {
  const values = upstreamProperty(model, 'aspect_ratio')?.enum ?? []
  return values.filter((v): v is string => typeof v === 'string' && /^\d+:\d+$/.test(v))
}

function customSizeControl (model: ReplicateModelRef): SizeControl {
  const width = upstreamProperty(model, 'width')
  return { kind: 'custom', min: width?.minimum ?? 256, max: width?.maximum ?? 1440, multiple: 32 }
}

const PARAMETER_MAPS: Readonly<Record<ModelId, ParameterMap>> = {
  'flux-schnell': {
    size: { kind: 'aspect-megapixels', ratios: ratiosOf('black-forest-labs/flux-schnell') },
    seedTurnsOffGoFast: true,
    seedZeroIsRandom: true,
    formatFallback: 'jpg',
    image: null
  },
  'flux-dev': {
    size: { kind: 'aspect-megapixels', ratios: ratiosOf('black-forest-labs/flux-dev') },
    seedTurnsOffGoFast: true,
    seedZeroIsRandom: true,
    formatFallback: 'jpg',
    image: {
      param: 'image',
      promptStrength: { min: 0, max: 1, default: 0.8 },
      aspectRatio: null,
      followsInput: { maxSide: 1440, multiple: 16 }
    }
  },
  'flux-1.1-pro': {
    size: customSizeControl('black-forest-labs/flux-1.1-pro'),
    seedTurnsOffGoFast: false,
    seedZeroIsRandom: false,
    formatFallback: 'jpg',
    image: null
  },
  'flux-kontext-pro': {
    size: { kind: 'aspect-only', ratios: ratiosOf('black-forest-labs/flux-kontext-pro') },
    seedTurnsOffGoFast: false,
    seedZeroIsRandom: false,
    formatFallback: 'jpg',
    image: { param: 'input_image', promptStrength: null, aspectRatio: 'match_input_image', followsInput: null }
  }
}

// ---- size arithmetic (exported for the emulator and tests) -----------------------------------------------------

/** At or below this many pixels a request is served at megapixels "0.25" (half of each side). */
export const SMALL_IMAGE_MAX_PIXELS = 0.45 * 1024 * 1024

function ratioValue (ratio: string): number {
  const [w, h] = ratio.split(':').map(Number)
  return (w ?? 1) / (h ?? 1)
}

/** The ratio in `ratios` nearest to width/height on a log scale; ties go to the earlier one. */
export function nearestAspectRatio (width: number, height: number, ratios: readonly string[]): string {
  const target = Math.log(width / height)
  let best = ratios[0]
  let bestDistance = Infinity
  for (const ratio of ratios) {
    const distance = Math.abs(Math.log(ratioValue(ratio)) - target)
    if (distance < bestDistance - 1e-12) {
      best = ratio
      bestDistance = distance
    }
  }
  if (best === undefined) throw new Error('nearestAspectRatio needs at least one ratio')
  return best
}

/** schnell/dev: the aspect_ratio and megapixels for a requested size, and the size cog-flux will make. */
export function aspectMegapixelsSize (width: number, height: number, ratios: readonly string[]): {
  aspect_ratio: string
  megapixels: '1' | '0.25'
  size: Size
} {
  const aspectRatio = nearestAspectRatio(width, height, ratios)
  const megapixels = width * height <= SMALL_IMAGE_MAX_PIXELS ? '0.25' : '1'
  const full = PIXELS_AT_1MP[aspectRatio]
  if (full === undefined) throw new Error(`No pixel size known for aspect ratio ${aspectRatio}`)
  const [w, h] = full
  // cog-flux size_from_aspect_megapixels: "0.25" is `width // 2, height // 2`.
  const size = megapixels === '0.25' ? { width: Math.floor(w / 2), height: Math.floor(h / 2) } : { width: w, height: h }
  return { aspect_ratio: aspectRatio, megapixels, size }
}

/** 1.1-pro custom size: scaled down to fit `max` keeping the ratio, each side a multiple of `multiple` in [min, max]. */
export function customSize (width: number, height: number, limits: { min: number, max: number, multiple: number }): Size {
  const scale = Math.min(limits.max / width, limits.max / height, 1)
  const fit = (side: number): number => {
    const rounded = Math.round((side * scale) / limits.multiple) * limits.multiple
    return Math.min(limits.max, Math.max(limits.min, rounded))
  }
  return { width: fit(width), height: fit(height) }
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven (x: number): number {
  const r = Math.round(x)
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** dev image-to-image output size (cog-flux maybe_scale_to_closest_multiple). */
export function imageToImageOutputSize (width: number, height: number, maxSide = 1440, multiple = 16): Size {
  const scale = Math.min(maxSide / width, maxSide / height, 1)
  const w = scale < 1 ? Math.trunc(width * scale) : width
  const h = scale < 1 ? Math.trunc(height * scale) : height
  return { width: roundHalfEven(w / multiple) * multiple, height: roundHalfEven(h / multiple) * multiple }
}

// ---- the mapping ---------------------------------------------------------------------------------------------

const IMAGE_URL = new RegExp(IMAGE_URL_PATTERN, 'u')
// A prompt needs a character that shows: zero-width spaces, joiners and other invisible format characters are as
// blank as whitespace (the schema's `\S` lets them through).
const VISIBLE = /[^\s\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]/u

interface Draft {
  spec: ModelSpec
  map: ParameterMap
  input: ReplicateInput
  problems: FieldProblem[]
  warnings: Warning[]
}

function requireModel (modelId: string, capability: typeof CAPABILITIES[keyof typeof CAPABILITIES]): ModelSpec {
  if (!isModelId(modelId)) {
    throw new ValidationError([{ field: 'model', message: `Unknown model ${JSON.stringify(modelId)}; models are ${MODEL_IDS.join(', ')}.` }])
  }
  const spec = MODELS[modelId]
  if (!spec.supports.includes(capability)) {
    const able = MODEL_IDS.filter((id) => MODELS[id].supports.includes(capability))
    throw new ValidationError([{ field: 'model', message: `${spec.id} does not do ${capability}; use ${able.join(' or ')}.` }])
  }
  return spec
}

function startDraft (spec: ModelSpec, prompt: unknown): Draft {
  const draft: Draft = { spec, map: PARAMETER_MAPS[spec.id], input: {}, problems: [], warnings: [] }
  if (typeof prompt === 'string' && VISIBLE.test(prompt)) {
    draft.input.prompt = prompt
  } else {
    draft.problems.push({ field: 'prompt', message: 'prompt must be a non-blank string.' })
  }
  return draft
}

function ignore (draft: Draft, field: string, message: string): void {
  draft.warnings.push({ field, code: 'ignored', message })
}

function isIntegerIn (value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max
}

function isNumberIn (value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= min && value <= max
}

function mapSize (draft: Draft, width: unknown, height: unknown): Size | undefined {
  const given = (['width', 'height'] as const).filter((side) => (side === 'width' ? width : height) !== undefined)
  for (const [side, value] of [['width', width], ['height', height]] as const) {
    if (value !== undefined && !isIntegerIn(value, 1, Number.MAX_SAFE_INTEGER)) {
      draft.problems.push({ field: side, message: `${side} must be a positive integer (got ${JSON.stringify(value)}).` })
    }
  }
  if (draft.problems.some((p) => p.field === 'width' || p.field === 'height')) return undefined

  const w = (width ?? height ?? GENERATION_LIMITS.defaultSize) as number
  const h = (height ?? width ?? GENERATION_LIMITS.defaultSize) as number
  const { spec, map, input } = draft
  let delivered: Size
  let how: string

  switch (map.size.kind) {
    case 'aspect-megapixels': {
      const chosen = aspectMegapixelsSize(w, h, map.size.ratios)
      input.aspect_ratio = chosen.aspect_ratio
      input.megapixels = chosen.megapixels
      delivered = chosen.size
      how = `aspect ratio ${chosen.aspect_ratio} at ${chosen.megapixels} MP, the nearest size it makes`
      break
    }
    case 'custom': {
      delivered = customSize(w, h, map.size)
      input.aspect_ratio = 'custom'
      input.width = delivered.width
      input.height = delivered.height
      how = `sides ${map.size.min}–${map.size.max} px in multiples of ${map.size.multiple}, aspect ratio kept`
      break
    }
    case 'aspect-only': {
      const ratio = nearestAspectRatio(w, h, map.size.ratios)
      input.aspect_ratio = ratio
      for (const side of given) {
        draft.warnings.push({
          field: side,
          code: 'adjusted',
          message: `${spec.id} takes only an aspect ratio: ${w}×${h} was sent as ${ratio}, and the model picks the exact size (about 1 MP).`
        })
      }
      return undefined
    }
  }

  if (delivered.width !== w || delivered.height !== h) {
    for (const side of given) {
      draft.warnings.push({
        field: side,
        code: 'adjusted',
        message: `${spec.id} makes ${delivered.width}×${delivered.height} for ${w}×${h} (${how}).`
      })
    }
  }
  return delivered
}

function mapSteps (draft: Draft, steps: unknown): void {
  const range = draft.spec.steps
  if (range === null) {
    if (steps !== undefined) ignore(draft, 'num_inference_steps', `${draft.spec.id} has no steps setting; num_inference_steps was not used.`)
    return
  }
  if (steps === undefined) {
    draft.input.num_inference_steps = range.default
  } else if (isIntegerIn(steps, range.min, range.max)) {
    draft.input.num_inference_steps = steps
  } else {
    draft.problems.push({
      field: 'num_inference_steps',
      message: `num_inference_steps must be an integer from ${range.min} to ${range.max} on ${draft.spec.id} (got ${JSON.stringify(steps)}).`
    })
  }
}

function mapGuidance (draft: Draft, guidance: unknown): void {
  const range = draft.spec.guidance
  if (range === null) {
    if (guidance !== undefined) ignore(draft, 'guidance_scale', `${draft.spec.id} has no guidance setting; guidance_scale was not used.`)
    return
  }
  if (guidance === undefined) {
    draft.input.guidance = range.default
  } else if (isNumberIn(guidance, range.min, range.max)) {
    draft.input.guidance = guidance
  } else {
    draft.problems.push({
      field: 'guidance_scale',
      message: `guidance_scale must be from ${range.min} to ${range.max} on ${draft.spec.id} (got ${JSON.stringify(guidance)}).`
    })
  }
}

function mapNumOutputs (draft: Draft, numOutputs: unknown): number {
  const { spec } = draft
  const max = spec.maxOutputsPerPrediction
  const n = numOutputs ?? 1
  if (max === 1) {
    if (n === 1) return 1
    if (isIntegerIn(n, 1, GENERATION_LIMITS.maxOutputs)) {
      const multi = MODEL_IDS.filter((id) => MODELS[id].maxOutputsPerPrediction > 1)
      draft.problems.push({
        field: 'num_outputs',
        message: `${spec.id} makes one image per prediction, so num_outputs must be 1 (got ${n}); ${multi.join(' and ')} make up to ${GENERATION_LIMITS.maxOutputs}.`
      })
      return 1
    }
  }
  if (!isIntegerIn(n, 1, max)) {
    draft.problems.push({ field: 'num_outputs', message: `num_outputs must be an integer from 1 to ${max} on ${spec.id} (got ${JSON.stringify(n)}).` })
    return 1
  }
  draft.input.num_outputs = n
  return n
}

function mapNegativePrompt (draft: Draft, negativePrompt: unknown): void {
  if (negativePrompt !== undefined) {
    ignore(draft, 'negative_prompt', 'FLUX models have no negative prompt; negative_prompt was not used. Say what you want in prompt instead.')
  }
}

function mapSeed (draft: Draft, seed: unknown): void {
  if (seed === undefined) return
  if (!isIntegerIn(seed, GENERATION_LIMITS.seed.min, GENERATION_LIMITS.seed.max)) {
    draft.problems.push({
      field: 'seed',
      message: `seed must be an integer from ${GENERATION_LIMITS.seed.min} to ${GENERATION_LIMITS.seed.max} (got ${JSON.stringify(seed)}).`
    })
    return
  }
  if (seed === 0 && draft.map.seedZeroIsRandom) {
    ignore(draft, 'seed', `${draft.spec.id} reads seed 0 as "no seed" and picks a random one; use a seed of 1 or more for repeatable images.`)
    return
  }
  draft.input.seed = seed
  if (draft.map.seedTurnsOffGoFast) draft.input.go_fast = false
}

function mapOutputFormat (draft: Draft, format: unknown): void {
  const { spec, map } = draft
  if (format === undefined) {
    draft.input.output_format = spec.defaultOutputFormat
    return
  }
  const wanted = format === 'jpeg' ? 'jpg' : format
  if (wanted !== 'webp' && wanted !== 'jpg' && wanted !== 'png') {
    draft.problems.push({ field: 'output_format', message: `output_format must be webp, jpg, jpeg or png (got ${JSON.stringify(format)}).` })
    return
  }
  if (spec.outputFormats.includes(wanted)) {
    draft.input.output_format = wanted
    return
  }
  draft.input.output_format = map.formatFallback
  draft.warnings.push({
    field: 'output_format',
    code: 'adjusted',
    message: `${spec.id} cannot write ${wanted}; it makes ${map.formatFallback} instead.`
  })
}

function finish (draft: Draft, numImages: number, expectedSize: Size | undefined): MappedRequest {
  if (draft.problems.length > 0) throw new ValidationError(draft.problems)
  const mapped: MappedRequest = {
    model: draft.spec.id,
    replicateModel: draft.spec.replicateModel,
    input: draft.input,
    warnings: draft.warnings,
    numImages
  }
  if (expectedSize !== undefined) mapped.expectedSize = expectedSize
  return mapped
}

/**
 * The Replicate input for a text-to-image request on `modelId` (already resolved by the caller: `req.model` is
 * not read here). Throws ValidationError naming every bad field.
 */
export function mapTextToImage (req: TextToImageRequest, modelId: string): MappedRequest {
  const draft = startDraft(requireModel(modelId, CAPABILITIES.textToImage), req.prompt)
  const expectedSize = mapSize(draft, req.width, req.height)
  mapSteps(draft, req.num_inference_steps)
  mapGuidance(draft, req.guidance_scale)
  const numImages = mapNumOutputs(draft, req.num_outputs)
  mapNegativePrompt(draft, req.negative_prompt)
  mapSeed(draft, req.seed)
  mapOutputFormat(draft, req.output_format)
  return finish(draft, numImages, expectedSize)
}

/**
 * The Replicate input for an image-to-image request on `modelId`. `image.url` is what is sent upstream (the
 * request's image_url, or wherever the caller re-hosted it); its width/height, when known, give expectedSize on
 * flux-dev. Throws ValidationError naming every bad field; `model` when the model does no image-to-image.
 */
export function mapImageToImage (req: ImageToImageRequest, modelId: string, image: ImageInput): MappedRequest {
  const spec = requireModel(modelId, CAPABILITIES.imageToImage)
  const control = PARAMETER_MAPS[spec.id].image
  if (control === null) throw new Error(`${spec.id} supports image-to-image but has no image parameter map`)
  const draft = startDraft(spec, req.prompt)

  if (typeof image.url === 'string' && image.url.length <= GENERATION_LIMITS.imageUrlMaxLength && IMAGE_URL.test(image.url)) {
    draft.input[control.param] = image.url
  } else {
    draft.problems.push({ field: 'image_url', message: 'image_url must be an https URL or a base64 data: URI of a png, jpeg, gif or webp image.' })
  }
  if (control.aspectRatio !== null) draft.input.aspect_ratio = control.aspectRatio

  const strength = control.promptStrength
  if (strength === null) {
    if (req.prompt_strength !== undefined) ignore(draft, 'prompt_strength', `${spec.id} has no prompt strength setting; prompt_strength was not used.`)
  } else if (req.prompt_strength === undefined) {
    draft.input.prompt_strength = strength.default
  } else if (isNumberIn(req.prompt_strength, strength.min, strength.max)) {
    draft.input.prompt_strength = req.prompt_strength
  } else {
    draft.problems.push({
      field: 'prompt_strength',
      message: `prompt_strength must be from ${strength.min} to ${strength.max} (got ${JSON.stringify(req.prompt_strength)}).`
    })
  }

  mapSteps(draft, undefined)
  mapGuidance(draft, req.guidance_scale)
  const numImages = mapNumOutputs(draft, undefined)
  mapSeed(draft, req.seed)
  mapOutputFormat(draft, req.output_format)

  let expectedSize: Size | undefined
  const { width, height } = image
  if (control.followsInput !== null && isIntegerIn(width, 1, Number.MAX_SAFE_INTEGER) && isIntegerIn(height, 1, Number.MAX_SAFE_INTEGER)) {
    expectedSize = imageToImageOutputSize(width, height, control.followsInput.maxSide, control.followsInput.multiple)
  }
  return finish(draft, numImages, expectedSize)
}
