import multipart from '@fastify/multipart'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError, ValidationError } from '../../src/errors.ts'
import { createSignal } from '../../src/http-signal.ts'
import { isModelId, MODEL_IDS } from '../../src/models/catalog.ts'
import { sniffImageType } from '../../src/net/image-type.ts'
import { modelNotFound, openAIError } from '../../src/openai/errors.ts'
import { OpenAIErrorSchema, OpenAIImageGenerationRequestSchema, OpenAIImagesResponseSchema } from '../../src/openai/schemas.ts'
import type { OpenAIImagesResponse } from '../../src/openai/schemas.ts'
import { fieldProblems } from '../../src/problems.ts'
import type { Problem } from '../../src/problems.ts'
import { BEARER_SECURITY, refTo } from '../../src/schemas/common.ts'
import type { PublicPrediction } from '../../src/schemas/common.ts'
import { GENERATION_LIMITS, ImageToImageRequestSchema, TextToImageRequestSchema } from '../../src/schemas/generation.ts'
import type { ImageToImageRequest, TextToImageRequest } from '../../src/schemas/generation.ts'

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
const ERROR_STATUSES = [400, 401, 403, 404, 409, 429, 500, 502, 503, 504] as const

const isProblem = (payload: unknown): payload is Problem =>
  typeof payload === 'object' && payload !== null && typeof (payload as Problem).type === 'string' &&
  (payload as Problem).type.startsWith('urn:flux-gateway:problem:') && typeof (payload as Problem).code === 'string'

/**
 * `WxH` as our width and height: the pair of the sizes we take whose aspect ratio is nearest (then whose area is),
 * so 1792x1024 is read as 1536x768. The model's own mapping then adjusts further, with warnings, as on the native API.
 */
function sizeFrom (size: string | undefined): { width: number, height: number, note?: string } | undefined {
  if (size === undefined || size === 'auto') return undefined
  const [w, h] = size.split('x').map(Number) as [number, number]
  const sides: readonly number[] = GENERATION_LIMITS.sizes
  let best = { width: sides[0]!, height: sides[0]!, score: Infinity }
  for (const width of sides) {
    for (const height of sides) {
      const score = Math.abs(Math.log((width / height) / (w / h))) * 10 + Math.abs(Math.log((width * height) / (w * h)))
      if (score < best.score) best = { width, height, score }
    }
  }
  const note = best.width === w && best.height === h ? undefined : `size ${size} was read as ${best.width}x${best.height}`
  return { width: best.width, height: best.height, ...(note ? { note } : {}) }
}

/** A `Warning` header (RFC 9111's 299, "miscellaneous persistent warning") for each thing not done as asked. */
function warningHeader (messages: string[]): string | undefined {
  if (messages.length === 0) return undefined
  return messages.map((m) => `299 flux-gateway "${m.replace(/×/g, 'x').replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, '')}"`).join(', ')
}

const openaiImages: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, opts) => {
  const syncWait = opts.config.SYNC_WAIT_SECONDS
  await fastify.register(multipart, { limits: { fileSize: opts.config.IMAGE_MAX_BYTES, files: 2, fields: 20, fieldSize: 8192 } })

  // Every refusal on these routes leaves in OpenAI's shape, whoever made it (authentication, rate limits,
  // idempotency, validation, the service): they all send a problem document, translated here in one place.
  fastify.addHook('preSerialization', async (_request, reply, payload) => {
    if (!isProblem(payload)) return payload
    const { status, body, retry } = openAIError(payload)
    // OpenAI's SDKs retry 409, 429 and 5xx unless told not to: a spent budget will not come back in a second.
    reply.code(status).type('application/json; charset=utf-8').header('x-should-retry', String(retry))
    return body
  })

  const errorResponses = Object.fromEntries(ERROR_STATUSES.map((s) => [s, refTo(OpenAIErrorSchema, { description: 'An error, in OpenAI\'s shape.' })]))

  /** Validates a body built from the OpenAI request with the native route's own schema, so the same rules apply. */
  function validated<T> (request: FastifyRequest, schema: object, body: T): T {
    const validate = request.compileValidationSchema(schema, 'body')
    if (!validate(body)) throw new ValidationError(fieldProblems((validate.errors ?? []) as never, 'body'))
    return body
  }

  /** Waits for the prediction to end (OpenAI's API answers only then), and answers in OpenAI's shape. */
  async function answer (request: FastifyRequest, reply: FastifyReply, first: PublicPrediction, o: { format: 'url' | 'b64_json' | undefined, notes: string[], baseUrl: string, signal: AbortSignal | undefined }): Promise<OpenAIImagesResponse> {
    let prediction = first
    while (!TERMINAL.has(prediction.status)) {
      prediction = await fastify.tenancy.get(request.tenant, prediction.id, { baseUrl: o.baseUrl, waitSeconds: 60, signal: o.signal })
    }
    if (prediction.status !== 'succeeded' || !prediction.output) {
      if (prediction.error?.code === 'content_policy_violation') throw new AppError('content_policy_violation', prediction.error.message, { prediction_id: prediction.id })
      throw new AppError('prediction_failed', prediction.error?.message ?? `The prediction ended ${prediction.status}.`, { prediction_id: prediction.id })
    }
    const warning = warningHeader([...o.notes, ...prediction.warnings.map((w) => w.message)])
    if (warning) reply.header('warning', warning)
    reply.header('x-prediction-id', prediction.id)
    const created = Math.floor(Date.parse(prediction.created_at) / 1000)
    if (o.format === 'b64_json') {
      const data = []
      for (let i = 0; i < prediction.output.length; i++) {
        const image = await fastify.tenancy.image(request.tenant, prediction.id, i)
        const chunks: Buffer[] = []
        for await (const chunk of image.body) chunks.push(Buffer.from(chunk as Buffer))
        data.push({ b64_json: Buffer.concat(chunks).toString('base64') })
      }
      return { created, data }
    }
    return { created, data: fastify.imageUrls.signOutput(prediction).output!.map((url) => ({ url })) }
  }

  function ignored (fields: Record<string, unknown>): string[] {
    return Object.entries(fields).filter(([, v]) => v !== undefined).map(([k]) => `${k} is not used by FLUX models and was ignored`)
  }

  fastify.post('/images/generations', {
    config: { idempotent: true },
    schema: {
      security: BEARER_SECURITY,
      operationId: 'createOpenAIImage',
      tags: ['openai'],
      summary: 'Generate images (OpenAI-compatible)',
      description: 'OpenAI\'s Images API on our models: the OpenAI SDKs work with `baseURL` set to this service\'s `/v1`. ' +
        'Same validation, moderation, plans, credits, idempotency and kept images as `POST /v1/text-to-image`; answers when the images exist. ' +
        'Errors come in OpenAI\'s shape. What was adjusted or ignored is said in the `Warning` header.',
      body: refTo(OpenAIImageGenerationRequestSchema),
      response: { 200: refTo(OpenAIImagesResponseSchema), ...errorResponses }
    }
  }, async (request, reply) => {
    const b = request.body
    if (b.model !== undefined && !isModelId(b.model)) throw modelNotFound(b.model, MODEL_IDS)
    const size = sizeFrom(b.size)
    const body = validated<TextToImageRequest>(request, { $ref: TextToImageRequestSchema.$id }, {
      prompt: b.prompt,
      ...(b.model !== undefined ? { model: b.model as TextToImageRequest['model'] } : {}),
      ...(b.n !== undefined ? { num_outputs: b.n } : {}),
      ...(size ? { width: size.width as TextToImageRequest['width'], height: size.height as TextToImageRequest['height'] } : {}),
      ...(b.seed !== undefined ? { seed: b.seed } : {})
    })
    const signal = createSignal(request, reply)
    const baseUrl = fastify.publicBaseUrl(request)
    const result = await fastify.tenancy.createTextToImage(request.tenant, body, { waitSeconds: syncWait, signal, log: request.log, baseUrl })
    const notes = [...(size?.note ? [size.note] : []), ...ignored({ quality: b.quality, style: b.style })]
    return answer(request, reply, result.prediction, { format: b.response_format, notes, baseUrl, signal })
  })

  fastify.post('/images/edits', {
    config: { idempotent: true },
    bodyLimit: Math.ceil(opts.config.IMAGE_MAX_BYTES * 1.1) + 64 * 1024,
    schema: {
      security: BEARER_SECURITY,
      operationId: 'editOpenAIImage',
      tags: ['openai'],
      summary: 'Edit an image (OpenAI-compatible)',
      description: 'OpenAI\'s image edit, as `multipart/form-data`: `image` (a PNG, JPEG, GIF or WebP file), `prompt`, and optionally ' +
        '`model` (flux-dev or flux-kontext-pro), `n` (1), `response_format`, `user`; `size`, `quality` and `style` are ignored with a ' +
        '`Warning` (the output keeps the input\'s aspect ratio). A `mask` is refused: FLUX edits the whole image by instruction. ' +
        'Same rules and credits as `POST /v1/image-to-image`.',
      response: { 200: refTo(OpenAIImagesResponseSchema), ...errorResponses }
    }
  }, async (request, reply) => {
    if (!request.isMultipart()) throw new AppError('unsupported_media_type', 'Send the edit as multipart/form-data, as OpenAI\'s SDKs do.')
    const fields: Record<string, string> = {}
    let image: Buffer | undefined
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        const bytes = await part.toBuffer()
        if (part.fieldname === 'mask') throw new ValidationError([{ field: 'mask', message: 'masks are not supported: FLUX edits the whole image, guided by the prompt' }])
        if (part.fieldname !== 'image' && part.fieldname !== 'image[]') throw new ValidationError([{ field: part.fieldname, message: 'is not a known file field; send the image as `image`' }])
        if (image) throw new ValidationError([{ field: 'image', message: 'one image only' }])
        image = bytes
      } else {
        fields[part.fieldname] = String(part.value)
      }
    }
    if (!image) throw new ValidationError([{ field: 'image', message: 'is required: a PNG, JPEG, GIF or WebP file' }])
    if (fields.model !== undefined && !isModelId(fields.model)) throw modelNotFound(fields.model, MODEL_IDS)
    if (fields.n !== undefined && fields.n !== '1') throw new ValidationError([{ field: 'n', message: 'must be 1: an edit makes one image' }])
    const format = fields.response_format
    if (format !== undefined && format !== 'url' && format !== 'b64_json') throw new ValidationError([{ field: 'response_format', message: 'must be url or b64_json' }])
    const type = sniffImageType(image)
    if (!type) throw new AppError('unsupported_media_type', 'The image is not a PNG, JPEG, GIF or WebP file.', { field: 'image' })
    const seed = fields.seed === undefined ? undefined : Number(fields.seed)
    const body = validated<ImageToImageRequest>(request, { $ref: ImageToImageRequestSchema.$id }, {
      prompt: fields.prompt ?? '',
      image_url: `data:${type};base64,${image.toString('base64')}`,
      ...(fields.model !== undefined ? { model: fields.model as ImageToImageRequest['model'] } : {}),
      ...(seed !== undefined ? { seed } : {})
    })
    const signal = createSignal(request, reply)
    const baseUrl = fastify.publicBaseUrl(request)
    const result = await fastify.tenancy.createImageToImage(request.tenant, body, { waitSeconds: syncWait, signal, log: request.log, baseUrl })
    const notes = ignored({ size: fields.size, quality: fields.quality, style: fields.style })
    return answer(request, reply, result.prediction, { format: format as 'url' | 'b64_json' | undefined, notes, baseUrl, signal })
  })
}

export default openaiImages
