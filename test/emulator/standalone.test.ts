import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EnvError, optionsFromEnv } from '../../src/emulator/env.ts'
import { api, startFastEmulator } from './helpers.ts'

/** The standalone server (`npm run emulator`) and its control API under /_emulator. */

const MAIN = fileURLToPath(new URL('../../src/emulator/main.ts', import.meta.url))

let child: ChildProcess
let origin: string
let output = ''

beforeAll(async () => {
  child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, EMULATOR_PORT: '0', EMULATOR_TIME_SCALE: '0.01', EMULATOR_TOKENS: 'r8_cli_token' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  origin = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      // The control API line is printed last.
      const match = /listening on (http:\/\/[^/\s]+)\/v1/.exec(output)
      if (match && output.includes('Control API:')) resolve(match[1]!)
    })
    child.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString() })
    child.on('exit', (code) => reject(new Error(`emulator exited with ${code}: ${output}`)))
  })
})

afterAll(() => {
  if (child.exitCode === null) child.kill('SIGTERM')
})

const control = (method: string, path: string, body?: unknown): Promise<Response> => fetch(`${origin}/_emulator${path}`, {
  method,
  ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
})
const v1 = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${origin}/v1${path}`, {
  ...init,
  headers: { authorization: 'Bearer r8_cli_token', ...init.headers }
})

describe('standalone emulator', () => {
  it('prints its base URL and token', () => {
    expect(output).toContain(`REPLICATE_BASE_URL=${origin}/v1`)
    expect(output).toContain('REPLICATE_API_TOKEN=r8_cli_token')
  })

  it('control API: inject faults by exact path and RegExp, list requests, clear, reset', async () => {
    expect((await control('POST', '/faults', { kind: 'status', status: 503, path: '/v1/account', count: 2 })).status).toBe(201)
    expect((await control('POST', '/faults', { kind: 'status', status: 429, retryAfterSeconds: 3, pathRegExp: '^/v1/predictions/' })).status).toBe(201)
    const pending = await (await control('GET', '/faults')).json() as unknown[]
    expect(pending).toHaveLength(2)

    expect((await v1('/account')).status).toBe(503)
    const throttled = await v1('/predictions/abc')
    expect(throttled.status).toBe(429)
    expect(throttled.headers.get('retry-after')).toBe('3')

    expect((await control('DELETE', '/faults')).status).toBe(204)
    expect((await v1('/account')).status).toBe(200)

    const requests = await (await control('GET', '/requests')).json() as { method: string, path: string }[]
    expect(requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/account', 'GET /v1/predictions/abc', 'GET /v1/account'])

    expect((await control('POST', '/reset')).status).toBe(204)
    expect(await (await control('GET', '/requests')).json()).toEqual([])
  })

  it('runs a prediction end to end', async () => {
    const created = await v1('/models/black-forest-labs/flux-schnell/predictions', {
      method: 'POST',
      headers: { 'content-type': 'application/json', prefer: 'wait' },
      body: JSON.stringify({ input: { prompt: 'standalone', megapixels: '0.25' } })
    })
    const prediction = await created.json() as { output: string[] }
    const image = await fetch(prediction.output[0]!)
    expect(image.headers.get('content-type')).toBe('image/webp')
  })

  it('rejects a malformed fault with 400', async () => {
    const response = await control('POST', '/faults', { kind: 'explode' })
    expect(response.status).toBe(400)
    expect(((await response.json()) as { detail: string }).detail).toMatch(/fault kind must be one of/)
  })

  it('stops cleanly on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })
})

describe('control API switch', () => {
  it('is off unless control is set', async () => {
    const emu = await startFastEmulator()
    try {
      const response = await fetch(`${emu.origin}/_emulator/requests`)
      expect(response.status).toBe(404)
      expect((await api(emu, 'GET', '/account')).status).toBe(200)
    } finally {
      await emu.close()
    }
  })
})

describe('settings from the environment', () => {
  it('defaults, and every variable', () => {
    expect(optionsFromEnv({})).toEqual({ host: '127.0.0.1', port: 8787, control: true })
    expect(optionsFromEnv({
      EMULATOR_PORT: '9000',
      EMULATOR_HOST: '0.0.0.0',
      EMULATOR_TIME_SCALE: '0.5',
      EMULATOR_TOKENS: 'r8_a, r8_b',
      EMULATOR_PUBLIC_URL: 'http://emulator:9000',
      EMULATOR_WEBHOOK_SECRET: 'whsec_abc='
    })).toEqual({
      host: '0.0.0.0',
      port: 9000,
      control: true,
      timeScale: 0.5,
      tokens: ['r8_a', 'r8_b'],
      publicUrl: 'http://emulator:9000',
      webhookSecret: 'whsec_abc='
    })
  })

  it.each([
    [{ EMULATOR_PORT: '70000' }, /EMULATOR_PORT/],
    [{ EMULATOR_TIME_SCALE: '0' }, /EMULATOR_TIME_SCALE/],
    [{ EMULATOR_PUBLIC_URL: 'nope' }, /EMULATOR_PUBLIC_URL/],
    [{ EMULATOR_WEBHOOK_SECRET: 'secret' }, /EMULATOR_WEBHOOK_SECRET/]
  ])('names the bad variable: %o', (env, message) => {
    expect(() => optionsFromEnv(env)).toThrow(EnvError)
    expect(() => optionsFromEnv(env)).toThrow(message)
  })
})
