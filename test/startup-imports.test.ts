import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = path.resolve(import.meta.dirname, '..')
const dir = mkdtempSync(path.join(tmpdir(), 'fgw-startup-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// Swagger UI and the playground's static files are served by apps made on their first request (src/lazy-mount.ts);
// Ajv loads where the first schema is compiled, which listening does not need; the OpenAPI document is served as
// committed, so its generator (and YAML) is not loaded.
// prom-client loads the OpenTelemetry API (a no-op facade without an SDK) for exemplars; the SDK is what tracing adds.
const HEAVY = ['@azure/storage-blob', '@azure/service-bus', '@azure/keyvault-secrets', '@azure-rest/ai-content-safety', '@azure/identity', '@azure/core-rest-pipeline', 'ioredis', 'sharp', '@opentelemetry/sdk-trace-node', '@opentelemetry/exporter-trace-otlp-http', '@fastify/otel', '@azure/monitor-opentelemetry', '@fastify/static', '@fastify/swagger-ui', '@azure/core-auth', 'ajv', '@fastify/swagger', 'yaml', 'prom-client', 'src/emulator/']

/**
 * Builds the app and starts listening in a fresh process, with `env` as its settings, and returns which of the
 * heavy modules were loaded on the way (recorded by a module resolve hook).
 */
async function loadedAtStart (env: Record<string, string>): Promise<string[]> {
  const app = pathToFileURL(path.join(root, 'src/app.ts')).href
  const config = pathToFileURL(path.join(root, 'src/config.ts')).href
  const script = `
    import { registerHooks } from 'node:module'
    const seen = new Set()
    registerHooks({ resolve (specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r } })
    const { buildApp } = await import(${JSON.stringify(app)})
    const { loadConfig } = await import(${JSON.stringify(config)})
    const built = await buildApp({ config: loadConfig(${JSON.stringify(env)}) })
    await built.listen({ host: '127.0.0.1', port: 0 })
    await built.close()
    console.log(JSON.stringify([...seen]))
  `
  const { stdout } = await run(process.execPath, ['--experimental-strip-types', '--input-type=module', '-e', script], { cwd: root })
  const urls = JSON.parse(stdout.trim().split('\n').at(-1)!) as string[]
  return HEAVY.filter((name) => urls.some((u) => u.includes(name.startsWith('src/') ? `/${name}` : `/node_modules/${name}/`)))
}

const base = { LOG_LEVEL: 'silent', PORT: '0', IMAGE_STORAGE_DIR: path.join(dir, 'images') }

describe('start-up loads only what the configuration uses', () => {
  it('with a token and SQLite: none of the Azure SDKs (the Service Bus one only with the worker on), ioredis, sharp, OpenTelemetry, the static-file servers, Ajv, prom-client, the OpenAPI generator or the emulator', async () => {
    expect(await loadedAtStart({ ...base, NODE_ENV: 'development', REPLICATE_API_TOKEN: 'r8_placeholder', STATE_SQLITE_PATH: path.join(dir, 'a.sqlite') })).toEqual([])
  }, 60_000)

  it('with nothing set: the emulator, and still no Azure SDK or ioredis', async () => {
    const loaded = await loadedAtStart({ ...base, NODE_ENV: 'development', STATE_SQLITE_PATH: path.join(dir, 'b.sqlite') })
    expect(loaded).toContain('src/emulator/')
    expect(loaded).not.toContain('@azure/storage-blob')
    expect(loaded).not.toContain('ioredis')
  }, 60_000)
})
