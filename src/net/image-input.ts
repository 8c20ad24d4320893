import { loadSharp } from '../lazy-sharp.ts'
import { ValidationError } from '../errors.ts'
import { ImageTooLargeError, ImageTypeMismatchError, UnsupportedMediaTypeError, UrlNotAllowedError } from './errors.ts'
import { imageTypeList, normaliseMediaType, sniffImageType } from './image-type.ts'
import type { ImageType } from './image-type.ts'
import { canonicalAddress } from './address-policy.ts'
import { policyHost, urlPolicyViolation } from './url-policy.ts'

/**
 * Image inputs for image-to-image requests: an https URL (checked without fetching it) or a
 * base64 data URI (decoded, measured and fully decoded once to prove it is a real image).
 */

export interface ImageInputLimits {
  /** Largest decoded data URI, in bytes. */
  maxBytes: number
  /** Accepted types; default PNG, JPEG, WebP, GIF. */
  allowedTypes?: readonly string[]
  /** Largest width × height of a data URI image; guards against decompression bombs. Default 50 megapixels. */
  maxPixels?: number
  /** Request field named in errors. Default `image_url`. */
  field?: string
  /**
   * Exact IP addresses exempted from the address policy and the default-port rule, as in the fetcher's own
   * `allowAddresses` (a test server on 127.0.0.1 and an ephemeral port). Default none.
   */
  allowAddresses?: readonly string[]
}

export type ParsedImageInput =
  | { kind: 'url', url: string }
  | { kind: 'data', bytes: Buffer, contentType: ImageType, width: number, height: number }

const MAX_URL_LENGTH = 2048
const DEFAULT_MAX_PIXELS = 50_000_000
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

function parseUrlInput (value: string, field: string, allowAddresses: ReadonlySet<string>): ParsedImageInput {
  const invalid = (message: string): ValidationError => new ValidationError([{ field, message }])
  if (value.length > MAX_URL_LENGTH) throw invalid(`must be at most ${MAX_URL_LENGTH} characters`)
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw invalid('must be an https URL or a data: URI')
  }
  if (url.protocol !== 'https:') throw invalid('must be an https URL or a data: URI')
  // Ports other than 443 are refused: image hosts do not need them, internal services often do.
  const exempt = allowAddresses.has(canonicalAddress(policyHost(url)) ?? '')
  const violation = urlPolicyViolation(url, { allowedSchemes: ['https:'], defaultPortOnly: !exempt, allowAddresses })
  if (violation !== undefined) throw new UrlNotAllowedError(violation, { field })
  return { kind: 'url', url: url.href }
}

async function parseDataUri (value: string, limits: ImageInputLimits, field: string): Promise<ParsedImageInput> {
  const invalid = (message: string): ValidationError => new ValidationError([{ field, message }])
  const allowedTypes = imageTypeList(limits.allowedTypes)
  const comma = value.indexOf(',')
  if (comma < 0) throw invalid('is not a valid data: URI')
  const [mediaType = '', ...params] = value.slice('data:'.length, comma).split(';')
  if (params.at(-1)?.trim().toLowerCase() !== 'base64') throw invalid('must be a base64 data: URI')
  const declared = normaliseMediaType(mediaType)
  if (declared === undefined || !(allowedTypes as string[]).includes(declared)) {
    throw new UnsupportedMediaTypeError(allowedTypes, { field })
  }

  const raw = value.slice(comma + 1)
  // Even generously wrapped base64 is far below twice its bare length.
  if (raw.length > Math.ceil(limits.maxBytes / 3) * 8 + 64) throw new ImageTooLargeError(limits.maxBytes, { field })
  // Line breaks are common in base64 from older encoders and carry no data.
  const payload = raw.replace(/[\t\n\r ]+/g, '')
  const padding = payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0
  const decodedLength = Math.floor(payload.length / 4) * 3 - padding
  // Measured before decoding, so an oversized payload costs no allocation.
  if (decodedLength > limits.maxBytes) throw new ImageTooLargeError(limits.maxBytes, { field })
  if (payload.length % 4 !== 0 || !BASE64.test(payload)) throw invalid('is not valid base64')
  const bytes = Buffer.from(payload, 'base64')
  if (bytes.length === 0) throw invalid('is empty')
  const actual = sniffImageType(bytes)
  if (actual !== declared) throw new ImageTypeMismatchError({ declared, actual, source: 'data: URI', allowedTypes }, { field })

  const { width, height } = await measureImage(bytes, { ...limits, field })
  return { kind: 'data', bytes, contentType: declared as ImageType, width, height }
}

/**
 * The pixel size of an image, after proving it is a whole, decodable image within the pixel limit
 * (`maxPixels`, default 50 megapixels). A ValidationError on `field` (default `image_url`) otherwise.
 * Used for data URIs and for images fetched from URLs alike.
 */
export async function measureImage (bytes: Buffer, limits: Pick<ImageInputLimits, 'maxPixels' | 'field'> = {}): Promise<{ width: number, height: number }> {
  const field = limits.field ?? 'image_url'
  const invalid = (message: string): ValidationError => new ValidationError([{ field, message }])
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_PIXELS
  let width: number
  let height: number
  const sharp = await loadSharp()
  try {
    const metadata = await sharp(bytes, { limitInputPixels: false }).metadata()
    width = metadata.width
    height = metadata.height
  } catch {
    throw invalid('is not a readable image')
  }
  if (!(width > 0 && height > 0)) throw invalid('is not a readable image')
  if (width * height > maxPixels) throw invalid(`must be at most ${maxPixels} pixels`)
  try {
    // The header can be intact while the pixel data is cut off; only decoding tells.
    await sharp(bytes, { failOn: 'error', limitInputPixels: maxPixels }).stats()
  } catch {
    throw invalid('is not a readable image')
  }
  return { width, height }
}

/**
 * Accepts an `https:` URL (returned normalised, as `{ kind: 'url' }`) or a `data:<type>;base64,`
 * URI (returned decoded). Anything else is a ValidationError on `limits.field`; a refused URL is
 * `url_not_allowed`, an oversized image `image_too_large`, a wrong type `unsupported_media_type`.
 */
export async function parseImageInput (value: string, limits: ImageInputLimits): Promise<ParsedImageInput> {
  const field = limits.field ?? 'image_url'
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ValidationError([{ field, message: 'must be an https URL or a data: URI' }])
  }
  const text = value.trim()
  if (text.slice(0, 5).toLowerCase() === 'data:') return await parseDataUri(text, limits, field)
  const allowAddresses = new Set<string>()
  for (const address of limits.allowAddresses ?? []) {
    const canonical = canonicalAddress(address)
    if (canonical !== undefined) allowAddresses.add(canonical)
  }
  return parseUrlInput(text, field, allowAddresses)
}
