/**
 * Standalone Replicate emulator: `npm run emulator`. Prints where it listens and the token to use;
 * the control API is under /_emulator. Settings: see env.ts.
 */
import { EnvError, optionsFromEnv } from './env.ts'
import { startEmulator } from './index.ts'
import { watchParent } from '../parent-watch.ts'

let options
try {
  options = optionsFromEnv(process.env)
} catch (err) {
  if (!(err instanceof EnvError)) throw err
  console.error(`emulator: ${err.message}`)
  process.exit(1)
}

const emulator = await startEmulator(options)
console.log(`Replicate emulator listening on ${emulator.baseUrl}`)
console.log(`REPLICATE_API_TOKEN=${emulator.token}`)
console.log(`REPLICATE_BASE_URL=${emulator.baseUrl}`)
console.log(`Webhook secret: ${emulator.webhookSecret}`)
console.log(`Control API: ${emulator.origin}/_emulator/{faults,requests,reset}`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    emulator.close().then(() => process.exit(0), (err: unknown) => {
      console.error('emulator: failed to close', err)
      process.exit(1)
    })
  })
}
// Stop with the launcher (`npm run emulator`) even when it dies without passing a signal on.
watchParent(() => process.kill(process.pid, 'SIGTERM'))
