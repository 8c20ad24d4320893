import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import { request } from 'undici'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import type { AppOverrides } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'

export interface TestGateway {
  app: FastifyInstance
  url: string
  emulator: Emulator
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[]
  /** The raw log text, for "this string never appears" checks. */
  logText: () => string
  /** One HTTP exchange with the gateway; a body is sent as JSON and a JSON answer is parsed. */
  call: (method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string>) => Promise<Answer>
  /** Replicate's (here the emulator's) id for one of our predictions, once its create has answered. */
  upstreamId: (id: string, timeoutMs?: number) => Promise<string>
  close: () => Promise<void>
}

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Record<string, unknown> & { [k: string]: any } // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * The gateway on an ephemeral port, talking over HTTP to an emulator of its own on another port
 * (time scale 0.02 unless the options say otherwise, so generations take milliseconds).
 */
export async function startGateway (o: {
  env?: Record<string, string>
  emulator?: EmulatorOptions
  overrides?: AppOverrides
  /** Listen on a free port chosen first and set PUBLIC_BASE_URL to it (webhooks need the URL in config). */
  selfBaseUrl?: boolean
} = {}): Promise<TestGateway> {
  const port = o.selfBaseUrl ? await freePort() : 0
  const emulator = await startEmulator({ timeScale: 0.02, ...o.emulator })
  // Each gateway keeps its state and images apart, unless the test names a shared place.
  const dataDir = mkdtempSync(path.join(tmpdir(), 'fgw-gateway-'))
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PORT: '0',
    REPLICATE_API_TOKEN: emulator.token,
    REPLICATE_BASE_URL: emulator.baseUrl,
    READINESS_CACHE_MS: '0',
    STATE_SQLITE_PATH: ':memory:',
    IMAGE_STORAGE_DIR: path.join(dataDir, 'images'),
    ...(o.selfBaseUrl ? { PUBLIC_BASE_URL: `http://127.0.0.1:${port}` } : {}),
    ...o.env
  })
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      cb()
    }
  })
  const app = await buildApp({ config, overrides: o.overrides ?? {} }, stream)
  await app.listen({ host: '127.0.0.1', port })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no address')
  running.set(`http://127.0.0.1:${address.port}`, app)
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    emulator,
    get logs () { return lines.map((l) => JSON.parse(l) as Record<string, unknown>) },
    logText: () => lines.join('\n'),
    async call (method, path, body, headers = {}) {
      const res = await request(`http://127.0.0.1:${address.port}${path}`, {
        method,
        headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
        body: body === undefined ? undefined : JSON.stringify(body)
      })
      const text = await res.body.text()
      const answer = { status: res.statusCode, headers: res.headers, body: text ? JSON.parse(text) : undefined }
      // An accepted create (202) is sent upstream after the answer: wait until Replicate has answered it, so a test
      // reads what reached upstream as it did when the create went out before the answer.
      if (method === 'POST' && res.statusCode === 202 && /\/(text|image)-to-image$/.test(path)) await createAnswered(app, answer.body.id as string)
      return answer
    },
    async upstreamId (id, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs
      for (;;) {
        const upstream = (await app.state.getPrediction(id))?.upstreamId
        if (upstream) return upstream
        if (Date.now() > until) throw new Error(`prediction ${id} has no upstream id after ${timeoutMs} ms`)
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    },
    async close () {
      running.delete(`http://127.0.0.1:${address.port}`)
      await app.close()
      await emulator.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/** Running test gateways by URL, so helpers given only a URL can look into the gateway's store. */
const running = new Map<string, FastifyInstance>()

/**
 * After an accepted create (202): waits until the gateway has Replicate's answer to it, since it is sent upstream
 * after the 202. Tests that count what reached upstream read it as before. A URL that is no test gateway: nothing.
 */
export async function createAnsweredAt (url: string, id: string): Promise<void> {
  const app = running.get(url)
  if (app) await createAnswered(app, id)
}

async function createAnswered (app: FastifyInstance, id: string, timeoutMs = 5_000): Promise<void> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const entry = await app.state.getPrediction(id)
    if (!entry || !entry.create || entry.finalized || Date.now() > until) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
