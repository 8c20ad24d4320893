import { createHash } from 'node:crypto'
import sharp from 'sharp'

/**
 * Real, deterministic stand-in images. The prompt picks the palette and the light direction, the
 * (prompt, seed, index) triple places the shapes, so equal requests give equal bytes and different
 * prompts look different at a glance.
 */
export type OutputFormat = 'webp' | 'jpg' | 'png'

export interface RenderSpec {
  prompt: string
  seed: number
  index: number
  width: number
  height: number
  format: OutputFormat
  /** 0–100; ignored for png. */
  quality: number
}

export const CONTENT_TYPES: Record<OutputFormat, string> = {
  webp: 'image/webp',
  jpg: 'image/jpeg',
  png: 'image/png'
}

type Rgb = [number, number, number]

function byteStream (seedText: string): () => number {
  let block = createHash('sha256').update(seedText).digest()
  let offset = 0
  return () => {
    if (offset >= block.length) {
      block = createHash('sha256').update(block).digest()
      offset = 0
    }
    return block[offset++]!
  }
}

function color (next: () => number): Rgb {
  return [next(), next(), next()]
}

function paint (spec: RenderSpec): Buffer {
  const { width, height } = spec
  const palette = byteStream(`palette\u0000${spec.prompt}`)
  const layout = byteStream(`layout\u0000${spec.prompt}\u0000${spec.seed}\u0000${spec.index}`)
  const from = color(palette)
  const to = color(palette)
  const angle = (palette() / 255) * Math.PI * 2
  const dx = Math.cos(angle)
  const dy = Math.sin(angle)
  const waveX = (1 + layout() / 32) / width
  const waveY = (1 + layout() / 32) / height
  const pixels = Buffer.alloc(width * height * 3)
  for (let y = 0; y < height; y++) {
    const ny = y / height - 0.5
    for (let x = 0; x < width; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x / width - 0.5) * dx + ny * dy))
      const ripple = 12 * Math.sin((x * waveX + y * waveY) * Math.PI * 2)
      const i = (y * width + x) * 3
      pixels[i] = Math.max(0, Math.min(255, from[0] + (to[0] - from[0]) * t + ripple))
      pixels[i + 1] = Math.max(0, Math.min(255, from[1] + (to[1] - from[1]) * t + ripple))
      pixels[i + 2] = Math.max(0, Math.min(255, from[2] + (to[2] - from[2]) * t + ripple))
    }
  }
  const shapes = 3 + (layout() % 5)
  const shortSide = Math.min(width, height)
  for (let s = 0; s < shapes; s++) {
    const fill = s % 2 === 0 ? color(palette) : color(layout)
    const cx = (layout() / 255) * width
    const cy = (layout() / 255) * height
    const radius = shortSide * (0.05 + (layout() / 255) * 0.25)
    const square = layout() % 3 === 0
    const x0 = Math.max(0, Math.floor(cx - radius))
    const x1 = Math.min(width - 1, Math.ceil(cx + radius))
    const y0 = Math.max(0, Math.floor(cy - radius))
    const y1 = Math.min(height - 1, Math.ceil(cy + radius))
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if (!square && (x - cx) ** 2 + (y - cy) ** 2 > radius * radius) continue
        const i = (y * width + x) * 3
        pixels[i] = fill[0]
        pixels[i + 1] = fill[1]
        pixels[i + 2] = fill[2]
      }
    }
  }
  return pixels
}

export async function renderImage (spec: RenderSpec): Promise<Buffer> {
  const image = sharp(paint(spec), { raw: { width: spec.width, height: spec.height, channels: 3 } })
  const quality = Math.max(1, Math.min(100, Math.round(spec.quality)))
  switch (spec.format) {
    // The lowest effort encodes ~5x faster; synthetic images gain nothing from more.
    case 'webp': return image.webp({ quality, effort: 0 }).toBuffer()
    case 'jpg': return image.jpeg({ quality }).toBuffer()
    // Adaptive filtering makes PNG encoding ~30x slower for little gain on synthetic images.
    case 'png': return image.png({ compressionLevel: 6, adaptiveFiltering: false }).toBuffer()
  }
}

export interface RenderedImage {
  bytes: Buffer
  etag: string
  contentType: string
}

export interface ImageCache {
  get(key: string, spec: RenderSpec): Promise<RenderedImage>
  delete(keyPrefix: string): void
  clear(): void
}

/** Renders lazily, keeps at most `maxBytes` of images (least recently used go first). */
export function createImageCache (maxBytes: number, render: (spec: RenderSpec) => Promise<Buffer> = renderImage): ImageCache {
  const done = new Map<string, RenderedImage>()
  const inflight = new Map<string, Promise<RenderedImage>>()
  let total = 0

  function store (key: string, image: RenderedImage): void {
    done.set(key, image)
    total += image.bytes.length
    for (const [oldKey, old] of done) {
      if (total <= maxBytes || oldKey === key) break
      done.delete(oldKey)
      total -= old.bytes.length
    }
  }

  return {
    async get (key, spec) {
      const hit = done.get(key)
      if (hit) {
        done.delete(key)
        done.set(key, hit)
        return hit
      }
      let pending = inflight.get(key)
      if (!pending) {
        pending = render(spec).then((bytes) => {
          const image = {
            bytes,
            etag: `"${createHash('sha1').update(bytes).digest('hex')}"`,
            contentType: CONTENT_TYPES[spec.format]
          }
          store(key, image)
          return image
        }).finally(() => inflight.delete(key))
        inflight.set(key, pending)
      }
      return pending
    },
    delete (keyPrefix) {
      for (const [key, image] of done) {
        if (!key.startsWith(keyPrefix)) continue
        done.delete(key)
        total -= image.bytes.length
      }
    },
    clear () {
      done.clear()
      total = 0
    }
  }
}
