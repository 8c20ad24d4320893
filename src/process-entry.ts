import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError, loadConfig } from './config.ts'
import type { Config } from './config.ts'
import { loadEnvFile } from './env-file.ts'
import { watchParent } from './parent-watch.ts'

/**
 * What every process entry (`npm start`, `npm run worker`) does around its app: read the settings, then serve until
 * told to stop, shutting down gracefully on SIGTERM/SIGINT or when its launcher goes away.
 */

/** `.env` and the environment, validated; a bad setting ends the process with its message and EX_CONFIG. */
export function readSettings (override: Record<string, string> = {}): { config: Config, envFile: string | undefined } {
  try {
    const envFile = loadEnvFile()
    return { config: loadConfig({ ...process.env, ...override }), envFile }
  } catch (err) {
    if (err instanceof ConfigError) {
      // Logging is not set up yet; this is the one message an operator needs.
      console.error(err.message)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }
}

/** Listens on `port`; drains and closes within `graceMs` of a signal, and stops with the launcher. */
export async function serveUntilStopped (app: FastifyInstance, o: { host: string, port: number, graceMs: number, what: string }): Promise<void> {
  closeWithGrace({ delay: o.graceMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.lifecycle.drain()
    await app.close()
  })
  // Stop with the launcher (`npm start`, a shell, a supervisor) even when it dies without passing a signal on.
  watchParent((parent) => {
    app.log.warn({ parent }, `the process that launched this ${o.what} is gone: shutting down`)
    process.kill(process.pid, 'SIGTERM')
  })
  await app.listen({ host: o.host, port: o.port })
}
