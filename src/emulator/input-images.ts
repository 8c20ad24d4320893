import sharp from 'sharp'
import type { OutboundFetch } from './outbound.ts'
import type { Size } from './output-size.ts'

/**
 * Reading image inputs the way the model would: `data:` URIs are decoded, the emulator's own
 * file and delivery URLs are resolved in memory, any other http(s) URL is fetched with a timeout.
 */

export interface DataUri {
  mime: string
  bytes: Buffer
}

export function decodeDataUri (uri: string): DataUri | undefined {
  const match = /^data:([^;,]*)((?:;[^;,]*)*?)(;base64)?,(.*)$/s.exec(uri)
  if (!match) return undefined
  const [, mime, , base64, payload] = match
  const bytes = base64 ? Buffer.from(payload!, 'base64') : Buffer.from(decodeURIComponent(payload!), 'utf8')
  return { mime: mime || 'text/plain', bytes }
}

/** Decoded size of a data URI without decoding it. */
export function dataUriByteLength (uri: string): number | undefined {
  const comma = uri.indexOf(',')
  if (!uri.startsWith('data:') || comma < 0) return undefined
  const payload = uri.slice(comma + 1)
  if (!uri.slice(0, comma).endsWith(';base64')) return Buffer.byteLength(payload)
  const padding = payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0
  return Math.floor(payload.length * 3 / 4) - padding
}

export class InputImageError extends Error {}

export interface ImageReaderDeps {
  maxBytes: number
  timeoutMs: number
  /** Bytes for URLs the emulator itself serves, or undefined to fetch over the network. */
  resolveLocal(url: URL): Promise<Buffer | undefined>
  fetch: OutboundFetch
  signal?: AbortSignal
}

async function fetchBytes (url: URL, deps: ImageReaderDeps): Promise<Buffer> {
  const timeout = AbortSignal.timeout(deps.timeoutMs)
  const signal = AbortSignal.any([timeout, ...(deps.signal ? [deps.signal] : [])])
  let bytes: Buffer
  try {
    const response = await deps.fetch(url, { signal, redirect: 'follow' })
    if (!response.ok) {
      await response.body?.cancel()
      throw new InputImageError(`could not download ${url.href}: HTTP ${response.status}`)
    }
    // The timeout covers the body too: a server that sends headers and then stalls is a failure.
    bytes = Buffer.from(await response.arrayBuffer())
  } catch (err) {
    if (err instanceof InputImageError) throw err
    const reason = timeout.aborted ? `timed out after ${deps.timeoutMs} ms` : (err as Error).message
    throw new InputImageError(`could not download ${url.href}: ${reason}`, { cause: err })
  }
  if (bytes.length > deps.maxBytes) throw new InputImageError(`${url.href} is larger than ${deps.maxBytes} bytes`)
  return bytes
}

async function loadBytes (source: string, deps: ImageReaderDeps): Promise<Buffer> {
  if (source.startsWith('data:')) {
    const decoded = decodeDataUri(source)
    if (!decoded) throw new InputImageError('malformed data URI')
    return decoded.bytes
  }
  let url: URL
  try {
    url = new URL(source)
  } catch {
    throw new InputImageError(`not a URL: ${source.slice(0, 100)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputImageError(`unsupported URL scheme ${url.protocol}`)
  const local = await deps.resolveLocal(url)
  if (local) return local
  return fetchBytes(url, deps)
}

/** Pixel size of the image at `source`; throws InputImageError with a readable reason. */
export async function readImageSize (source: string, deps: ImageReaderDeps): Promise<Size> {
  const bytes = await loadBytes(source, deps)
  try {
    const meta = await sharp(bytes).metadata()
    if (!meta.width || !meta.height) throw new Error('no dimensions')
    // EXIF orientations 5–8 swap the sides as displayed.
    const swapped = (meta.orientation ?? 1) >= 5
    return swapped ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height }
  } catch {
    throw new InputImageError('cannot identify image file')
  }
}
