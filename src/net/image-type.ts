/**
 * Image types the gateway accepts, recognised by their magic bytes rather than by what a
 * header or a data URI claims.
 */

export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'] as const
export type ImageType = typeof IMAGE_TYPES[number]

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

function startsWithAscii (bytes: Uint8Array, offset: number, text: string): boolean {
  if (bytes.length < offset + text.length) return false
  for (let i = 0; i < text.length; i++) {
    if (bytes[offset + i] !== text.charCodeAt(i)) return false
  }
  return true
}

/** The type the bytes actually are, or undefined when they are none of IMAGE_TYPES. */
export function sniffImageType (bytes: Uint8Array): ImageType | undefined {
  if (bytes.length >= 8 && PNG_SIGNATURE.equals(bytes.subarray(0, 8))) return 'image/png'
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg'
  if (startsWithAscii(bytes, 0, 'RIFF') && startsWithAscii(bytes, 8, 'WEBP')) return 'image/webp'
  if (startsWithAscii(bytes, 0, 'GIF87a') || startsWithAscii(bytes, 0, 'GIF89a')) return 'image/gif'
  return undefined
}

const ALIASES: Record<string, ImageType> = { 'image/jpg': 'image/jpeg', 'image/pjpeg': 'image/jpeg' }

/** The bare, lower-case media type of a Content-Type value (parameters dropped, aliases resolved). */
export function normaliseMediaType (value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const type = (value.split(';', 1)[0] ?? '').trim().toLowerCase()
  if (type === '') return undefined
  return ALIASES[type] ?? type
}

export function isImageType (value: string): value is ImageType {
  return (IMAGE_TYPES as readonly string[]).includes(value)
}

/** Validates a configured list of accepted types; only sniffable types make sense. */
export function imageTypeList (types: readonly string[] | undefined): ImageType[] {
  if (types === undefined) return [...IMAGE_TYPES]
  return types.map((type) => {
    const normalised = normaliseMediaType(type)
    if (normalised === undefined || !isImageType(normalised)) {
      throw new TypeError(`Unsupported image type "${type}": expected some of ${IMAGE_TYPES.join(', ')}`)
    }
    return normalised
  })
}
