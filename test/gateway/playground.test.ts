import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { playgroundCsp } from '../../plugins/app/playground.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

const PUBLIC = path.join(import.meta.dirname, '..', '..', 'public')
const served = (readdirSync(PUBLIC, { recursive: true, withFileTypes: true }))
  .filter((d) => d.isFile() && !d.name.endsWith('.md'))
  .map((d) => `/${path.relative(PUBLIC, path.join(d.parentPath, d.name)).split(path.sep).join('/')}`)

async function get (url: string) {
  const res = await request(url)
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() }
}

describe('the playground, served', () => {
  let gw: TestGateway
  beforeAll(async () => { gw = await startGateway() })
  afterAll(async () => { await gw.close() })

  it('serves the page at / with a CSP that lets nothing inline run', async () => {
    const res = await get(`${gw.url}/`)
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/html/)
    const csp = String(res.headers['content-security-policy'])
    expect(csp).toBe(playgroundCsp(undefined))
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("style-src 'self'")
    expect(csp).toContain("connect-src 'self'")
    expect(csp).toContain("default-src 'none'")
    expect(csp).not.toMatch(/unsafe-|\*/)
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    expect(res.headers['referrer-policy']).toBe('no-referrer')
    expect(res.headers.etag).toBeDefined()
  })

  it('has no inline script, style or event handler in its HTML, which the CSP would block', () => {
    const html = readFileSync(path.join(PUBLIC, 'index.html'), 'utf8')
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="/js/main.js">'])
    expect(html).not.toMatch(/<style\b/)
    expect(html).not.toMatch(/\sstyle=/)
    expect(html).not.toMatch(/\son[a-z]+=/)
    expect(html).not.toMatch(/javascript:/)
  })

  it('serves every file of public/ with the same headers, and nothing else', async () => {
    expect(served).toEqual(expect.arrayContaining(['/index.html', '/playground.css', '/js/main.js', '/icon.svg']))
    for (const file of served) {
      const res = await get(`${gw.url}${file}`)
      expect(res.status, file).toBe(200)
      expect(res.headers['content-security-policy'], file).toBe(playgroundCsp(undefined))
    }
    expect((await get(`${gw.url}/js/main.js`)).headers['content-type']).toMatch(/^(text|application)\/javascript/)
    // Its README is for people reading the repository; unknown paths stay the API's problem+json 404.
    for (const missing of ['/README.md', '/js/nope.js', '/../package.json', '/nope']) {
      const res = await get(`${gw.url}${missing}`)
      expect(res.status, missing).toBe(404)
      expect(res.headers['content-type'], missing).toMatch(/^application\/problem\+json/)
    }
  })

  it('ships in the Docker image, which copies only the folders it names', () => {
    const dockerfile = readFileSync(path.join(PUBLIC, '..', 'Dockerfile'), 'utf8')
    expect(dockerfile).toMatch(/^COPY (--chown=\S+ )?public \.\/public$/m)
  })

  it('allows images from PUBLIC_BASE_URL when a proxy fronts the service', () => {
    expect(playgroundCsp('https://images.example.com/base')).toContain("img-src 'self' data: blob: https://replicate.delivery https://images.example.com;")
  })
})

describe('PLAYGROUND=off', () => {
  let gw: TestGateway
  beforeAll(async () => { gw = await startGateway({ env: { PLAYGROUND: 'off' } }) })
  afterAll(async () => { await gw.close() })

  it('serves no page and none of its files, and the API stays', async () => {
    for (const file of ['/', ...served]) {
      const res = await get(`${gw.url}${file}`)
      expect(res.status, file).toBe(404)
      expect(res.headers['content-type'], file).toMatch(/^application\/problem\+json/)
    }
    expect((await gw.call('GET', '/v1/models')).status).toBe(200)
    expect((await get(`${gw.url}/docs/`)).status).toBe(200)
  })
})
