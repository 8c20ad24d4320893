import { createClock } from './clock.ts'
import type { Clock } from './clock.ts'
import { createFaultQueue } from './faults.ts'
import type { FaultQueue } from './faults.ts'
import { createFileStore } from './files.ts'
import type { FileStore } from './files.ts'
import { readImageSize } from './input-images.ts'
import type { ResolvedOptions } from './options.ts'
import { createOutbound } from './outbound.ts'
import { createPredictionEngine } from './predictions.ts'
import type { PredictionEngine } from './predictions.ts'
import { createRateLimiter } from './rate-limit.ts'
import type { RateLimiter } from './rate-limit.ts'
import { createImageCache } from './render.ts'
import type { ImageCache } from './render.ts'
import { createWebhookSender } from './webhook-sender.ts'
import type { WebhookSender } from './webhook-sender.ts'

/** A request as it reached the server, recorded before any fault, auth or validation. */
export interface RecordedRequest {
  method: string
  /** Path without the query string. */
  path: string
  /** Path with the query string. */
  url: string
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON, the raw text for other bodies, undefined without a body. */
  body: unknown
  /** Epoch milliseconds. */
  receivedAt: number
}

/** Everything the routes share: the services of one emulator instance. */
export interface EmulatorContext {
  readonly options: ResolvedOptions
  readonly clock: Clock
  readonly engine: PredictionEngine
  readonly files: FileStore
  readonly images: ImageCache
  readonly faults: FaultQueue
  readonly limiter: RateLimiter
  readonly webhooks: WebhookSender
  readonly requests: RecordedRequest[]
  /** Origin for URLs handed to clients (`publicUrl`, else the listening origin). */
  publicUrl(): string
  setListeningOrigin(origin: string): void
  /** Forgets predictions, files, requests, faults and buckets; ends sync waits. */
  reset(): void
  /** Stops every timer, webhook delivery and outbound connection. */
  shutdown(): Promise<void>
}

export function createEmulatorContext (options: ResolvedOptions): EmulatorContext {
  const clock = createClock(options.timeScale)
  let listeningOrigin = 'http://127.0.0.1'
  const publicUrl = (): string => options.publicUrl ?? listeningOrigin
  const files = createFileStore(() => Date.now())
  const images = createImageCache(options.imageCacheBytes)
  const outbound = createOutbound()
  const webhooks = createWebhookSender({ clock, secret: options.webhookSecret, quirks: options.webhookQuirks, fetch: outbound.fetch })
  const shutdownController = new AbortController()

  async function resolveLocal (url: URL): Promise<Buffer | undefined> {
    const ours = new Set([listeningOrigin, new URL(publicUrl()).origin])
    if (!ours.has(url.origin)) return undefined
    const file = /^\/v1\/files\/([^/]+)$/.exec(url.pathname)
    if (file) return files.get(decodeURIComponent(file[1]!))?.bytes
    const delivered = /^\/delivery\/([^/]+)\/([^/]+)$/.exec(url.pathname)
    if (delivered) {
      const spec = engine.delivery(delivered[1]!, delivered[2]!)
      if (spec) return (await images.get(`${delivered[1]}/${delivered[2]}`, spec)).bytes
    }
    return undefined
  }

  const engine = createPredictionEngine({
    options,
    clock,
    publicUrl,
    webhooks,
    readImageSize: (source) => readImageSize(source, {
      maxBytes: options.maxFileBytes,
      timeoutMs: options.inputFetchTimeoutMs,
      resolveLocal,
      fetch: outbound.fetch,
      signal: shutdownController.signal
    }),
    onDataRemoved: (id) => images.delete(`${id}/`)
  })

  const faults = createFaultQueue()
  const limiter = createRateLimiter({ ...options.rateLimits, lowCreditTokens: options.lowCreditTokens })
  const requests: RecordedRequest[] = []

  return {
    options,
    clock,
    engine,
    files,
    images,
    faults,
    limiter,
    webhooks,
    requests,
    publicUrl,
    setListeningOrigin (origin) {
      listeningOrigin = origin
    },
    reset () {
      engine.reset()
      clock.clear()
      webhooks.close()
      files.clear()
      images.clear()
      faults.clear()
      limiter.reset()
      // Cleared in place: callers may hold a reference to the array.
      requests.length = 0
    },
    async shutdown () {
      engine.reset()
      clock.clear()
      webhooks.close()
      shutdownController.abort()
      await outbound.close()
    }
  }
}
