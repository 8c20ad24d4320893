import type { AddressInfo } from 'node:net'
import type { Prediction } from '../replicate/types.ts'
import { buildEmulatorApp } from './app.ts'
import { createEmulatorContext } from './context.ts'
import type { RecordedRequest } from './context.ts'
import type { FaultSpec } from './faults.ts'
import { resolveOptions } from './options.ts'
import type { EmulatorOptions } from './options.ts'

/**
 * A local stand-in for api.replicate.com that runs FLUX predictions with real timing and serves
 * real images. Used in-process by tests and standalone through `main.ts`.
 */

export type { EmulatorOptions, PitfallSwitches, RateLimit, WebhookQuirks } from './options.ts'
export { DEFAULT_TOKEN } from './options.ts'
export type { FaultKind, FaultSpec } from './faults.ts'
export type { RecordedRequest } from './context.ts'
export { buildEmulatorApp } from './app.ts'
export { createEmulatorContext } from './context.ts'
export { TERMINAL_RETRY_DELAYS_MS } from './webhook-sender.ts'

export interface Emulator {
  /** e.g. `http://127.0.0.1:41234` */
  readonly origin: string
  /** `origin + '/v1'` */
  readonly baseUrl: string
  /** The first accepted token. */
  readonly token: string
  readonly webhookSecret: string
  /** Every request that reached the server (control API excluded), oldest first. */
  readonly requests: RecordedRequest[]
  /** Queues a fault for the next matching calls. */
  inject(fault: FaultSpec): void
  clearFaults(): void
  /** Forgets predictions, files, requests, faults and rate-limit buckets. */
  reset(): void
  getPrediction(id: string): Prediction | undefined
  /**
   * Ends a finished prediction's delivery time now: its output URLs answer 404 and its input and output are gone,
   * as on Replicate an hour after completion. False when `id` is unknown or not finished.
   */
  expireOutput(id: string): boolean
  close(): Promise<void>
}

function originOf (address: AddressInfo): string {
  const wildcard = address.address === '0.0.0.0' || address.address === '::'
  const host = wildcard ? (address.family === 'IPv6' ? '::1' : '127.0.0.1') : address.address
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`
}

export async function startEmulator (opts: EmulatorOptions = {}): Promise<Emulator> {
  const options = resolveOptions(opts)
  const ctx = createEmulatorContext(options)
  const app = buildEmulatorApp(ctx)
  await app.listen({ host: options.host, port: options.port })
  const origin = originOf(app.server.address() as AddressInfo)
  ctx.setListeningOrigin(origin)
  let closing: Promise<void> | undefined
  return {
    origin,
    baseUrl: `${origin}/v1`,
    token: options.tokens[0]!,
    webhookSecret: options.webhookSecret,
    requests: ctx.requests,
    inject: (fault) => ctx.faults.inject(fault),
    clearFaults: () => ctx.faults.clear(),
    reset: () => ctx.reset(),
    getPrediction: (id) => ctx.engine.get(id),
    expireOutput: (id) => ctx.engine.removeData(id),
    close () {
      closing ??= (async () => {
        await ctx.shutdown()
        await app.close()
      })()
      return closing
    }
  }
}
