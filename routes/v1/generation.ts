import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createSignal } from '../../src/http-signal.ts'
import { parsePrefer } from '../../src/prefer.ts'
import type { CreateResult } from '../../src/tenancy/service.ts'
import { BEARER_SECURITY, PredictionSchema, problemResponses, refTo } from '../../src/schemas/common.ts'
import { ImageToImageRequestSchema, TextToImageRequestSchema } from '../../src/schemas/generation.ts'

const PreferHeaders = Type.Object({
  prefer: Type.Optional(Type.String({
    description: '`wait=N` waits up to N seconds (1–60) for the images; `respond-async` answers 202 at once. ' +
      'Default: wait up to SYNC_WAIT_SECONDS (60).',
    examples: ['wait=30', 'respond-async']
  })),
  'idempotency-key': Type.Optional(Type.String({
    minLength: 1,
    maxLength: 255,
    description: 'Makes a retry safe: the same key and body within 24 h replays the first response (with `Idempotent-Replayed: true`) ' +
      'instead of creating another prediction. The same key with another body is 422; while the first is still running, 409.'
  }))
})

const createdResponses = {
  200: refTo(PredictionSchema, { description: 'Finished within the wait: the prediction with its images (or its failure).' }),
  202: refTo(PredictionSchema, { description: 'Still running: follow `urls.get` (also in the Location header), optionally with `?wait=N`.' }),
  ...problemResponses(400, 401, 402, 403, 409, 413, 415, 422, 429, 502, 503, 504)
}

function waitFor (request: FastifyRequest, syncWait: number): { waitSeconds: number | null, applied: string } {
  const pref = parsePrefer(request.headers.prefer)
  if (pref.respondAsync) return { waitSeconds: null, applied: 'respond-async' }
  if (pref.wait !== undefined) {
    const n = Math.min(60, Math.max(1, pref.wait))
    return { waitSeconds: n, applied: `wait=${n}` }
  }
  return { waitSeconds: syncWait, applied: '' }
}

function answer (reply: FastifyReply, result: CreateResult, applied: string) {
  if (applied) reply.header('preference-applied', applied)
  const prediction = reply.server.imageUrls.signOutput(result.prediction)
  if (result.settled) return reply.code(200).send(prediction)
  return reply.code(202).header('location', prediction.urls.get).send(prediction)
}

const generation: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, opts) => {
  const syncWait = opts.config.SYNC_WAIT_SECONDS

  fastify.post('/text-to-image', {
    config: { idempotent: true },
    schema: {
      security: BEARER_SECURITY,
      operationId: 'createTextToImage',
      tags: ['generation'],
      summary: 'Generate images from a prompt',
      description: 'Validates and moderates the prompt, then runs the model. Waits for the images (sync mode) unless `Prefer: respond-async`.',
      headers: PreferHeaders,
      body: refTo(TextToImageRequestSchema),
      response: createdResponses
    }
  }, async (request, reply) => {
    const { waitSeconds, applied } = waitFor(request, syncWait)
    const result = await fastify.tenancy.createTextToImage(request.tenant, request.body, { waitSeconds, signal: createSignal(request, reply), log: request.log, baseUrl: fastify.publicBaseUrl(request) })
    return answer(reply, result, applied)
  })

  fastify.post('/image-to-image', {
    // Data-URI images make these bodies large; the limit follows the image size we accept.
    bodyLimit: Math.ceil(opts.config.IMAGE_MAX_BYTES * 4 / 3) + 64 * 1024,
    config: { idempotent: true },
    schema: {
      security: BEARER_SECURITY,
      operationId: 'createImageToImage',
      tags: ['generation'],
      summary: 'Transform an input image guided by a prompt',
      description: 'The input image is an https URL (fetched by the service with SSRF protection) or a data URI, checked for size and type.',
      headers: PreferHeaders,
      body: refTo(ImageToImageRequestSchema),
      response: createdResponses
    }
  }, async (request, reply) => {
    const { waitSeconds, applied } = waitFor(request, syncWait)
    const result = await fastify.tenancy.createImageToImage(request.tenant, request.body, { waitSeconds, signal: createSignal(request, reply), log: request.log, baseUrl: fastify.publicBaseUrl(request) })
    return answer(reply, result, applied)
  })
}

export default generation
