import { buildApp } from './app.ts'
import { consoleLogStream } from './log-stream.ts'
import { readSettings, serveUntilStopped } from './process-entry.ts'

/** Process entry: read the config, build the app, listen, and shut down gracefully on SIGTERM/SIGINT. */
const { config, envFile } = readSettings()
const app = await buildApp({ config }, await consoleLogStream({ isTTY: process.stdout.isTTY, nodeEnv: config.NODE_ENV }))
if (envFile !== undefined) app.log.info({ envFile }, 'settings read from .env (the environment wins)')
await serveUntilStopped(app, {
  host: config.HOST,
  port: config.PORT,
  // A queue worker may take the grace after the HTTP requests, and then abandon what is left.
  graceMs: config.SHUTDOWN_GRACE_MS + config.SHUTDOWN_DRAIN_DELAY_MS + (config.WORKER === 'on' ? 15_000 : 0),
  what: 'server'
})
