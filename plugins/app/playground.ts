import path from 'node:path'
import fastifyStatic from '@fastify/static'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'

const PUBLIC_DIR = path.join(import.meta.dirname, '..', '..', 'public')

/**
 * The policy every playground file is served with. Nothing inline may run or style the page: scripts and
 * styles come from this origin only, the API is called on this origin only, and images are the kept ones (on this
 * origin, or PUBLIC_BASE_URL's when a proxy fronts it) or Replicate's own before they are kept.
 */
export function playgroundCsp (publicBaseUrl: string | undefined): string {
  const images = ["'self'", 'data:', 'blob:', 'https://replicate.delivery']
  if (publicBaseUrl !== undefined) images.push(new URL(publicBaseUrl).origin)
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    `img-src ${images.join(' ')}`,
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'"
  ].join('; ')
}

/**
 * The playground at `/`: plain HTML, CSS and ES modules from public/, no build step. Routes are made per file at
 * start (`wildcard: false`), so any other path still gets the API's problem+json 404. PLAYGROUND=off serves nothing.
 */
export default fp(async function playground (fastify: FastifyInstance, opts: AppOptions) {
  if (opts.config.PLAYGROUND === 'off') return
  const csp = playgroundCsp(opts.config.PUBLIC_BASE_URL)
  await fastify.register(fastifyStatic, {
    root: PUBLIC_DIR,
    prefix: '/',
    wildcard: false,
    globIgnore: ['**/*.md'],
    index: 'index.html',
    decorateReply: false,
    // Small files that change with each release: always revalidated, by ETag.
    cacheControl: true,
    maxAge: 0,
    setHeaders (reply) {
      reply.headers({ 'content-security-policy': csp, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer' })
    }
  })
}, { name: 'playground', dependencies: ['http'] })
