import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { watchParent } from './parent-watch.ts'
import { loadEnvFile } from './env-file.ts'
import { consoleLogStream } from './log-stream.ts'

/** Process entry: read the config, build the app, listen, and shut down gracefully on SIGTERM/SIGINT. */
async function main (): Promise<void> {
  let config
  let envFile: string | undefined
  try {
    envFile = loadEnvFile()
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      // Logging is not set up yet; this is the one message an operator needs.
      console.error(err.message)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }
  const app = await buildApp({ config }, await consoleLogStream({ isTTY: process.stdout.isTTY, nodeEnv: config.NODE_ENV }))
  if (envFile !== undefined) app.log.info({ envFile }, 'settings read from .env (the environment wins)')
  // A queue worker may take the grace after the HTTP requests, and then abandon what is left.
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + config.SHUTDOWN_DRAIN_DELAY_MS + (config.WORKER === 'on' ? 15_000 : 0) }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.lifecycle.drain()
    await app.close()
  })
  // Stop with the launcher (`npm start`, a shell, a supervisor) even when it dies without passing a signal on.
  watchParent((parent) => {
    app.log.warn({ parent }, 'the process that launched this server is gone: shutting down')
    process.kill(process.pid, 'SIGTERM')
  })
  await app.listen({ host: config.HOST, port: config.PORT })
}

await main()
