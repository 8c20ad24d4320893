import { PIXELS_AT_1MP } from '../models/replicate-models.ts'
import type { ReplicateModelSpec } from '../models/replicate-models.ts'

/** Output pixel sizes implied by the inputs (REFERENCE §7.1–§7.6). */
export interface Size {
  width: number
  height: number
}

const ONE_MP = 1024 * 1024
// Kontext accepts ratios between 21:9 and 9:21; an input image outside that is cropped to it.
const MAX_RATIO = 21 / 9

function roundTo (value: number, multiple: number): number {
  return Math.max(multiple, Math.round(value / multiple) * multiple)
}

/** About 1 MP at the given width/height ratio, sides multiples of 16. */
export function sizeForRatio (ratio: number): Size {
  const r = Math.min(MAX_RATIO, Math.max(1 / MAX_RATIO, ratio))
  return { width: roundTo(Math.sqrt(ONE_MP * r), 16), height: roundTo(Math.sqrt(ONE_MP / r), 16) }
}

function parseRatio (value: string): number | undefined {
  const match = /^(\d+):(\d+)$/.exec(value)
  return match ? Number(match[1]) / Number(match[2]) : undefined
}

function fromTable (aspectRatio: string): Size {
  const known = PIXELS_AT_1MP[aspectRatio]
  if (known) return { width: known[0], height: known[1] }
  return sizeForRatio(parseRatio(aspectRatio) ?? 1)
}

/** The input whose image decides the output's aspect ratio, if any. */
export function sizeSourceField (modelRef: string, input: Record<string, unknown>): string | undefined {
  if (modelRef === 'black-forest-labs/flux-dev' && typeof input.image === 'string') return 'image'
  if (modelRef === 'black-forest-labs/flux-kontext-pro' && typeof input.input_image === 'string' &&
    (input.aspect_ratio ?? 'match_input_image') === 'match_input_image') return 'input_image'
  return undefined
}

const IMAGE_INPUT_FIELDS = ['image', 'input_image', 'image_prompt'] as const

/**
 * The model's image inputs (which must be readable, whether or not they set the size). Keys the
 * model does not have are ignored like any unknown input.
 */
export function imageInputFields (model: ReplicateModelSpec): string[] {
  return IMAGE_INPUT_FIELDS.filter((field) => Object.hasOwn(model.input.properties, field))
}

export function outputSize (modelRef: string, input: Record<string, unknown>, sourceImage?: Size): Size {
  if (sourceImage) return sizeForRatio(sourceImage.width / sourceImage.height)
  const aspectRatio = typeof input.aspect_ratio === 'string' ? input.aspect_ratio : undefined
  switch (modelRef) {
    case 'black-forest-labs/flux-1.1-pro': {
      if (aspectRatio === 'custom') {
        const side = (v: unknown): number => Math.min(1440, Math.max(256, roundTo(typeof v === 'number' ? v : 1024, 32)))
        return { width: side(input.width), height: side(input.height) }
      }
      return fromTable(aspectRatio ?? '1:1')
    }
    case 'black-forest-labs/flux-kontext-pro':
      // match_input_image without an image falls back to a square.
      return fromTable(aspectRatio === undefined || aspectRatio === 'match_input_image' ? '1:1' : aspectRatio)
    default: {
      const size = fromTable(aspectRatio ?? '1:1')
      if (input.megapixels === '0.25') return { width: size.width / 2, height: size.height / 2 }
      return size
    }
  }
}
