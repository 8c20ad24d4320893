/**
 * The FLUX models as Replicate serves them, pinned in data: input schemas (JSON Schema, as in the
 * models' OpenAPI `Input` component), output shape, list price and typical predict time.
 *
 * Both the emulator (to validate inputs and size images) and the gateway (to map requests onto real
 * inputs) read this one table. test/models/replicate-models.test.ts checks it against the reference
 * copy of Replicate's schemas so drift is caught, not guessed at.
 */

export type JsonSchema = {
  type?: string
  enum?: readonly (string | number)[]
  minimum?: number
  maximum?: number
  default?: unknown
  format?: string
  required?: readonly string[]
  properties?: Record<string, JsonSchema>
}

export type ReplicateModelSpec = {
  /** `owner/name` on Replicate. */
  readonly ref: string
  /** `array`: output is `string[]`; `string`: output is one URI. */
  readonly output: 'array' | 'string'
  readonly priceUsdPerImage: number
  readonly typicalPredictSeconds: number
  readonly input: JsonSchema & { properties: Record<string, JsonSchema> }
}

const ASPECT_RATIOS = ['1:1', '16:9', '21:9', '3:2', '2:3', '4:5', '5:4', '3:4', '4:3', '9:16', '9:21'] as const

export const REPLICATE_MODELS = {
  'black-forest-labs/flux-schnell': {
    ref: 'black-forest-labs/flux-schnell',
    output: 'array',
    priceUsdPerImage: 0.003,
    typicalPredictSeconds: 1,
    input: {
      type: 'object',
      required: ['prompt'],
      properties: {
        prompt: { type: 'string' },
        aspect_ratio: { type: 'string', enum: ASPECT_RATIOS, default: '1:1' },
        num_outputs: { type: 'integer', minimum: 1, maximum: 4, default: 1 },
        num_inference_steps: { type: 'integer', minimum: 1, maximum: 4, default: 4 },
        seed: { type: 'integer' },
        output_format: { type: 'string', enum: ['webp', 'jpg', 'png'], default: 'webp' },
        output_quality: { type: 'integer', minimum: 0, maximum: 100, default: 80 },
        disable_safety_checker: { type: 'boolean', default: false },
        go_fast: { type: 'boolean', default: true },
        megapixels: { type: 'string', enum: ['1', '0.25'], default: '1' }
      }
    }
  },
  'black-forest-labs/flux-dev': {
    ref: 'black-forest-labs/flux-dev',
    output: 'array',
    priceUsdPerImage: 0.025,
    typicalPredictSeconds: 4,
    input: {
      type: 'object',
      required: ['prompt'],
      properties: {
        prompt: { type: 'string' },
        image: { type: 'string', format: 'uri' },
        prompt_strength: { type: 'number', minimum: 0, maximum: 1, default: 0.8 },
        aspect_ratio: { type: 'string', enum: ASPECT_RATIOS, default: '1:1' },
        num_outputs: { type: 'integer', minimum: 1, maximum: 4, default: 1 },
        num_inference_steps: { type: 'integer', minimum: 1, maximum: 50, default: 28 },
        guidance: { type: 'number', minimum: 0, maximum: 10, default: 3 },
        seed: { type: 'integer' },
        output_format: { type: 'string', enum: ['webp', 'jpg', 'png'], default: 'webp' },
        output_quality: { type: 'integer', minimum: 0, maximum: 100, default: 80 },
        disable_safety_checker: { type: 'boolean', default: false },
        go_fast: { type: 'boolean', default: true },
        megapixels: { type: 'string', enum: ['1', '0.25'], default: '1' }
      }
    }
  },
  'black-forest-labs/flux-1.1-pro': {
    ref: 'black-forest-labs/flux-1.1-pro',
    output: 'string',
    priceUsdPerImage: 0.04,
    typicalPredictSeconds: 6,
    input: {
      type: 'object',
      required: ['prompt'],
      properties: {
        prompt: { type: 'string' },
        image_prompt: { type: 'string', format: 'uri' },
        aspect_ratio: {
          type: 'string',
          enum: ['custom', '1:1', '16:9', '3:2', '2:3', '4:5', '5:4', '9:16', '3:4', '4:3'],
          default: '1:1'
        },
        width: { type: 'integer', minimum: 256, maximum: 1440 },
        height: { type: 'integer', minimum: 256, maximum: 1440 },
        safety_tolerance: { type: 'integer', minimum: 1, maximum: 6, default: 2 },
        seed: { type: 'integer' },
        prompt_upsampling: { type: 'boolean', default: false },
        output_format: { type: 'string', enum: ['webp', 'jpg', 'png'], default: 'webp' },
        output_quality: { type: 'integer', minimum: 0, maximum: 100, default: 80 }
      }
    }
  },
  'black-forest-labs/flux-kontext-pro': {
    ref: 'black-forest-labs/flux-kontext-pro',
    output: 'string',
    priceUsdPerImage: 0.04,
    typicalPredictSeconds: 6,
    input: {
      type: 'object',
      required: ['prompt'],
      properties: {
        prompt: { type: 'string' },
        input_image: { type: 'string', format: 'uri' },
        aspect_ratio: {
          type: 'string',
          enum: ['match_input_image', '1:1', '16:9', '9:16', '4:3', '3:4', '3:2', '2:3', '4:5', '5:4', '21:9', '9:21', '2:1', '1:2'],
          default: 'match_input_image'
        },
        safety_tolerance: { type: 'integer', minimum: 0, maximum: 6, default: 2 },
        prompt_upsampling: { type: 'boolean', default: false },
        seed: { type: 'integer' },
        output_format: { type: 'string', enum: ['jpg', 'png'], default: 'png' }
      }
    }
  }
} as const satisfies Record<string, ReplicateModelSpec>

export type ReplicateModelRef = keyof typeof REPLICATE_MODELS

export function findReplicateModel (ref: string): ReplicateModelSpec | undefined {
  return Object.hasOwn(REPLICATE_MODELS, ref) ? REPLICATE_MODELS[ref as ReplicateModelRef] : undefined
}

/** Output size per aspect ratio at megapixels "1"; "0.25" halves both sides (cog-flux ASPECT_RATIOS). */
export const PIXELS_AT_1MP: Readonly<Record<string, readonly [number, number]>> = {
  '1:1': [1024, 1024],
  '16:9': [1344, 768],
  '21:9': [1536, 640],
  '3:2': [1216, 832],
  '2:3': [832, 1216],
  '4:5': [896, 1088],
  '5:4': [1088, 896],
  '3:4': [896, 1152],
  '4:3': [1152, 896],
  '9:16': [768, 1344],
  '9:21': [640, 1536]
}

/** Replicate's real failure messages for model-side moderation (REFERENCE §7.8). */
export const FAILURE_MESSAGES = {
  allNsfw: 'All generated images contained NSFW content. Try running it again with a different prompt.',
  kontextDevNsfw: 'Generated image contained NSFW content. Try running it again with a different prompt.',
  proFlagged: 'The input or output was flagged as sensitive. Please try again with different inputs. (E005)'
} as const
