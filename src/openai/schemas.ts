import { Type } from '@sinclair/typebox'
import type { Static } from '@sinclair/typebox'
import { refTo } from '../schemas/common.ts'

/**
 * OpenAI's Images API, as its SDKs send and read it. `model` names one of our models; OpenAI's own model names are
 * refused as OpenAI refuses an unknown model. Fields OpenAI has and FLUX cannot honour are accepted and reported in
 * the `Warning` header, as the native API reports them in `warnings`.
 */
const SIZE_PATTERN = '^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$'

export const OpenAIImageGenerationRequestSchema = Type.Object({
  prompt: Type.String({ minLength: 1, maxLength: 4000, description: 'What to draw. The native API\'s prompt rules and moderation apply.' }),
  model: Type.Optional(Type.String({ description: 'One of our model ids (`flux-schnell`, `flux-dev`, `flux-1.1-pro`); default: the plan\'s default model.', examples: ['flux-schnell'] })),
  n: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: 'How many images (default 1); up to 4 on flux-schnell and flux-dev, 1 on the pro models.' })),
  size: Type.Optional(Type.String({ pattern: SIZE_PATTERN, description: '`WxH` (e.g. `1024x1024`, `1792x1024`) or `auto`: mapped to the nearest size the model makes, with a `Warning` header when adjusted.', examples: ['1024x1024'] })),
  response_format: Type.Optional(Type.Union([Type.Literal('url'), Type.Literal('b64_json')], { description: '`url` (default): signed URLs of the kept images; `b64_json`: the images inline.' })),
  user: Type.Optional(Type.String({ maxLength: 256, description: 'Accepted for compatibility; not used.' })),
  quality: Type.Optional(Type.String({ maxLength: 32, description: 'Accepted and ignored (with a `Warning` header).' })),
  style: Type.Optional(Type.String({ maxLength: 32, description: 'Accepted and ignored (with a `Warning` header).' })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, description: 'Not an OpenAI field: the FLUX seed, for reproducible images.' }))
}, { $id: 'OpenAIImageGenerationRequest', additionalProperties: true, description: 'OpenAI\'s `POST /v1/images/generations` body. Unknown fields are ignored, as OpenAI\'s SDKs may send newer ones.' })

export const OpenAIImageSchema = Type.Object({
  url: Type.Optional(Type.String({ description: 'A signed URL of the kept image (no header needed), valid for IMAGE_URL_TTL_SECONDS.' })),
  b64_json: Type.Optional(Type.String({ description: 'The image, base64-encoded.' })),
  revised_prompt: Type.Optional(Type.String())
}, { $id: 'OpenAIImage', additionalProperties: false })

export const OpenAIImagesResponseSchema = Type.Object({
  created: Type.Integer({ description: 'Unix seconds.' }),
  data: Type.Array(refTo(OpenAIImageSchema))
}, { $id: 'OpenAIImagesResponse', additionalProperties: false })

export const OpenAIErrorSchema = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String({ description: '`invalid_request_error`, `authentication_error`, `permission_error`, `insufficient_quota`, `requests`, `server_error`.' }),
    param: Type.Union([Type.String(), Type.Null()]),
    code: Type.Union([Type.String(), Type.Null()], { description: 'The gateway\'s problem code (see Problem.code), or OpenAI\'s where one exists: `model_not_found`, `invalid_api_key`, `rate_limit_exceeded`, `insufficient_quota`, `content_policy_violation`.' })
  }, { additionalProperties: false })
}, { $id: 'OpenAIError', additionalProperties: false, description: 'An error in OpenAI\'s shape, so its SDKs raise their typed errors.' })

export const OPENAI_SCHEMAS = [OpenAIImageGenerationRequestSchema, OpenAIImageSchema, OpenAIImagesResponseSchema, OpenAIErrorSchema] as const

export type OpenAIImageGenerationRequest = Static<typeof OpenAIImageGenerationRequestSchema>
export type OpenAIError = Static<typeof OpenAIErrorSchema>
export type OpenAIImagesResponse = { created: number, data: { url?: string, b64_json?: string }[] }
