import { AppError } from '../errors.ts'

/**
 * Errors of outbound image fetching and image-input parsing. `field` names the request field
 * when the error is about one, so the problem document can point at it. Extra members are
 * spread into the problem document, so none may be called `status`, `code`, `type` or `detail`.
 */

export class UrlNotAllowedError extends AppError {
  constructor (message: string, extra: { field?: string } = {}, options?: ErrorOptions) {
    super('url_not_allowed', message, extra, options)
  }
}

export class ImageTooLargeError extends AppError {
  constructor (maxBytes: number, extra: { field?: string } = {}) {
    super('image_too_large', `The image is larger than ${maxBytes} bytes.`, { ...extra, maxBytes })
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor (allowedTypes: readonly string[], extra: { field?: string } = {}, message = `The image must be one of: ${allowedTypes.join(', ')}.`) {
    super('unsupported_media_type', message, { ...extra, allowedTypes: [...allowedTypes] })
  }
}

const TYPE_NAMES: Record<string, string> = { 'image/png': 'PNG', 'image/jpeg': 'JPEG', 'image/webp': 'WebP', 'image/gif': 'GIF' }
const typeName = (type: string): string => TYPE_NAMES[type] ?? type

/**
 * The declared type is one we take, but the bytes are not that image (sniffed by magic bytes): saying which types
 * are allowed would not help, since the caller already named one of them.
 */
export class ImageTypeMismatchError extends UnsupportedMediaTypeError {
  constructor (o: { declared: string, actual: string | undefined, source: 'data: URI' | 'Content-Type', allowedTypes: readonly string[] }, extra: { field?: string } = {}) {
    const what = o.source === 'data: URI' ? 'The data' : 'The image'
    const actually = o.actual === undefined
      ? `its bytes are not ${o.allowedTypes.map(typeName).join(', ').replace(/, ([^,]*)$/, ' or $1')} data`
      : `its bytes are ${typeName(o.actual)} data`
    super(o.allowedTypes, extra, `${what} is not a valid ${typeName(o.declared)} image, as its ${o.source} declares: ${actually}.`)
  }
}

export type ImageFetchFailure = 'network' | 'status' | 'redirect'

/**
 * The image source misbehaved: unreachable, a non-2xx answer, a broken or endless redirect
 * chain. 502 because the gateway's own upstream (usually Replicate's delivery CDN) failed, not
 * the client's request.
 */
export class ImageFetchFailedError extends AppError {
  constructor (reason: ImageFetchFailure, message: string, extra: { upstreamStatus?: number } = {}, options?: ErrorOptions) {
    super('image_fetch_failed', message, { ...extra, reason }, options)
  }
}

export class ImageFetchTimeoutError extends AppError {
  constructor (timeoutMs: number) {
    super('image_fetch_timeout', `The image was not fetched within ${timeoutMs} ms.`, { timeoutMs })
  }
}
