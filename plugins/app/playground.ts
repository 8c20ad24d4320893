import { readdirSync } from 'node:fs'
import path from 'node:path'
import Fastify from 'fastify'
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { AppOptions } from '../../src/app.ts'
import { lazyMount } from '../../src/lazy-mount.ts'

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

/** The URL of every file the playground serves, and `/` for its index. */
function playgroundUrls (): string[] {
  const files = readdirSync(PUBLIC_DIR, { recursive: true, withFileTypes: true })
    .filter((f) => f.isFile() && !f.name.endsWith('.md'))
    .map((f) => `/${path.relative(PUBLIC_DIR, path.join(f.parentPath, f.name)).split(path.sep).join('/')}`)
  return ['/', ...files.sort()]
}

/**
 * The playground at `/`: plain HTML, CSS and ES modules from public/, no build step. A route per file (and `/`),
 * so any other path still gets the API's problem+json 404; @fastify/static serves them from an app made on the
 * first request (src/lazy-mount.ts). PLAYGROUND=off serves nothing.
 */
export default fp(async function playground (fastify: FastifyInstance, opts: AppOptions) {
  if (opts.config.PLAYGROUND === 'off') return
  const csp = playgroundCsp(opts.config.PUBLIC_BASE_URL)
  lazyMount(fastify, { urls: playgroundUrls(), build: () => staticApp(csp) })
}, { name: 'playground', dependencies: ['http'] })

async function staticApp (csp: string): Promise<FastifyInstance> {
  const { default: fastifyStatic } = await import('@fastify/static')
  const app = Fastify({ logger: false })
  await app.register(fastifyStatic, {
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
  return app
}
