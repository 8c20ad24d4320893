import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'

describe('with no token outside production', () => {
  it('starts the emulator in-process, says so in the log and in /health, and generates through it', async () => {
    const lines: string[] = []
    const stream = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
    // State and kept images stay out of the working tree's ./data (the defaults of `npm start`).
    const dataDir = mkdtempSync(path.join(tmpdir(), 'fgw-emulated-'))
    const app = await buildApp({ config: loadConfig({ NODE_ENV: 'development', EMULATOR_TIME_SCALE: '0.02', LOG_LEVEL: 'info', STATE_SQLITE_PATH: ':memory:', IMAGE_STORAGE_DIR: dataDir }) }, stream)
    try {
      await app.listen({ host: '127.0.0.1', port: 0 })
      const { port } = app.server.address() as { port: number }
      const warning = lines.map((l) => JSON.parse(l) as { level: number, msg: string, baseUrl?: string }).find((l) => l.msg.includes('local Replicate emulator'))
      expect(warning?.level).toBe(40)
      const health = await (await request(`http://127.0.0.1:${port}/health`)).body.json() as { upstream: { emulated: boolean, base_url: string } }
      expect(health.upstream.emulated).toBe(true)
      expect(health.upstream.base_url).toBe(warning?.baseUrl)
      expect(health.upstream.base_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/)
      const res = await request(`http://127.0.0.1:${port}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'first run, nothing configured' }) })
      expect(res.statusCode).toBe(200)
      const body = await res.body.json() as { status: string, output: string[] }
      expect(body.status).toBe('succeeded')
      const image = await request(body.output[0]!)
      expect(image.headers['content-type']).toBe('image/webp')
      await image.body.arrayBuffer()
    } finally {
      await app.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })

  it('answers service_unavailable to requests that arrive while the server is closing', async () => {
    const app = await buildApp({ config: loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', REPLICATE_API_TOKEN: 'r8_unused', REPLICATE_BASE_URL: 'http://127.0.0.1:9/v1', STATE_SQLITE_PATH: ':memory:' }) })
    await app.ready()
    // What the preClose hook does when close() begins; a request on a kept-alive connection can still arrive then.
    app.lifecycle.beginClosing()
    const res = await app.inject({ method: 'GET', url: '/v1/models' })
    const ready = await app.inject({ method: 'GET', url: '/health/ready' })
    await app.close()
    expect(ready.statusCode).toBe(503)
    expect(res.statusCode).toBe(503)
    expect(res.headers['content-type']).toContain('application/problem+json')
    expect(res.json()).toMatchObject({ code: 'service_unavailable', status: 503 })
    expect(res.headers.connection).toBe('close')
  })
})
