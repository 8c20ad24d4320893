import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { parse } from 'yaml'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'

/** Response bodies are arbitrary JSON that tests navigate freely. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any

/** Fast defaults: 1/100 time, short queueing. */
export function startFastEmulator (opts: EmulatorOptions = {}): Promise<Emulator> {
  return startEmulator({ timeScale: 0.01, startingMs: [100, 200], ...opts })
}

export interface ApiResponse<T = Json> {
  status: number
  headers: Headers
  body: T
}

/** A call to the emulator's API with the default token unless `token` is given (null: no header). */
export async function api (emu: Emulator, method: string, path: string, opts: { body?: unknown, headers?: Record<string, string>, token?: string | null } = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers }
  if (opts.token !== null) headers.authorization = `Bearer ${opts.token ?? emu.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path.startsWith('http') ? path : `${emu.baseUrl}${path}`, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body)
  })
  const text = await response.text()
  let body: unknown = text
  try {
    body = text === '' ? undefined : JSON.parse(text)
  } catch {
    // not JSON: keep the text
  }
  return { status: response.status, headers: response.headers, body }
}

export function createSchnell (emu: Emulator, input: Record<string, unknown>, extra: { headers?: Record<string, string>, body?: Record<string, unknown> } = {}): Promise<ApiResponse> {
  return api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', {
    body: { input: { megapixels: '0.25', ...input }, ...extra.body },
    headers: extra.headers
  })
}

/** Polls until `check` returns a value (not a timing assertion: the caller's test timeout bounds it). */
export async function eventually<T> (check: () => Promise<T | undefined> | T | undefined, intervalMs = 5): Promise<T> {
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

export async function pollUntilTerminal (emu: Emulator, id: string): Promise<Json> {
  return eventually(async () => {
    const { body } = await api(emu, 'GET', `/predictions/${id}`)
    return ['succeeded', 'failed', 'canceled', 'aborted'].includes(body.status) ? body : undefined
  })
}

// --- Replicate's OpenAPI document, for contract checks ----------------------------------------

const OPENAPI_PATH = new URL('../fixtures/replicate/openapi.yaml', import.meta.url)
const DOC_ID = 'https://api.replicate.com/openapi.yaml'

export function loadOpenApiValidator (): (pointer: string, value: unknown) => string[] {
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as Json
  // The contract's `version` is oneOf [any string, enum ["hidden"]]: "hidden", which official
  // models return, matches both branches and so fails oneOf. Read as the intended anyOf.
  const version = doc.components.schemas.schemas_prediction_response.properties.version
  if (!Array.isArray(version.oneOf)) throw new Error('openapi.yaml changed: prediction version is no longer oneOf')
  version.anyOf = version.oneOf
  delete version.oneOf
  const ajv = new Ajv({ strict: false, allErrors: true, logger: false })
  addFormats.default(ajv)
  // The document's own `$ref`s are `#/components/...`; with the document registered under an id
  // they resolve inside it, whatever pointer we start from.
  ajv.addSchema({ ...doc, $id: DOC_ID })
  const cache = new Map<string, ReturnType<typeof ajv.compile>>()
  return (pointer, value) => {
    let validate = cache.get(pointer)
    if (!validate) {
      validate = ajv.compile({ $ref: `${DOC_ID}${pointer}` })
      cache.set(pointer, validate)
    }
    if (validate(value)) return []
    return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`)
  }
}

/** A JSON pointer segment, escaped. */
export const seg = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1')

// --- A local webhook receiver -----------------------------------------------------------------

export interface ReceivedWebhook {
  path: string
  headers: IncomingHttpHeaders
  rawBody: string
  body: Json
  receivedAt: number
  status: number
}

export interface WebhookReceiver {
  url: string
  received: ReceivedWebhook[]
  /** Status codes for the next deliveries, in order (0: drop the connection); 200 once exhausted. */
  respondWith(statuses: number[]): void
  close(): Promise<void>
}

export async function startWebhookReceiver (path = '/hook'): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = []
  let statuses: number[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8')
      const status = statuses.shift() ?? 200
      received.push({ path: req.url ?? '', headers: req.headers, rawBody, body: JSON.parse(rawBody), receivedAt: Date.now(), status })
      if (status === 0) return void req.socket.destroy()
      if (status >= 300 && status < 400) res.setHeader('location', `${path}-moved`)
      res.writeHead(status).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}${path}`,
    received,
    respondWith (next) {
      statuses = [...next]
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}
