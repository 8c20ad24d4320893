import type sharpType from 'sharp'

let loading: Promise<typeof sharpType> | undefined

/**
 * sharp, loaded when an image is first checked or made: a gateway that only serves text-to-image never pays for
 * loading libvips at start-up.
 */
export function loadSharp (): Promise<typeof sharpType> {
  loading ??= import('sharp').then((m) => m.default)
  return loading
}
