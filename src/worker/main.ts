import closeWithGrace from 'close-with-grace'
import { buildApp } from '../app.ts'
import { ConfigError, loadConfig } from '../config.ts'
import { loadEnvFile } from '../env-file.ts'
import { watchParent } from '../parent-watch.ts'

/**
 * `npm run worker`: the queue worker alone, on the same services as the HTTP process (the app without its /v1
 * routes), with the probes /health/live and /health/ready on WORKER_PORT. SIGTERM stops receiving at once and gives
 * what is in flight SHUTDOWN_GRACE_MS to finish before it is abandoned.
 */
async function main (): Promise<void> {
  let config
  try {
    loadEnvFile()
    // The worker serves probes only: no playground page either.
    config = loadConfig({ ...process.env, WORKER: 'on', PLAYGROUND: 'off' })
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }
  const app = await buildApp({ config, routes: 'probes' })
  closeWithGrace({ delay: config.SHUTDOWN_GRACE_MS + config.SHUTDOWN_DRAIN_DELAY_MS + 15_000 }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.lifecycle.drain()
    await app.close()
  })
  watchParent((parent) => {
    app.log.warn({ parent }, 'the process that launched this worker is gone: shutting down')
    process.kill(process.pid, 'SIGTERM')
  })
  await app.listen({ host: config.HOST, port: config.WORKER_PORT })
}

await main()
