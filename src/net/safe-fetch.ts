import { lookup as dnsLookup } from 'node:dns/promises'
import type { LookupAddress } from 'node:dns'
import { isIP } from 'node:net'
import type { LookupFunction } from 'node:net'
import { Agent, buildConnector, request } from 'undici'
import type { Dispatcher } from 'undici'
import { AppError } from '../errors.ts'
import { canonicalAddress } from './address-policy.ts'
import {
  ImageFetchFailedError,
  ImageFetchTimeoutError,
  ImageTooLargeError,
  ImageTypeMismatchError,
  UnsupportedMediaTypeError,
  UrlNotAllowedError
} from './errors.ts'
import { imageTypeList, normaliseMediaType, sniffImageType } from './image-type.ts'
import { isAddressPermitted, urlPolicyViolation } from './url-policy.ts'
import type { UrlPolicy } from './url-policy.ts'

/**
 * Fetches images from URLs the gateway does not control without becoming an SSRF proxy. Every
 * hop is checked before it is requested (scheme, host allow-list, IP literals), and every
 * connection is checked on the address it actually connects to, inside the socket's DNS lookup,
 * so a name that resolves to a private address (or re-resolves to one: DNS rebinding) is refused
 * before a connection is opened.
 */

export type ResolveHost = (hostname: string) => Promise<LookupAddress[]>

export interface SafeFetcherOptions {
  /** Default `['https:']`. */
  allowedSchemes?: readonly string[]
  /** Host allow-list, checked on every hop; see `createHostAllowList`. */
  allowedHosts?: (host: string) => boolean
  /** Largest body accepted; the download is aborted as soon as it is passed. Default 20 MiB. */
  maxBytes?: number
  /** Accepted types, checked against the Content-Type header and the magic bytes. Default PNG, JPEG, WebP, GIF. */
  allowedContentTypes?: readonly string[]
  /** Deadline for the whole fetch, redirects and body included. Default 30 s. */
  timeoutMs?: number
  /** Default 3. */
  maxRedirects?: number
  /** Name resolution; tests resolve made-up names with it. Default: the system resolver. */
  lookup?: ResolveHost
  /** Exact IP addresses exempted from the address policy (a test server on 127.0.0.1). */
  allowAddresses?: readonly string[]
}

export interface FetchedImage {
  bytes: Buffer
  /** The type found in the magic bytes (equal to the declared one). */
  contentType: string
  /** The URL of the last hop, after redirects. */
  finalUrl: string
}

export interface SafeFetcher {
  fetch (url: string, opts?: { signal?: AbortSignal }): Promise<FetchedImage>
  close (): Promise<void>
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
const FORBIDDEN_ADDRESS_MESSAGE = 'The URL points to a forbidden address.'

const systemLookup: ResolveHost = (hostname) => dnsLookup(hostname, { all: true, order: 'verbatim' })

/** A net/tls `lookup` that resolves with `resolve` and refuses the connection if any address is forbidden. */
function guardedLookup (resolve: ResolveHost, allowAddresses: ReadonlySet<string>, allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname).then((found) => {
      // One forbidden address taints the name: which one the socket picks is not ours to decide.
      if (found.some((entry) => !isAddressPermitted(entry.address, allowAddresses, allowPrivate))) {
        callback(new UrlNotAllowedError(FORBIDDEN_ADDRESS_MESSAGE), '')
        return
      }
      const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family
      const usable = family === 4 || family === 6 ? found.filter((entry) => entry.family === family) : found
      const first = usable[0]
      if (first === undefined) {
        callback(Object.assign(new Error(`No usable address for ${hostname}`), { code: 'ENOTFOUND' }), '')
        return
      }
      if (options.all === true) callback(null, usable)
      else callback(null, first.address, first.family)
    }, (err: unknown) => {
      callback(err instanceof Error ? err : new Error(String(err)), '')
    })
  }
}

function guardedConnector (resolve: ResolveHost, allowAddresses: ReadonlySet<string>, allowPrivate = false): buildConnector.connector {
  const connect = buildConnector({ lookup: guardedLookup(resolve, allowAddresses, allowPrivate) })
  return (options, callback) => {
    // Sockets skip `lookup` for IP literals, so those are checked here.
    if (isIP(options.hostname) !== 0 && !isAddressPermitted(options.hostname, allowAddresses, allowPrivate)) {
      callback(new UrlNotAllowedError(FORBIDDEN_ADDRESS_MESSAGE), null)
      return
    }
    connect(options, (err, socket) => {
      if (err !== null) {
        callback(err, null)
        return
      }
      const remote = socket.remoteAddress
      if (remote !== undefined && !isAddressPermitted(remote, allowAddresses, allowPrivate)) {
        socket.destroy()
        callback(new UrlNotAllowedError(FORBIDDEN_ADDRESS_MESSAGE), null)
        return
      }
      callback(null, socket)
    })
  }
}

/** The AppError an error is or was caused by (undici may wrap what the connector raised). */
function appErrorIn (err: unknown): AppError | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof AppError) return current
    current = current.cause
  }
  return undefined
}

function headerValue (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** Drops a response body without reading it; undici reports the abort as an error nobody needs. */
function discard (body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {})
  body.destroy()
}

function parseUrl (value: string, base?: URL): URL {
  try {
    return new URL(value, base)
  } catch {
    throw new UrlNotAllowedError('The URL is not a valid absolute URL.')
  }
}

export function createSafeFetcher (opts: SafeFetcherOptions = {}): SafeFetcher {
  const maxBytes = opts.maxBytes ?? 20 * 1024 * 1024
  const timeoutMs = opts.timeoutMs ?? 30_000
  const maxRedirects = opts.maxRedirects ?? 3
  const allowedTypes = imageTypeList(opts.allowedContentTypes)
  const allowAddresses = new Set<string>()
  for (const address of opts.allowAddresses ?? []) {
    const canonical = canonicalAddress(address)
    if (canonical === undefined) throw new TypeError(`allowAddresses: "${address}" is not an IP address`)
    allowAddresses.add(canonical)
  }
  const policy: UrlPolicy = {
    allowedSchemes: opts.allowedSchemes ?? ['https:'],
    allowedHosts: opts.allowedHosts,
    allowAddresses
  }
  const agent = new Agent({ connect: guardedConnector(opts.lookup ?? systemLookup, allowAddresses) })
  const headers = { accept: allowedTypes.join(', '), 'user-agent': 'flux-gateway' }

  async function readImage (response: Dispatcher.ResponseData): Promise<{ bytes: Buffer, contentType: string }> {
    const declared = normaliseMediaType(headerValue(response.headers['content-type']))
    if (declared === undefined || !(allowedTypes as string[]).includes(declared)) {
      discard(response.body)
      throw new UnsupportedMediaTypeError(allowedTypes)
    }
    const length = Number(headerValue(response.headers['content-length']))
    if (Number.isFinite(length) && length > maxBytes) {
      discard(response.body)
      throw new ImageTooLargeError(maxBytes)
    }
    const chunks: Buffer[] = []
    let total = 0
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer
      total += buffer.length
      // Leaving the loop destroys the body, which aborts the download mid-stream.
      if (total > maxBytes) throw new ImageTooLargeError(maxBytes)
      chunks.push(buffer)
    }
    const bytes = Buffer.concat(chunks, total)
    const actual = sniffImageType(bytes)
    if (actual !== declared) throw new ImageTypeMismatchError({ declared, actual, source: 'Content-Type', allowedTypes })
    return { bytes, contentType: declared }
  }

  async function follow (start: URL, signal: AbortSignal): Promise<FetchedImage> {
    let url = start
    for (let redirects = 0; ; redirects++) {
      const violation = urlPolicyViolation(url, policy)
      if (violation !== undefined) throw new UrlNotAllowedError(redirects === 0 ? violation : `A redirect was refused: ${violation}`)
      const response = await request(url, { dispatcher: agent, method: 'GET', headers, signal })
      if (REDIRECT_STATUSES.has(response.statusCode)) {
        await response.body.dump({ limit: 64 * 1024, signal })
        if (redirects >= maxRedirects) throw new ImageFetchFailedError('redirect', `More than ${maxRedirects} redirects.`)
        const location = headerValue(response.headers.location)
        if (location === undefined) throw new ImageFetchFailedError('redirect', 'A redirect has no Location header.')
        url = parseUrl(location, url)
        continue
      }
      if (response.statusCode < 200 || response.statusCode >= 300) {
        await response.body.dump({ limit: 64 * 1024, signal })
        throw new ImageFetchFailedError('status', `The image source answered ${response.statusCode}.`, { upstreamStatus: response.statusCode })
      }
      return { ...await readImage(response), finalUrl: url.href }
    }
  }

  return {
    async fetch (url, { signal } = {}) {
      signal?.throwIfAborted()
      const start = parseUrl(url)
      const deadline = AbortSignal.timeout(timeoutMs)
      const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
      try {
        return await follow(start, combined)
      } catch (err) {
        if (signal?.aborted === true) throw signal.reason
        const coded = appErrorIn(err)
        if (coded !== undefined) throw coded
        if (deadline.aborted) throw new ImageFetchTimeoutError(timeoutMs)
        throw new ImageFetchFailedError('network', 'The image source could not be reached.', {}, { cause: err })
      }
    },
    close () {
      return agent.close()
    }
  }
}

export interface SafePosterOptions {
  /** Default `['https:']`. */
  allowedSchemes?: readonly string[]
  lookup?: ResolveHost
  /** Exact IP addresses exempted from the address policy (a test receiver on 127.0.0.1). */
  allowAddresses?: readonly string[]
  /**
   * Development only (WEBHOOK_ALLOW_INSECURE): private and loopback addresses and local names are allowed too; cloud
   * metadata addresses never are.
   */
  allowPrivate?: boolean
  /** Deadline for each POST. Default 10 s. */
  timeoutMs?: number
}

export interface SafePoster {
  /** Why the URL may not be posted to (no DNS involved), or undefined. */
  violation (url: string): string | undefined
  /**
   * POSTs JSON (a string is sent as it is, for bodies that are signed) without following redirects; resolves with the
   * status. A forbidden address is refused at connect time.
   */
  post (url: string, body: unknown, headers?: Record<string, string>): Promise<number>
  close (): Promise<void>
}

/**
 * JSON POSTs to URLs a caller chose (reply webhooks) under the same address policy as image fetching, checked on the
 * URL and again on the address each connection actually reaches.
 */
export function createSafePoster (opts: SafePosterOptions = {}): SafePoster {
  const allowAddresses = new Set<string>()
  for (const address of opts.allowAddresses ?? []) {
    const canonical = canonicalAddress(address)
    if (canonical === undefined) throw new TypeError(`allowAddresses: "${address}" is not an IP address`)
    allowAddresses.add(canonical)
  }
  const allowPrivate = opts.allowPrivate === true
  const policy: UrlPolicy = { allowedSchemes: opts.allowedSchemes ?? ['https:'], allowAddresses, allowPrivate }
  const timeoutMs = opts.timeoutMs ?? 10_000
  const agent = new Agent({ connect: guardedConnector(opts.lookup ?? systemLookup, allowAddresses, allowPrivate) })

  function violation (url: string): string | undefined {
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch {
      return 'The URL is not a valid absolute URL.'
    }
    return urlPolicyViolation(parsed, policy)
  }

  return {
    violation,
    async post (url, body, headers = {}) {
      const why = violation(url)
      if (why !== undefined) throw new UrlNotAllowedError(why)
      try {
        const res = await request(url, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/json', 'user-agent': 'flux-gateway', ...headers },
          body: typeof body === 'string' ? body : JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs)
        })
        await res.body.dump()
        return res.statusCode
      } catch (err) {
        throw appErrorIn(err) ?? err
      }
    },
    async close () {
      await agent.close()
    }
  }
}

