import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { measureImage, parseImageInput } from '../../src/net/image-input.ts'
import { createSafeFetcher } from '../../src/net/safe-fetch.ts'
import { shapeCreates } from '../../src/tenancy/upstream-shaper.ts'
import type { FetchedImage } from '../../src/net/safe-fetch.ts'
import { createPredictionService } from '../../src/predictions/service.ts'
import type { PredictionService, ResolvedImage } from '../../src/predictions/service.ts'
import { webhookUrl } from '../../src/tenancy/webhook-receiver.ts'

declare module 'fastify' {
  interface FastifyInstance {
    predictions: PredictionService
  }
}

/**
 * The prediction service. Image-to-image inputs given as URLs are fetched here, through the
 * SSRF-safe fetcher with the size and type limits, and sent upstream as data URIs: the model then
 * gets exactly the bytes we checked, not whatever the URL serves a moment later.
 */
export default fp(async function predictions (fastify: FastifyInstance, opts: AppOptions) {
  const { config, overrides = {} } = opts
  const maxBytes = config.IMAGE_MAX_BYTES
  const fetcher = createSafeFetcher({ maxBytes, timeoutMs: config.IMAGE_FETCH_TIMEOUT_MS, ...overrides.imageFetch })

  async function resolveImage (value: string, signal?: AbortSignal): Promise<ResolvedImage> {
    const parsed = await parseImageInput(value, { maxBytes, allowAddresses: overrides.imageFetch?.allowAddresses })
    if (parsed.kind === 'data') return { uri: value, width: parsed.width, height: parsed.height, bytes: parsed.bytes }
    let image: FetchedImage
    try {
      image = await fetcher.fetch(parsed.url, { signal })
    } catch (err) {
      // A refused URL, an oversized or mistyped image is the caller's image_url at fault: say so.
      if (err instanceof AppError && err.statusCode < 500 && err.extra.field === undefined) err.extra.field = 'image_url'
      throw err
    }
    // Fetched bytes get the checks a data URI gets: a truncated or corrupt image is the caller's 400, not our 500.
    const { width, height } = await measureImage(image.bytes)
    return { uri: `data:${image.contentType};base64,${image.bytes.toString('base64')}`, width, height, bytes: image.bytes }
  }

  // Request bodies are JSON only. Fastify also parses text/plain by default, which turned a text body into a
  // 400 "body must be object" instead of the documented 415 (this plugin is not encapsulated: it applies app-wide).
  fastify.removeContentTypeParser('text/plain')

  const service = createPredictionService({
    // Creates go through the shared upstream rate (plugins/app/upstream-limits.ts).
    replicate: shapeCreates(fastify.replicate, fastify.upstreamShaper),
    moderation: fastify.moderation,
    imageModeration: fastify.imageModeration,
    resolveImage,
    defaultPlan: config.DEFAULT_PLAN,
    cancelAfter: config.REPLICATE_CANCEL_AFTER,
    log: fastify.log,
    ...(config.REPLICATE_WEBHOOKS === 'on' ? { webhook: { url: webhookUrl(config), events: ['completed'] } } : {})
  })
  fastify.decorate('predictions', service)
  fastify.addHook('onClose', async () => {
    service.close()
    await fetcher.close()
  })
}, { name: 'predictions', dependencies: ['replicate', 'moderation', 'upstream-limits'] })
