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

  function sign (baseUrl: string, id: string, index: number): string {
    const seconds = Math.floor(now() / 1000)
    const exp = seconds - (seconds % step) + opts.ttlSeconds
    return `${baseUrl}/v1/predictions/${id}/images/${index}?exp=${exp}&sig=${mac(id, index, exp)}`
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
      const ours = new RegExp(`^(.*)/v1/predictions/${prediction.id}/images/(\\d+)$`)
      return {
        ...prediction,
        output: prediction.output.map((url) => {
          const m = ours.exec(url)
          return m ? sign(m[1]!, prediction.id, Number(m[2])) : url
        })
      }
    }
  }
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
