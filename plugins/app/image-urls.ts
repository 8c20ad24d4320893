import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { createImageUrlSigner, imageUrlSecret } from '../../src/tenancy/image-urls.ts'
import type { ImageUrlSigner } from '../../src/tenancy/image-urls.ts'

declare module 'fastify' {
  interface FastifyInstance {
    /** Signs kept-image URLs (every `output` a route hands out) and checks them on the image route. */
    imageUrls: ImageUrlSigner
  }
}

/** Image URL signing with IMAGE_URL_SECRET, or the secret kept in the store so every instance shares it. */
export default fp(async function imageUrls (fastify: FastifyInstance, opts: AppOptions) {
  const { config } = opts
  const secret = await imageUrlSecret(config.IMAGE_URL_SECRET, fastify.state)
  fastify.decorate('imageUrls', createImageUrlSigner({ secret, ttlSeconds: config.IMAGE_URL_TTL_SECONDS }))
}, { name: 'image-urls', dependencies: ['state'] })
