import type { TokenCredential } from '@azure/core-auth'
import type { ContentSafetyClient } from '@azure-rest/ai-content-safety'
import { loadSharp } from '../lazy-sharp.ts'
import { AppError } from '../errors.ts'
import { failureReason, statusReason } from '../vault/failure.ts'
import type { AzureClientOptions } from '../vault/key-vault-source.ts'
import { MODERATION_CATEGORIES } from './types.ts'
import type { ModerationCategory, ModerationProvider, ModerationVerdict } from './types.ts'

/**
 * Azure AI Content Safety behind the moderation interface: `text:analyze` for prompts and, when enabled,
 * `image:analyze` for image-to-image inputs. The service only scores (severity 0, 2, 4 or 6 per category);
 * blocking is ours: a category blocks at or above its threshold, and a hit on any configured blocklist blocks.
 *
 * Every call has a timeout. When the service cannot give a verdict (down, slow, throttled, a wrong key) the
 * failure mode decides: `closed` (the default) refuses the request with ModerationUnavailableError, a 503, so
 * nothing unmoderated reaches Replicate; `open` lets it through and logs that it did.
 */

export const AZURE_PROVIDER_NAME = 'azure'
export const AZURE_CATEGORIES = ['Hate', 'SelfHarm', 'Sexual', 'Violence'] as const
export type AzureCategory = typeof AZURE_CATEGORIES[number]

const CATEGORY_OF: Record<AzureCategory, ModerationCategory> = {
  Hate: 'hate',
  SelfHarm: 'self_harm',
  Sexual: 'sexual',
  Violence: 'violence'
}

export type ModerationFailureMode = 'closed' | 'open'

export class ModerationUnavailableError extends AppError {
  constructor () {
    super('service_unavailable', 'Content moderation is unavailable at the moment, so the request was not run. Try again shortly.', {
      reason: 'moderation_unavailable',
      retry_after: 5
    })
  }
}

/** A verdict that also names the blocklists hit (their names, never the matched items). */
export interface ContentSafetyVerdict extends ModerationVerdict {
  blocklists: string[]
}

/** A provider that can judge images too. */
export interface ImageModerationProvider {
  readonly name: string
  checkImage: (image: Buffer, opts?: { signal?: AbortSignal }) => Promise<ModerationVerdict>
}

export interface ModeratorLogger {
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

export interface AzureModeratorOptions {
  /** https://<resource>.cognitiveservices.azure.com */
  endpoint: string
  /** A resource key (sent as Ocp-Apim-Subscription-Key); without one, `credential` signs in with Entra ID. */
  key?: string | undefined
  credential?: TokenCredential
  /** Severity at or above which a category blocks. */
  thresholds: Record<AzureCategory, number>
  blocklists?: string[]
  timeoutMs: number
  failureMode: ModerationFailureMode
  /** Runs first; what it refuses is not sent to Azure. */
  precheck?: ModerationProvider
  clientOptions?: AzureClientOptions
  log?: ModeratorLogger
}

interface CategoryAnalysis {
  category: string
  severity?: number
}

interface BlocklistMatch {
  blocklistName: string
}

// Image limits of image:analyze.
const IMAGE_MAX_BYTES = 4 * 1024 * 1024
const IMAGE_MIN_SIDE = 50
const IMAGE_MAX_SIDE = 2048
const IMAGE_FORMATS = new Set(['jpeg', 'png', 'gif', 'webp', 'bmp', 'tiff'])

// One quick retry for a blip; the timeout bounds the whole call.
const DEFAULT_RETRY = { maxRetries: 1, retryDelayInMs: 100, maxRetryDelayInMs: 500 }

const noopLog: ModeratorLogger = { warn: () => {}, error: () => {} }

/**
 * An image as image:analyze accepts it: unchanged when it fits (4 MB, 50–2048 px a side, a format it reads);
 * otherwise scaled into those bounds and sent as JPEG.
 */
export async function imageForAnalysis (image: Buffer): Promise<Buffer> {
  const sharp = await loadSharp()
  const meta = await sharp(image).metadata()
  const width = meta.width ?? 0
  const height = meta.height ?? 0
  const fits = image.length <= IMAGE_MAX_BYTES && IMAGE_FORMATS.has(meta.format ?? '') &&
    Math.min(width, height) >= IMAGE_MIN_SIDE && Math.max(width, height) <= IMAGE_MAX_SIDE
  if (fits) return image
  let scale = Math.min(1, IMAGE_MAX_SIDE / Math.max(width, height))
  if (Math.min(width, height) * scale < IMAGE_MIN_SIDE) scale = IMAGE_MIN_SIDE / Math.min(width, height)
  const side = (n: number): number => Math.min(IMAGE_MAX_SIDE, Math.max(IMAGE_MIN_SIDE, Math.round(n * scale)))
  return sharp(image)
    .resize(side(width), side(height), { fit: 'fill' })
    .flatten({ background: '#ffffff' })
    .jpeg({ quality: 85 })
    .toBuffer()
}

export function createAzureModerator (opts: AzureModeratorOptions): ModerationProvider & ImageModerationProvider {
  const log = opts.log ?? noopLog
  const blocklists = opts.blocklists ?? []
  const endpoint = opts.endpoint.replace(/\/+$/, '')
  let client: Promise<ContentSafetyClient> | undefined

  if (!opts.key && !opts.credential) throw new TypeError('Azure Content Safety needs a key or a credential')

  // The SDK, and the key credential with it, load on the first check: a service that never moderates through Azure
  // (the local provider, or probes only) does not pay for them at start.
  function contentSafety (): Promise<ContentSafetyClient> {
    client ??= Promise.all([import('@azure-rest/ai-content-safety'), import('@azure/core-auth')]).then(([{ default: createClient }, { AzureKeyCredential }]) => {
      const credential = opts.key ? new AzureKeyCredential(opts.key) : opts.credential!
      return createClient(endpoint, credential, { retryOptions: DEFAULT_RETRY, ...opts.clientOptions })
    })
    return client
  }

  /** No verdict could be had: refuse (closed) or allow (open), and say so in the log either way. */
  function unavailable (operation: 'text' | 'image', reason: string): ContentSafetyVerdict {
    const misconfigured = reason === 'unauthorized' || reason === 'forbidden'
    const fields = { provider: AZURE_PROVIDER_NAME, operation, reason, failureMode: opts.failureMode }
    const message = opts.failureMode === 'open'
      ? 'content safety gave no verdict; allowed unchecked (MODERATION_FAILURE_MODE=open)'
      : 'content safety gave no verdict; request refused (MODERATION_FAILURE_MODE=closed)'
    if (misconfigured) log.error(fields, message)
    else log.warn(fields, message)
    if (opts.failureMode === 'open') return { allowed: true, categories: [], blocklists: [], provider: AZURE_PROVIDER_NAME }
    throw new ModerationUnavailableError()
  }

  function verdictOf (analysis: CategoryAnalysis[] | undefined, matches: BlocklistMatch[] | undefined): ContentSafetyVerdict {
    const found = new Set<ModerationCategory>()
    for (const { category, severity } of analysis ?? []) {
      if (!(AZURE_CATEGORIES as readonly string[]).includes(category)) continue
      // The API types severity as optional; a missing one is read as 0 (safe), as the service omits nothing it scored.
      if ((severity ?? 0) >= opts.thresholds[category as AzureCategory]) found.add(CATEGORY_OF[category as AzureCategory])
    }
    const hit = [...new Set((matches ?? []).map((m) => m.blocklistName))]
    const categories = MODERATION_CATEGORIES.filter((c) => found.has(c))
    return { allowed: categories.length === 0 && hit.length === 0, categories, blocklists: hit, provider: AZURE_PROVIDER_NAME }
  }

  /**
   * One call with the timeout: the 200 body, or the failure mode's verdict when there is none. The caller's own
   * abort (it went away) is passed on, not treated as an outage.
   */
  async function call<T> (
    operation: 'text' | 'image',
    send: (c: ContentSafetyClient, abortSignal: AbortSignal) => PromiseLike<{ status: string, body: unknown }>,
    signal?: AbortSignal
  ): Promise<{ body: T } | { verdict: ContentSafetyVerdict }> {
    const timeout = AbortSignal.timeout(opts.timeoutMs)
    const abortSignal = signal ? AbortSignal.any([signal, timeout]) : timeout
    let res: { status: string, body: unknown }
    try {
      res = await send(await contentSafety(), abortSignal)
    } catch (err) {
      if (signal?.aborted) throw signal.reason
      return { verdict: unavailable(operation, failureReason(err)) }
    }
    // The REST client never throws on a status; anything but 200 is no verdict.
    const status = Number(res.status)
    if (status !== 200) return { verdict: unavailable(operation, statusReason(status)) }
    return { body: res.body as T }
  }

  return {
    name: AZURE_PROVIDER_NAME,

    async checkText (text, { signal } = {}) {
      if (opts.precheck) {
        const local = await opts.precheck.checkText(text, { signal })
        if (!local.allowed) return local
      }
      const body = {
        text,
        categories: [...AZURE_CATEGORIES],
        ...(blocklists.length > 0 ? { blocklistNames: blocklists } : {}),
        // Any hit blocks, so the classifiers need not run after one.
        haltOnBlocklistHit: true,
        outputType: 'FourSeverityLevels' as const
      }
      const result = await call<{ categoriesAnalysis?: CategoryAnalysis[], blocklistsMatch?: BlocklistMatch[] }>('text',
        (c, abortSignal) => c.path('/text:analyze').post({ body, abortSignal }), signal)
      if ('verdict' in result) return result.verdict
      return verdictOf(result.body.categoriesAnalysis, result.body.blocklistsMatch)
    },

    async checkImage (image, { signal } = {}) {
      const content = (await imageForAnalysis(image)).toString('base64')
      const result = await call<{ categoriesAnalysis?: CategoryAnalysis[] }>('image',
        (c, abortSignal) => c.path('/image:analyze').post({ body: { image: { content }, categories: [...AZURE_CATEGORIES], outputType: 'FourSeverityLevels' }, abortSignal }), signal)
      if ('verdict' in result) return result.verdict
      return verdictOf(result.body.categoriesAnalysis, undefined)
    }
  }
}
