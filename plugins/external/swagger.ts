import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { lazyMount } from '../../src/lazy-mount.ts'

const COMMITTED = new URL('../../openapi/openapi.json', import.meta.url)

/**
 * The OpenAPI 3.1 document is generated from the route schemas: shared schemas keep their `$id`
 * as component names, so generated clients get stable type names. `npm run openapi` generates it into openapi/,
 * where a test keeps it equal to what the routes say; the running service serves that file, read on the first
 * request, rather than loading the generator (and its YAML library) at every start.
 */
export default fp(async function swaggerPlugin (fastify: FastifyInstance, opts: AppOptions) {
  if (opts.openapi !== 'generate') {
    let document: ReturnType<FastifyInstance['swagger']> | undefined
    fastify.decorate('swagger', (() => (document ??= JSON.parse(readFileSync(COMMITTED, 'utf8')) as ReturnType<FastifyInstance['swagger']>)) as FastifyInstance['swagger'])
  } else {
    await generator(fastify)
  }
  // Swagger UI at /docs, made on its first request (its assets are megabytes a probe never needs), showing the
  // document this app serves (a copy: the docs app keeps the document it is given).
  lazyMount(fastify, { urls: ['/docs', '/docs/*'], build: () => docsApp(structuredClone(fastify.swagger())) })
}, { name: 'swagger' })

async function generator (fastify: FastifyInstance): Promise<void> {
  const { default: swagger } = await import('@fastify/swagger')
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string, description: string }
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'flux-gateway',
        version: pkg.version,
        description: `${pkg.description}.\n\nErrors are \`application/problem+json\` documents with a stable \`code\`. Every response carries \`x-request-id\`.`,
        license: { name: 'MIT', identifier: 'MIT' }
      },
      // Relative: "Try it out" on /docs, and clients reading this document, call the origin it was served from.
      servers: [{ url: '/', description: 'The origin serving this document' }],
      // Probes and this document are public; each /v1 route states its bearer requirement.
      security: [],
      components: {
        securitySchemes: {
          bearerAuth: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key (`fgw_…`) from `npm run keys -- create`: paste it into Authorize on /docs. Not needed when the service runs without keys (development only).'
          }
        }
      },
      tags: [
        { name: 'generation', description: 'Create images' },
        { name: 'predictions', description: 'Follow and cancel predictions' },
        { name: 'catalog', description: 'Models and prices' },
        { name: 'usage', description: 'Credits and budgets' },
        { name: 'openai', description: 'OpenAI-compatible Images API' },
        { name: 'health', description: 'Probes for orchestrators' },
        { name: 'meta', description: 'This document' }
      ]
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`)
    }
  })
}

async function docsApp (document: ReturnType<FastifyInstance['swagger']>): Promise<FastifyInstance> {
  const [{ default: swagger }, { default: swaggerUi }] = await Promise.all([import('@fastify/swagger'), import('@fastify/swagger-ui')])
  const app = Fastify({ logger: false })
  await app.register(swagger, { mode: 'static', specification: { document: document as never } })
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    // The key given to Authorize is kept for the tab's session only, as the playground keeps it.
    uiConfig: { docExpansion: 'list', deepLinking: true, persistAuthorization: false },
    staticCSP: true,
    // Its default CSP upgrades every request to https, which breaks "Try it out" on a plain-http origin
    // (npm start), and keeps `blob:` images (an image response shown by Try it out) out.
    transformStaticCSP: (header) => header
      .replace(/\s*upgrade-insecure-requests;?/, '')
      .replace("img-src 'self' data: validator.swagger.io", "img-src 'self' data: blob:")
      .replace(/;?\s*$/, "; connect-src 'self'; form-action 'self'")
  })
  return app
}
