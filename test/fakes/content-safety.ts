import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import sharp from 'sharp'
import type { FastifyReply } from 'fastify'
import type { AddressInfo } from 'node:net'

/**
 * A fake Azure AI Content Safety resource speaking the exchanges Azure documents for it:
 * `POST /contentsafety/text:analyze` and `/contentsafety/image:analyze` with the 2023-10-01 bodies, key auth
 * (`Ocp-Apim-Subscription-Key`) or a bearer token, blocklists, and the service's error bodies (400
 * InvalidRequestBody, 401 for a wrong key, 5xx). Severities come from rules the test sets: a word found in the text
 * scores the given severities (0–7, trimmed to 0/2/4/6 for FourSeverityLevels, as the service does).
 */

export const CONTENT_SAFETY_HOST = 'flux-test.cognitiveservices.azure.com'
export const CONTENT_SAFETY_ENDPOINT = `https://${CONTENT_SAFETY_HOST}`

export const CS_CATEGORIES = ['Hate', 'SelfHarm', 'Sexual', 'Violence'] as const
export type CsCategory = typeof CS_CATEGORIES[number]
export type Severities = Partial<Record<CsCategory, number>>

export type CsFault =
  | { kind: 'status', status: number, body?: unknown, headers?: Record<string, string> }
  | { kind: 'reset' }
  | { kind: 'hang' }

export interface CsRequest {
  path: string
  apiVersion: string | undefined
  key: string | undefined
  bearer: string | undefined
  body: Record<string, unknown>
}

export interface FakeContentSafety {
  readonly port: number
  readonly requests: CsRequest[]
  readonly keys: Set<string>
  readonly tokens: Set<string>
  /** Words that score severities when the text contains them (case-insensitive). */
  readonly textRules: Map<string, Severities>
  /** Blocklist name → item texts. */
  readonly blocklists: Map<string, string[]>
  /** Severities for an image, from its decoded size and mean colour. Default: all 0. */
  imageRule: (image: { width: number, height: number, red: number, green: number, blue: number }) => Severities
  fault: CsFault | undefined
  textCalls: () => number
  imageCalls: () => number
  /** Back to a blank service between tests: no fault, no recorded requests, no rules, no blocklists. */
  reset: () => void
  close: () => Promise<void>
}

const ACCESS_DENIED = {
  error: {
    code: '401',
    message: 'Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource.'
  }
}

function invalidBody (reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: { code: 'InvalidRequestBody', message, details: [], innererror: { code: 'InvalidRequestBody' } } })
}

function trim (severity: number, outputType: unknown): number {
  const s = Math.max(0, Math.min(7, Math.floor(severity)))
  return outputType === 'EightSeverityLevels' ? s : s - (s % 2)
}

export async function startFakeContentSafety (opts: { keys?: string[], tokens?: string[] } = {}): Promise<FakeContentSafety> {
  const requests: CsRequest[] = []
  const keys = new Set(opts.keys ?? ['cs-test-key'])
  const tokens = new Set(opts.tokens ?? ['entra-test-token'])
  const textRules = new Map<string, Severities>()
  const blocklists = new Map<string, string[]>()
  let textCalls = 0
  let imageCalls = 0
  const state = {
    fault: undefined as CsFault | undefined,
    imageRule: ((): Severities => ({})) as FakeContentSafety['imageRule']
  }
  const app = Fastify({ logger: false, forceCloseConnections: true, bodyLimit: 16 * 1024 * 1024 })

  /** Records the call and answers auth failures and injected faults; undefined means "go on". */
  function gate (path: string, req: { headers: Record<string, string | string[] | undefined>, query: unknown, body: unknown, raw: { socket: { destroy: () => void } } }, reply: FastifyReply): Promise<unknown> | FastifyReply | undefined {
    const key = req.headers['ocp-apim-subscription-key']
    const auth = req.headers.authorization
    const bearer = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : undefined
    requests.push({
      path,
      apiVersion: (req.query as Record<string, string | undefined>)['api-version'],
      key: typeof key === 'string' ? key : undefined,
      bearer,
      body: (req.body ?? {}) as Record<string, unknown>
    })
    const fault = state.fault
    if (fault?.kind === 'hang') return new Promise<never>(() => {})
    if (fault?.kind === 'reset') {
      req.raw.socket.destroy()
      return reply
    }
    if (fault?.kind === 'status') {
      return reply.code(fault.status).headers(fault.headers ?? {})
        .send(fault.body ?? { error: { code: 'InternalServerError', message: 'fake-content-safety-outage-detail' } })
    }
    const authorised = (typeof key === 'string' && keys.has(key)) || (bearer !== undefined && tokens.has(bearer))
    if (!authorised) return reply.code(401).send(ACCESS_DENIED)
    return undefined
  }

  function requestedCategories (body: Record<string, unknown>): CsCategory[] {
    return Array.isArray(body.categories) ? CS_CATEGORIES.filter((c) => (body.categories as unknown[]).includes(c)) : [...CS_CATEGORIES]
  }

  app.post('/contentsafety/text::analyze', async (req, reply) => {
    const stop = gate('/contentsafety/text:analyze', req, reply)
    if (stop) return stop
    textCalls++
    const body = (req.body ?? {}) as Record<string, unknown>
    if (typeof body.text !== 'string') return invalidBody(reply, 'The text field is required.')
    if ([...body.text].length > 10_000) return invalidBody(reply, 'Text length exceeds the limit of 10000 characters.')
    const names = Array.isArray(body.blocklistNames) ? body.blocklistNames.map(String) : []
    for (const name of names) {
      if (!blocklists.has(name)) return invalidBody(reply, `Blocklist ${name} does not exist.`)
    }
    const lower = body.text.toLowerCase()
    const blocklistsMatch = names.flatMap((name) => (blocklists.get(name) ?? [])
      .filter((item) => lower.includes(item.toLowerCase()))
      .map((item) => ({ blocklistName: name, blocklistItemId: randomUUID(), blocklistItemText: item })))
    if (body.haltOnBlocklistHit === true && blocklistsMatch.length > 0) return { blocklistsMatch, categoriesAnalysis: [] }
    const scores: Record<string, number> = {}
    for (const [word, severities] of textRules) {
      if (!lower.includes(word.toLowerCase())) continue
      for (const [category, severity] of Object.entries(severities)) scores[category] = Math.max(scores[category] ?? 0, severity)
    }
    return {
      blocklistsMatch,
      categoriesAnalysis: requestedCategories(body).map((category) => ({ category, severity: trim(scores[category] ?? 0, body.outputType) }))
    }
  })

  app.post('/contentsafety/image::analyze', async (req, reply) => {
    const stop = gate('/contentsafety/image:analyze', req, reply)
    if (stop) return stop
    imageCalls++
    const body = (req.body ?? {}) as Record<string, unknown>
    const image = (body.image ?? {}) as { content?: unknown, blobUrl?: unknown }
    if ((image.content === undefined) === (image.blobUrl === undefined)) return invalidBody(reply, 'Either content or blobUrl must be provided, not both.')
    if (typeof image.content !== 'string') return invalidBody(reply, 'Only base64 content is supported by this fake.')
    const bytes = Buffer.from(image.content, 'base64')
    if (bytes.length > 4 * 1024 * 1024) return invalidBody(reply, 'The image size exceeds the limit of 4 MB.')
    let stats
    try {
      const decoded = sharp(bytes)
      const meta = await decoded.metadata()
      stats = { width: meta.width ?? 0, height: meta.height ?? 0, channels: (await decoded.stats()).channels }
    } catch {
      return invalidBody(reply, 'The image is not in a supported format.')
    }
    if (stats.width < 50 || stats.height < 50 || stats.width > 2048 || stats.height > 2048) {
      return invalidBody(reply, 'The image dimensions must be between 50 x 50 and 2048 x 2048 pixels.')
    }
    const [r, g, b] = stats.channels
    const severities = state.imageRule({ width: stats.width, height: stats.height, red: r?.mean ?? 0, green: g?.mean ?? 0, blue: b?.mean ?? 0 })
    return { categoriesAnalysis: requestedCategories(body).map((category) => ({ category, severity: trim(severities[category] ?? 0, 'FourSeverityLevels') })) }
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return {
    port,
    requests,
    keys,
    tokens,
    textRules,
    blocklists,
    get imageRule () { return state.imageRule },
    set imageRule (rule) { state.imageRule = rule },
    get fault () { return state.fault },
    set fault (value: CsFault | undefined) { state.fault = value },
    textCalls: () => textCalls,
    imageCalls: () => imageCalls,
    reset () {
      state.fault = undefined
      state.imageRule = () => ({})
      requests.length = 0
      textRules.clear()
      blocklists.clear()
    },
    close: () => app.close()
  }
}
