/**
 * Public request and response schemas for generation, quotes and the model catalog.
 *
 * Every exported schema has a `$id`: registered with `fastify.addSchema` (in GENERATION_SCHEMAS order) they become
 * named OpenAPI components, and composite schemas point at them with `$ref` instead of inlining a copy.
 *
 * Bounds here are static: the envelope any model could be asked for (the seed's contract, widened where a real model
 * allows more). What a particular model accepts is narrower and is enforced per model in src/models/mapping.ts from
 * the catalog, e.g. `num_inference_steps` is 1–100 here but 1–4 on flux-schnell and 20–50 on flux-dev, and
 * `guidance_scale` is 0–20 here but 1–10 on flux-dev and ignored elsewhere. A value inside the static envelope that
 * a model has no input for is ignored with a warning rather than refused, so one request body works on every model.
 *
 * Request schemas carry no `default` on model-dependent fields: Fastify's Ajv fills defaults in, which would turn
 * "not given" into "given" (and into spurious 'ignored' warnings). Defaults are stated in descriptions instead.
 */
import { Type, type SchemaOptions, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { MAX_IMAGES_PER_REQUEST, MODEL_IDS, TIERS, listModels } from '../models/catalog.ts'

/** A `$ref` to a registered schema that keeps the referenced schema's static type. */
function ref<T extends TSchema> (schema: T, options: SchemaOptions = {}): TUnsafe<Static<T>> {
  if (schema.$id === undefined) throw new Error('ref() needs a schema with a $id')
  return Type.Unsafe<Static<T>>(Type.Ref(schema.$id, options))
}

export const GENERATION_LIMITS = {
  promptMinLength: 3,
  promptMaxLength: 500,
  sizes: [512, 768, 1024, 1536],
  defaultSize: 1024,
  maxOutputs: MAX_IMAGES_PER_REQUEST,
  steps: { min: 1, max: 100 },
  guidance: { min: 0, max: 20 },
  seed: { min: 0, max: 4_294_967_295 },
  promptStrength: { min: 0, max: 1 },
  // The official JS client's inline limit (MAX_DATA_URI_SIZE): a data URI of a ~7 MB image.
  imageUrlMaxLength: 10_000_000
} as const

/**
 * https URLs made only of RFC 3986 characters (so the upstream `format: uri` check accepts them; percent-encode
 * anything else), or base64 data URIs of the image types the FLUX models read. Linear: it is run on multi-MB strings,
 * where ajv-formats' `uri` regex overflows the stack. `(c|%XX)*` is written `c*(%XXc*)*` (the same strings): V8
 * backtracks the alternation form one stack frame per character, which overflowed on a URL of a few MB (a 500).
 */
const URI_CHARS = "[A-Za-z0-9._~!$&'()*+,;=:@/-]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~!$&'()*+,;=:@/-]*)*"
const QUERY_CHARS = "[A-Za-z0-9._~!$&'()*+,;=:@/?-]*(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)*"
export const IMAGE_URL_PATTERN =
  `^(?:https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/${URI_CHARS})?(?:\\?${QUERY_CHARS})?(?:#${QUERY_CHARS})?` +
  '|data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/]+={0,2})$'

/** What IMAGE_URL_PATTERN accepts, for people: the validation message of `image_url`. */
export const IMAGE_URL_MESSAGE = 'must be an https:// URL (percent-encoded) or a base64 data: URI of a PNG, JPEG, GIF or ' +
  'WebP image (data:image/png;base64,…)'

// ---- shared components ------------------------------------------------------------------------------------------

export const ModelIdSchema = Type.Union(MODEL_IDS.map((id) => Type.Literal(id)), {
  $id: 'ModelId',
  description: 'A FLUX model: flux-schnell (free plan), flux-dev (basic), flux-1.1-pro and flux-kontext-pro (premium). ' +
    'GET /v1/models lists what each accepts.',
  examples: ['flux-dev']
})

export const OutputFormatSchema = Type.Union([
  Type.Literal('webp'),
  Type.Literal('jpg'),
  Type.Literal('jpeg'),
  Type.Literal('png')
], {
  $id: 'OutputFormat',
  description: 'Image file format. `jpeg` is the same as `jpg`. flux-kontext-pro cannot write webp and makes jpg instead.',
  examples: ['png']
})

export const WarningSchema = Type.Object({
  field: Type.String({ description: 'The request field the warning is about.', examples: ['negative_prompt'] }),
  code: Type.Union([Type.Literal('ignored'), Type.Literal('adjusted')], {
    description: '`ignored`: the chosen model has no such setting, so the value was not used. ' +
      '`adjusted`: the value was changed to the nearest one the model supports.',
    examples: ['ignored']
  }),
  message: Type.String({
    description: 'What happened, for people.',
    examples: ['FLUX models have no negative prompt; negative_prompt was not used.']
  })
}, {
  $id: 'Warning',
  additionalProperties: false,
  description: 'A request value that was accepted but not honoured exactly by the chosen model.'
})

// ---- request fields, shared by both request bodies -------------------------------------------------------------

const PromptField = Type.String({
  minLength: GENERATION_LIMITS.promptMinLength,
  maxLength: GENERATION_LIMITS.promptMaxLength,
  // Unanchored: "contains a non-whitespace character", so a blank prompt is refused.
  pattern: '\\S',
  'x-error-message': { pattern: 'must not be blank' },
  description: 'What to generate, or for image-to-image what to make of the input image. 3–500 characters, not blank.',
  examples: ['A lighthouse on a cliff at dusk, oil painting']
})

const sizeField = (side: 'width' | 'height') => Type.Union(GENERATION_LIMITS.sizes.map((px) => Type.Literal(px)), {
  description: `Requested ${side} in pixels. Default 1024; when only one of width/height is given the other matches it. ` +
    'flux-schnell and flux-dev make the nearest of their fixed sizes (e.g. 1024×768 → 1152×896), flux-1.1-pro makes ' +
    'the exact size up to 1440 px a side, flux-kontext-pro picks the nearest aspect ratio. Any change is reported ' +
    "in `warnings` as 'adjusted'.",
  examples: [1024]
})

const GuidanceField = Type.Number({
  minimum: GENERATION_LIMITS.guidance.min,
  maximum: GENERATION_LIMITS.guidance.max,
  description: 'How closely to follow the prompt. Used by flux-dev only, which accepts 1–10 (default 3); ' +
    "other models ignore it with a warning.",
  examples: [3.5]
})

const SeedField = Type.Integer({
  minimum: GENERATION_LIMITS.seed.min,
  maximum: GENERATION_LIMITS.seed.max,
  description: 'Random seed, for repeatable results. On flux-schnell and flux-dev a seed also turns off the fast ' +
    'fp8 mode, which is not deterministic; seed 0 means "random" to those two models and is ignored with a warning.',
  examples: [42]
})

const modelField = (description: string) => Type.Optional(ref(ModelIdSchema, { description, examples: ['flux-dev'] }))

const outputFormatField = Type.Optional(ref(OutputFormatSchema, {
  description: 'Image file format. Default: webp, except png on flux-kontext-pro (which cannot write webp).',
  examples: ['png']
}))

const WebhookField = Type.String({
  minLength: 1,
  maxLength: 2048,
  pattern: '^https?://',
  description: 'An https URL to POST the prediction to as it progresses (see `webhook_events_filter`), signed per ' +
    'Standard Webhooks with the key\'s secret. Private, loopback and cloud metadata addresses are refused ' +
    '(`url_not_allowed`). Default: the key\'s default webhook, if it has one.',
  examples: ['https://hooks.example.com/flux']
})

export const WEBHOOK_EVENTS = ['start', 'output', 'completed'] as const

const WebhookEventsFilterField = Type.Array(Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e))), {
  minItems: 1,
  uniqueItems: true,
  description: 'Which events are sent to `webhook`: `start` (the prediction was created and is running), `output` ' +
    '(its images are kept, sent as it succeeds) and `completed` (it ended, however). Default `["completed"]`.',
  examples: [['completed']]
})

// ---- requests -------------------------------------------------------------------------------------------------

export const TextToImageRequestSchema = Type.Object({
  prompt: PromptField,
  model: modelField('The model to use. Default: the plan\'s default model (free: flux-schnell, basic: flux-dev, ' +
    'premium: flux-1.1-pro).'),
  width: Type.Optional(sizeField('width')),
  height: Type.Optional(sizeField('height')),
  num_outputs: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: GENERATION_LIMITS.maxOutputs,
    // No `default` keyword, here or on any request field: openapi-typescript with its default flags makes a
    // component's defaulted field required, so the obvious call would not compile. The service applies the default.
    description: 'How many images to make (default 1). flux-schnell and flux-dev make up to 4 in one prediction; ' +
      'flux-1.1-pro and flux-kontext-pro make one image per prediction, so they accept only 1. Each image is billed.',
    examples: [1]
  })),
  num_inference_steps: Type.Optional(Type.Integer({
    minimum: GENERATION_LIMITS.steps.min,
    maximum: GENERATION_LIMITS.steps.max,
    description: 'Denoising steps: more is slower and finer. flux-schnell accepts 1–4 (default 4), flux-dev 20–50 ' +
      '(default 28); the pro models have no steps setting and ignore it with a warning.',
    examples: [28]
  })),
  guidance_scale: Type.Optional(GuidanceField),
  seed: Type.Optional(SeedField),
  output_format: outputFormatField,
  negative_prompt: Type.Optional(Type.String({
    maxLength: GENERATION_LIMITS.promptMaxLength,
    description: 'Accepted for compatibility but never used: FLUX models have no negative prompt. ' +
      "Giving one adds an 'ignored' warning; describe what you want in `prompt` instead.",
    examples: ['blurry, low quality']
  })),
  webhook: Type.Optional(WebhookField),
  webhook_events_filter: Type.Optional(WebhookEventsFilterField)
}, {
  $id: 'TextToImageRequest',
  additionalProperties: false,
  description: 'Generate images from a text prompt.'
})

export const ImageToImageRequestSchema = Type.Object({
  prompt: PromptField,
  image_url: Type.String({
    minLength: 1,
    maxLength: GENERATION_LIMITS.imageUrlMaxLength,
    pattern: IMAGE_URL_PATTERN,
    // Said in words: the pattern itself is some 400 characters of regex.
    'x-error-message': { pattern: IMAGE_URL_MESSAGE },
    description: 'The input image: an https URL (percent-encoded) or a data URI ' +
      '`data:image/{png|jpeg|gif|webp};base64,…` of up to 10,000,000 characters.',
    examples: ['https://example.com/photos/street.jpg']
  }),
  model: modelField('The model to use: flux-dev (transforms the image, guided by prompt_strength) or ' +
    'flux-kontext-pro (edits it by instruction). Default: the plan\'s image-to-image model ' +
    '(basic: flux-dev, premium: flux-kontext-pro; the free plan has none).'),
  prompt_strength: Type.Optional(Type.Number({
    minimum: GENERATION_LIMITS.promptStrength.min,
    maximum: GENERATION_LIMITS.promptStrength.max,
    description: 'flux-dev only: how much to change the input image, from 0 (keep it) to 1 (replace it). Default 0.8. ' +
      'flux-kontext-pro ignores it with a warning.',
    examples: [0.8]
  })),
  guidance_scale: Type.Optional(GuidanceField),
  seed: Type.Optional(SeedField),
  output_format: outputFormatField,
  webhook: Type.Optional(WebhookField),
  webhook_events_filter: Type.Optional(WebhookEventsFilterField)
}, {
  $id: 'ImageToImageRequest',
  additionalProperties: false,
  description: 'Make a new image from an input image and a prompt. The output keeps the input\'s aspect ratio.'
})

export const QuoteRequestSchema = Type.Object({
  model: ref(ModelIdSchema, { description: 'The model to price.', examples: ['flux-1.1-pro'] }),
  num_images: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: MAX_IMAGES_PER_REQUEST,
    description: 'How many images. Default 1.',
    examples: [4]
  }))
}, {
  $id: 'QuoteRequest',
  additionalProperties: false,
  description: 'Ask what a number of images of a model would cost.'
})

// ---- responses ------------------------------------------------------------------------------------------------

export const QuoteSchema = Type.Object({
  model: ref(ModelIdSchema, { description: 'The model priced.', examples: ['flux-1.1-pro'] }),
  num_images: Type.Integer({ minimum: 1, description: 'How many images were priced.', examples: [4] }),
  credits_per_image: Type.Integer({ minimum: 1, description: 'Credits one image costs.', examples: [5] }),
  total_credits: Type.Integer({ minimum: 1, description: 'credits_per_image × num_images.', examples: [20] }),
  usd_per_image: Type.Number({ minimum: 0, description: 'Replicate\'s list price for one image, in USD.', examples: [0.04] }),
  total_usd: Type.Number({
    minimum: 0,
    description: 'usd_per_image × num_images, rounded to millionths of a dollar.',
    examples: [0.16]
  })
}, {
  $id: 'Quote',
  additionalProperties: false,
  description: 'What a number of images of a model costs, in credits and in upstream USD.'
})

const rangeField = (what: string, example: { min: number, max: number, default: number }) => Type.Union([
  Type.Object({
    min: Type.Number({ description: 'Smallest accepted value.', examples: [example.min] }),
    max: Type.Number({ description: 'Largest accepted value.', examples: [example.max] }),
    default: Type.Number({ description: 'Used when the request gives none.', examples: [example.default] })
  }, { additionalProperties: false }),
  Type.Null()
], { description: `Accepted ${what}; null when the model has no such setting.`, examples: [example] })

const UpstreamFormatSchema = Type.Union([Type.Literal('webp'), Type.Literal('jpg'), Type.Literal('png')])

export const ModelInfoSchema = Type.Object({
  id: ref(ModelIdSchema, { description: 'The model id to put in requests.', examples: ['flux-dev'] }),
  name: Type.String({ description: 'Display name.', examples: ['FLUX.1 [dev]'] }),
  description: Type.String({ description: 'What the model is good for.', examples: ['Balanced quality and speed.'] }),
  replicate_model: Type.String({ description: 'The Replicate model behind it.', examples: ['black-forest-labs/flux-dev'] }),
  tier: Type.Union(TIERS.map((tier) => Type.Literal(tier)), {
    description: 'The lowest plan that includes the model.',
    examples: ['basic']
  }),
  credits_per_image: Type.Integer({ minimum: 1, description: 'Credits one image costs.', examples: [2] }),
  usd_per_image: Type.Number({ minimum: 0, description: 'Replicate\'s list price per image, in USD.', examples: [0.025] }),
  typical_seconds: Type.Number({
    minimum: 0,
    description: 'Typical time the model runs for one prediction, in seconds, not counting queueing.',
    examples: [4]
  }),
  quality: Type.Union([Type.Literal('good'), Type.Literal('better'), Type.Literal('best')], {
    description: 'Relative image quality.',
    examples: ['better']
  }),
  steps: rangeField('num_inference_steps', { min: 20, max: 50, default: 28 }),
  guidance: rangeField('guidance_scale', { min: 1, max: 10, default: 3 }),
  max_outputs_per_prediction: Type.Integer({
    minimum: 1,
    description: 'The largest num_outputs the model accepts.',
    examples: [4]
  }),
  supports: Type.Array(Type.Union([Type.Literal('text-to-image'), Type.Literal('image-to-image')]), {
    description: 'What the model can do.',
    examples: [['text-to-image', 'image-to-image']]
  }),
  output_formats: Type.Array(UpstreamFormatSchema, {
    description: 'Formats the model writes (`jpeg` in a request means `jpg`).',
    examples: [['webp', 'jpg', 'png']]
  }),
  default_output_format: Type.Union([Type.Literal('webp'), Type.Literal('jpg'), Type.Literal('png')], {
    description: 'Format used when the request gives none.',
    examples: ['webp']
  })
}, {
  $id: 'ModelInfo',
  additionalProperties: false,
  description: 'A model in the catalog and what it accepts.'
})

export const ModelListSchema = Type.Object({
  models: Type.Array(ref(ModelInfoSchema), { description: 'Every model, cheapest first.', examples: [listModels()] })
}, {
  $id: 'ModelList',
  additionalProperties: false,
  description: 'The model catalog.'
})

/** Every schema above, in an order that `fastify.addSchema` accepts (referenced before referencing). */
export const GENERATION_SCHEMAS = [
  ModelIdSchema,
  OutputFormatSchema,
  WarningSchema,
  TextToImageRequestSchema,
  ImageToImageRequestSchema,
  QuoteRequestSchema,
  QuoteSchema,
  ModelInfoSchema,
  ModelListSchema
] as const

export type OutputFormat = Static<typeof OutputFormatSchema>
export type Warning = Static<typeof WarningSchema>
export type TextToImageRequest = Static<typeof TextToImageRequestSchema>
export type ImageToImageRequest = Static<typeof ImageToImageRequestSchema>
export type QuoteRequest = Static<typeof QuoteRequestSchema>
export type Quote = Static<typeof QuoteSchema>
export type ModelInfo = Static<typeof ModelInfoSchema>
export type ModelList = Static<typeof ModelListSchema>
