import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
const mu = (l: string) => { const u = process.memoryUsage(); console.log(l, 'rss', u.rss / 1048576 | 0, 'heap', u.heapUsed / 1048576 | 0, 'heapTotal', u.heapTotal / 1048576 | 0, 'ext', u.external / 1048576 | 0, 'ab', u.arrayBuffers / 1048576 | 0) }
mu('start')
const config = loadConfig({ NODE_ENV: 'development', REPLICATE_API_TOKEN: 'r8_x', REPLICATE_BASE_URL: 'http://127.0.0.1:9/v1', STATE_SQLITE_PATH: '/tmp/evtry/s3.sqlite', IMAGE_STORAGE_DIR: '/tmp/evtry/i3', LOG_LEVEL: 'warn', PORT: '0' })
const app = await buildApp({ config })
mu('built')
await app.listen({ port: 0 })
mu('listening')
await new Promise((r) => setTimeout(r, 1000))
globalThis.gc?.()
mu('after gc')
await app.close()
