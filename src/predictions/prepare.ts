import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.ts'
import { calculateCost } from '../models/catalog.ts'
import { mapImageToImage, mapTextToImage } from '../models/mapping.ts'
import type { ModerationProvider, ModerationVerdict } from '../moderation/types.ts'
import type { ImageToImageRequest, TextToImageRequest, Warning } from '../schemas/generation.ts'

/**
 * Everything a create needs before Replicate is called: the prompt (and input image) judged by the content policy,
 * the request mapped onto the model's real inputs, the quote. Nothing here calls Replicate or writes state, so a
 * refusal leaves nothing behind; the tracker (tracker.ts) sends what this returns.
 */

/** An image-to-image input after checks: what to send upstream, and its size when known. */
export interface ResolvedImage {
  uri: string
  width?: number | undefined
  height?: number | undefined
  /** The checked bytes, for image moderation. */
  bytes?: Buffer | undefined
}

export interface PreparerOptions {
  moderation: ModerationProvider
  /** Judges image-to-image input images before anything is sent; absent or null: images are not judged. */
  imageModeration?: { checkImage: (image: Buffer, opts?: { signal?: AbortSignal }) => Promise<ModerationVerdict> } | null
  resolveImage: (imageUrl: string, signal?: AbortSignal) => Promise<ResolvedImage>
  log: FastifyBaseLogger
}

export interface PrepareOptions {
  signal?: AbortSignal | undefined
  log?: FastifyBaseLogger | undefined
}

/** A create ready to send: exactly what goes upstream, and what the caller is quoted and told. */
export interface PreparedCreate {
  model: string
  replicateModel: string
  input: Record<string, unknown>
  warnings: Warning[]
  creditsPerImage: number
  numImages: number
}

export interface PredictionPreparer {
  /** `body.model` is the model to run (the plan has chosen it). */
  textToImage: (body: TextToImageRequest & { model: string }, o?: PrepareOptions) => Promise<PreparedCreate>
  imageToImage: (body: ImageToImageRequest & { model: string }, o?: PrepareOptions) => Promise<PreparedCreate>
}

/** Blocklist names a provider reported (hosted providers do); the caller only learns that one matched. */
function blocklistsOf (verdict: ModerationVerdict): string[] {
  const named = (verdict as { blocklists?: unknown }).blocklists
  return Array.isArray(named) ? named.filter((n): n is string => typeof n === 'string') : []
}

export function createPreparer (opts: PreparerOptions): PredictionPreparer {
  async function moderate (prompt: string, log: FastifyBaseLogger, signal?: AbortSignal): Promise<void> {
    const verdict = await opts.moderation.checkText(prompt, { signal })
    if (verdict.allowed) return
    const blocklists = blocklistsOf(verdict)
    // The prompt itself is never logged: only which rules matched.
    log.warn({ categories: verdict.categories, provider: verdict.provider, ...(blocklists.length > 0 ? { blocklists } : {}) }, 'prompt refused by the content policy')
    throw new AppError('content_policy_violation', 'The prompt was refused by the content policy.', {
      categories: verdict.categories,
      ...(blocklists.length > 0 ? { blocklist_match: true } : {})
    })
  }

  async function moderateImage (image: ResolvedImage, log: FastifyBaseLogger, signal?: AbortSignal): Promise<void> {
    if (!opts.imageModeration || !image.bytes) return
    const verdict = await opts.imageModeration.checkImage(image.bytes, { signal })
    if (verdict.allowed) return
    log.warn({ categories: verdict.categories, provider: verdict.provider }, 'input image refused by the content policy')
    throw new AppError('content_policy_violation', 'The input image was refused by the content policy.', { categories: verdict.categories, field: 'image_url' })
  }

  return {
    async textToImage (body, o = {}) {
      const log = o.log ?? opts.log
      const mapped = mapTextToImage(body, body.model)
      await moderate(body.prompt, log, o.signal)
      return { model: body.model, replicateModel: mapped.replicateModel, input: mapped.input, warnings: mapped.warnings, creditsPerImage: calculateCost(body.model, 1), numImages: body.num_outputs ?? 1 }
    },

    async imageToImage (body, o = {}) {
      const log = o.log ?? opts.log
      // Mapped once with the request's own image_url so every field problem is reported before anything is fetched.
      mapImageToImage(body, body.model, { url: body.image_url })
      await moderate(body.prompt, log, o.signal)
      const image = await opts.resolveImage(body.image_url, o.signal)
      await moderateImage(image, log, o.signal)
      const mapped = mapImageToImage(body, body.model, { url: image.uri, width: image.width, height: image.height })
      return { model: body.model, replicateModel: mapped.replicateModel, input: mapped.input, warnings: mapped.warnings, creditsPerImage: calculateCost(body.model, 1), numImages: 1 }
    }
  }
}
