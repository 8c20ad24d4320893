import { AppError } from '../errors.ts'

/**
 * Errors of outbound image fetching and image-input parsing. `field` names the request field
 * when the error is about one, so the problem document can point at it. Extra members are
 * spread into the problem document, so none may be called `status`, `code`, `type` or `detail`.
 */

export class UrlNotAllowedError extends AppError {
  constructor (message: string, extra: { field?: string } = {}, options?: ErrorOptions) {
    super('url_not_allowed', 400, message, extra, options)
  }
}

export class ImageTooLargeError extends AppError {
  constructor (maxBytes: number, extra: { field?: string } = {}) {
    super('image_too_large', 413, `The image is larger than ${maxBytes} bytes.`, { ...extra, maxBytes })
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor (allowedTypes: readonly string[], extra: { field?: string } = {}) {
    super('unsupported_media_type', 415, `The image must be one of: ${allowedTypes.join(', ')}.`, { ...extra, allowedTypes: [...allowedTypes] })
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
    super('image_fetch_failed', 502, message, { ...extra, reason }, options)
  }
}

export class ImageFetchTimeoutError extends AppError {
  constructor (timeoutMs: number) {
    super('image_fetch_timeout', 504, `The image was not fetched within ${timeoutMs} ms.`, { timeoutMs })
  }
}
