import { buildApp } from '../app.ts'
import { readSettings, serveUntilStopped } from '../process-entry.ts'

/**
 * `npm run worker`: the queue worker alone, on the same services as the HTTP process (the app without its /v1
 * routes), with the probes /health/live and /health/ready on WORKER_PORT. SIGTERM stops receiving at once and gives
 * what is in flight SHUTDOWN_GRACE_MS to finish before it is abandoned.
 */
// The worker serves probes only: no playground page either.
const { config } = readSettings({ WORKER: 'on', PLAYGROUND: 'off' })
const app = await buildApp({ config, routes: 'probes' })
await serveUntilStopped(app, {
  host: config.HOST,
  port: config.WORKER_PORT,
  graceMs: config.SHUTDOWN_GRACE_MS + config.SHUTDOWN_DRAIN_DELAY_MS + 15_000,
  what: 'worker'
})
