import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { resolvePlan } from '../../src/models/catalog.ts'
import { BEARER_SECURITY, problemResponses } from '../../src/schemas/common.ts'
import { SignatureInvalidError } from '../../src/tenancy/image-urls.ts'
import type { Tenant } from '../../src/tenancy/tenant.ts'

/** Who reads through a valid signature: the signature stands for the owner's consent, so no ownership check follows. */
const SIGNED_URL_READER: Tenant = { id: 'signed-url', plan: resolvePlan('free'), anonymous: true, budget: null, rateLimitPerMinute: null }

const images: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/predictions/:id/images/:index', {
    config: { signedUrl: true },
    schema: {
      operationId: 'getPredictionImage',
      tags: ['predictions'],
      summary: 'A kept output image',
      description: 'The images of a succeeded prediction are copied into our storage when it ends, so they outlive Replicate\'s one-hour URLs. ' +
        'The URLs in `output` are signed (`exp`, `sig`) and need no header, so an `<img src>` can show them until they expire; ' +
        'without a signature, only the key that created the prediction may fetch the image. An expired or altered signature is 403 `signature_invalid`.',
      security: [...BEARER_SECURITY, {}],
      params: Type.Object({
        id: Type.String({ pattern: '^[a-z0-9]{1,64}$', description: 'The prediction id the gateway gave it.' }),
        index: Type.Integer({ minimum: 0, maximum: 15, description: 'The position in `output`.' })
      }, { additionalProperties: false }),
      querystring: Type.Object({
        exp: Type.Optional(Type.Integer({ minimum: 0, description: 'When the signed URL expires (Unix seconds).' })),
        sig: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$', description: 'The URL\'s signature, as `output` gave it.' }))
      }, { additionalProperties: false }),
      headers: Type.Object({
        'if-none-match': Type.Optional(Type.String({ description: 'An ETag from an earlier answer: 304 when the image is the same (it always is).' }))
      }),
      response: {
        200: {
          description: 'The image.',
          content: {
            'image/webp': { schema: { type: 'string', format: 'binary' } },
            'image/png': { schema: { type: 'string', format: 'binary' } },
            'image/jpeg': { schema: { type: 'string', format: 'binary' } }
          }
        },
        304: { description: 'Not modified: the ETag sent in If-None-Match is this image\'s.', type: 'null' },
        ...problemResponses(400, 401, 403, 404, 429)
      }
    }
  }, async (request, reply) => {
    const { id, index } = request.params
    const { exp, sig } = request.query
    let tenant = request.tenant
    if (sig !== undefined) {
      const verdict = exp === undefined ? 'invalid' : fastify.imageUrls.check(id, index, exp, sig)
      if (verdict !== 'valid') throw new SignatureInvalidError(verdict)
      tenant = SIGNED_URL_READER
    }
    const image = await fastify.tenancy.image(tenant, id, index)
    // A kept image never changes, so its place and size name it; the signature only decides who may read it.
    const etag = `"${id}-${index}-${image.size}"`
    // Shared caches may keep a signed image as long as its URL works; a key's read stays private.
    const cacheControl = sig !== undefined
      ? `public, max-age=${Math.max(0, exp! - Math.floor(Date.now() / 1000))}, immutable`
      : 'private, max-age=86400, immutable'
    reply.header('etag', etag).header('cache-control', cacheControl).header('x-content-type-options', 'nosniff')
    if (request.headers['if-none-match']?.split(/\s*,\s*/).some((tag) => tag === etag || tag === `W/${etag}` || tag === '*')) {
      return reply.code(304).send()
    }
    return reply
      .type(image.contentType)
      .header('content-length', String(image.size))
      .send(image.body)
  })
}

export default images
