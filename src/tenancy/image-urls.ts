import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { AppError } from '../errors.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { StateStore } from '../stores/types.ts'

/**
 * Signed URLs for kept output images, so an `<img src>` can show them without an Authorization
 * header. The signature is an HMAC-SHA256 over the prediction id, the image index and the expiry,
 * carried in the query (`exp`, `sig`); whoever holds the URL may fetch that one image until it expires.
 *
 * Expiries are rounded down to a step, so reading a prediction twice within a step gives the same
 * URLs and the browser's cache keeps working across reads (a URL then lives between TTL − step and TTL).
 */

/** The name under which a generated secret is kept in the store, shared by every instance. */
export const IMAGE_URL_SECRET_NAME = 'image-url-signing'
const MAX_STEP_SECONDS = 300
/** Signatures kept for the current step at most; past it the map starts again (a cache, not a record). */
const MAX_CACHED_SIGNATURES = 50_000

export type SignatureCheck = 'valid' | 'expired' | 'invalid'

export interface ImageUrlSigner {
  /** `<baseUrl>/v1/predictions/<id>/images/<index>?exp=…&sig=…` */
  sign: (baseUrl: string, id: string, index: number) => string
  check: (id: string, index: number, exp: number, sig: string) => SignatureCheck
  /** The prediction with every one of our kept-image URLs in `output` signed; upstream URLs stay as they are. */
  signOutput: (prediction: PublicPrediction) => PublicPrediction
}

export interface ImageUrlSignerOptions {
  secret: string
  ttlSeconds: number
  now?: () => number
}

export function createImageUrlSigner (opts: ImageUrlSignerOptions): ImageUrlSigner {
  const now = opts.now ?? Date.now
  const step = Math.max(1, Math.min(MAX_STEP_SECONDS, Math.floor(opts.ttlSeconds / 10)))

  function mac (id: string, index: number, exp: number): string {
    return createHmac('sha256', opts.secret).update(`${id}\n${index}\n${exp}`).digest('base64url')
  }

  // Within a step every read of a prediction signs the same (id, index, exp): the signatures are kept for the step,
  // so polling a finished prediction costs no HMAC. A new step starts an empty map; the old one goes with it.
  let signedStep = -1
  let signed = new Map<string, string>()
  function sign (baseUrl: string, id: string, index: number): string {
    const seconds = Math.floor(now() / 1000)
    const exp = seconds - (seconds % step) + opts.ttlSeconds
    if (exp !== signedStep || signed.size >= MAX_CACHED_SIGNATURES) {
      signedStep = exp
      signed = new Map()
    }
    const name = `${id}/${index}`
    let sig = signed.get(name)
    if (sig === undefined) {
      sig = mac(id, index, exp)
      signed.set(name, sig)
    }
    return `${baseUrl}/v1/predictions/${id}/images/${index}?exp=${exp}&sig=${sig}`
  }

  return {
    sign,
    check (id, index, exp, sig) {
      const expected = Buffer.from(mac(id, index, exp))
      const given = Buffer.from(sig)
      // Checked before the expiry, so an altered expiry reads as altered, not as expired.
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid'
      return exp * 1000 <= now() ? 'expired' : 'valid'
    },
    signOutput (prediction) {
      if (!prediction.output) return prediction
      const marker = `/v1/predictions/${prediction.id}/images/`
      return {
        ...prediction,
        output: prediction.output.map((url) => {
          const at = url.lastIndexOf(marker)
          const index = at < 0 ? '' : url.slice(at + marker.length)
          return /^\d+$/.test(index) ? sign(url.slice(0, at), prediction.id, Number(index)) : url
        })
      }
    }
  }
}

/** A signed image URL is a credential for as long as it lasts: its signature stays out of the log. */
export function withoutSignature (url: string): string {
  return url.includes('sig=') ? url.replace(/([?&]sig=)[^&]*/g, '$1[redacted]') : url
}

/** IMAGE_URL_SECRET, or the one kept in the store (the first instance to start makes it; the others read it). */
export async function imageUrlSecret (configured: string | undefined, store: StateStore): Promise<string> {
  if (configured) return configured
  return store.getOrCreateSecret(IMAGE_URL_SECRET_NAME, randomBytes(32).toString('base64url'))
}

export class SignatureInvalidError extends AppError {
  constructor (why: 'expired' | 'invalid') {
    super('signature_invalid', why === 'expired'
      ? 'This image URL has expired: read the prediction again for a fresh one.'
      : 'This image URL\'s signature does not match: use the URL exactly as the API gave it.', { reason: why })
  }
}
