import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { AppError } from '../../src/errors.ts'
import { measureImage, parseImageInput } from '../../src/net/image-input.ts'
import { createSafeFetcher } from '../../src/net/safe-fetch.ts'
import type { FetchedImage } from '../../src/net/safe-fetch.ts'
import { createPreparer } from '../../src/predictions/prepare.ts'
import type { PredictionPreparer, ResolvedImage } from '../../src/predictions/prepare.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Readies a create: moderation, the input image, the model's inputs, the quote. */
    predictions: PredictionPreparer
  }
}

/**
 * What a create needs before it goes upstream. Image-to-image inputs given as URLs are fetched here, through the
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

  fastify.decorate('predictions', createPreparer({
    moderation: fastify.moderation,
    imageModeration: fastify.imageModeration,
    resolveImage,
    log: fastify.log
  }))
  fastify.addHook('onClose', async () => { await fetcher.close() })
}, { name: 'predictions', dependencies: ['moderation'] })
