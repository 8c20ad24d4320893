import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Agent, request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import { spawnGateway } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { signedImageUrl } from '../tenancy/helpers.ts'

let child: ChildProcess | undefined

afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL')
})

/** `npm start`'s entry as a real process: no token, so it runs on its in-process emulator. */
function startServer (env: Record<string, string>): Promise<{ url: string, logs: string[], exited: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--experimental-strip-types', 'src/server.ts'], {
      env: { ...process.env, NODE_ENV: 'test', PORT: '0', HOST: '127.0.0.1', REPLICATE_API_TOKEN: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    child = proc
    const logs: string[] = []
    const exited = new Promise<number | null>((done) => proc.on('exit', (code) => done(code)))
    proc.stdout.on('data', (chunk) => {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        logs.push(line)
        const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
        if (match) resolve({ url: match[1]!, logs, exited })
      }
    })
    proc.on('exit', (code) => reject(new Error(`server exited early with ${code}: ${logs.join('\n')}`)))
    setTimeout(() => reject(new Error('server did not start')), 15_000).unref()
  })
}

describe('graceful shutdown', () => {
  it('on SIGTERM: readiness turns 503, the in-flight request finishes, new connections are refused, exit 0', async () => {
    const server = await startServer({ EMULATOR_TIME_SCALE: '0.3', SHUTDOWN_DRAIN_DELAY_MS: '600', SHUTDOWN_GRACE_MS: '10000' })
    expect(server.logs.some((l) => l.includes('using the local Replicate emulator'))).toBe(true)
    // Separate connections, as a load balancer's probe and a client would have.
    const clientAgent = new Agent()
    const probeAgent = new Agent({ pipelining: 0 })
    // flux-1.1-pro: ~6 s at time scale 0.3 is about 1.8 s, so it is in flight when the signal comes.
    const inFlight = request(`${server.url}/v1/text-to-image`, {
      method: 'POST',
      dispatcher: clientAgent,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'finish me before you go', model: 'flux-1.1-pro' })
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    child!.kill('SIGTERM')
    await new Promise((resolve) => setTimeout(resolve, 150))
    const ready = await request(`${server.url}/health/ready`, { dispatcher: probeAgent })
    expect(ready.statusCode).toBe(503)
    expect(await ready.body.json()).toMatchObject({ status: 'unavailable', checks: { draining: { status: 'fail' } } })

    const res = await inFlight
    expect(res.statusCode).toBe(200)
    const body = await res.body.json() as { status: string, output: string[] }
    expect(body.status).toBe('succeeded')
    expect(body.output).toHaveLength(1)

    expect(await server.exited).toBe(0)
    await expect(request(`${server.url}/health/live`, { dispatcher: new Agent() })).rejects.toThrow(/ECONNREFUSED/)
    expect(server.logs.some((l) => l.includes('draining: readiness now 503'))).toBe(true)
    await clientAgent.close()
    await probeAgent.close()
  })

  it('on SIGTERM during a sync create on the in-process emulator: the images are kept and the ledger settled before anything closes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fgw-shutdown-'))
    const gateways: GatewayProcess[] = []
    try {
      const env = {
        EMULATOR_TIME_SCALE: '0.3',
        SHUTDOWN_GRACE_MS: '15000',
        STATE_SQLITE_PATH: path.join(dir, 'state.sqlite'),
        IMAGE_STORAGE_DIR: path.join(dir, 'images')
      }
      const first = await spawnGateway(env)
      gateways.push(first)
      const exitCode = new Promise<number | null>((resolve) => first.child.once('exit', (code) => resolve(code)))
      // flux-1.1-pro at time scale 0.3 takes about 1.8 s: in flight when the signal comes.
      const inFlight = request(`${first.url}/v1/text-to-image`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'keep my image through the restart', model: 'flux-1.1-pro' })
      })
      await new Promise((resolve) => setTimeout(resolve, 300))
      first.child.kill('SIGTERM')
      const res = await inFlight
      const body = await res.body.json() as { id: string, status: string, output: string[], completed_at: string | null }
      expect(res.statusCode).toBe(200)
      expect(body.status).toBe('succeeded')
      // The gateway's own URL: the copy was made while the emulator and the fetcher were still there.
      expect(body.output).toEqual([signedImageUrl(first.url, body.id, 0)])
      expect(await exitCode).toBe(0)
      expect(first.logs.filter((l) => l.includes('could not download an output image') || l.includes('could not be kept'))).toEqual([])

      const store = createSqliteStore({ path: env.STATE_SQLITE_PATH })
      try {
        const entry = await store.getPrediction(body.id)
        expect(entry).toMatchObject({ finalized: true, kept: [{ key: `${body.id}/0.webp`, contentType: 'image/webp' }] })
        expect(await store.getLedgerEntry(entry!.ledgerId)).toMatchObject({ state: 'settled', credits: entry!.creditsPerImage, images: 1 })
      } finally {
        await store.close()
      }

      // A new process, with a new emulator: what the caller was given still works.
      const second = await spawnGateway(env)
      gateways.push(second)
      const read = await request(`${second.url}/v1/predictions/${body.id}`)
      const again = await read.body.json() as { status: string, output: string[] }
      expect(again).toMatchObject({ status: 'succeeded', output: [signedImageUrl(second.url, body.id, 0)] })
      const image = await request(again.output[0]!)
      expect(image.statusCode).toBe(200)
      expect(image.headers['content-type']).toBe('image/webp')
      expect((await image.body.arrayBuffer()).byteLength).toBeGreaterThan(0)
    } finally {
      for (const g of gateways) await g.kill9()
      rmSync(dir, { recursive: true, force: true })
    }
  }, 40_000)
})
