import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import type { AppOverrides } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'

export interface TestGateway {
  app: FastifyInstance
  url: string
  emulator: Emulator
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[]
  /** The raw log text, for "this string never appears" checks. */
  logText: () => string
  close: () => Promise<void>
}

/**
 * The gateway on an ephemeral port, talking over HTTP to an emulator of its own on another port.
 * Retry sleeps are recorded and skipped unless `realSleep` is set, so suites stay fast.
 */
export async function startGateway (o: {
  env?: Record<string, string>
  emulator?: EmulatorOptions
  overrides?: AppOverrides
} = {}): Promise<TestGateway> {
  const emulator = await startEmulator({ timeScale: 0.02, ...o.emulator })
  const config = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    PORT: '0',
    REPLICATE_API_TOKEN: emulator.token,
    REPLICATE_BASE_URL: emulator.baseUrl,
    READINESS_CACHE_MS: '0',
    ...o.env
  })
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _enc, cb) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      cb()
    }
  })
  const app = await buildApp({ config, overrides: o.overrides }, stream)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  if (!address || typeof address === 'string') throw new Error('no address')
  return {
    app,
    url: `http://127.0.0.1:${address.port}`,
    emulator,
    get logs () { return lines.map((l) => JSON.parse(l) as Record<string, unknown>) },
    logText: () => lines.join('\n'),
    async close () {
      await app.close()
      await emulator.close()
    }
  }
}
