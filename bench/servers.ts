/**
 * The servers the benchmark measures, each in its own process so the load generator does not
 * share their event loop: `emulator` (with rate limits lifted), and `bare` (a Fastify route
 * answering a prediction-sized JSON document, the floor any Fastify service pays).
 * Each prints `LISTENING <url>` once it is ready.
 */
import Fastify from 'fastify'

const kind = process.argv[2]

if (kind === 'emulator') {
  // Imported here only: the bare app's cold start must not pay for loading the emulator.
  const { startEmulator } = await import('../src/emulator/index.ts')
  const emulator = await startEmulator({
    // Real time: the emulator scales Replicate's 60 s sync window with everything else, and a window shorter than a
    // generation under load would have the gateway reading where Replicate would still be holding the create.
    timeScale: 1,
    // The point is to measure request handling, not Replicate's 3000/min read limit.
    rateLimits: { create: { perMinute: 1e9, burst: 1e9 }, other: { perMinute: 1e9, burst: 1e9 } }
  })
  console.log(`LISTENING ${emulator.baseUrl} ${emulator.token}`)
} else if (kind === 'bare') {
  const body = JSON.parse(process.argv[3] ?? '{}') as unknown
  const app = Fastify({ logger: false })
  app.get('/v1/predictions/:id', async () => body)
  await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) })
  const address = app.server.address() as { port: number }
  console.log(`LISTENING http://127.0.0.1:${address.port}`)
} else {
  console.error('usage: servers.ts emulator|bare [json]')
  process.exit(2)
}
