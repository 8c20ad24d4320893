import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { ConfigError, ConfigSchema, loadConfig } from '../src/config.ts'

describe('config', () => {
  it('.env.example documents every setting', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8')
    const documented = new Set([...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]))
    expect(Object.keys(ConfigSchema.properties).filter((k) => !documented.has(k))).toEqual([])
  })

  it('has working defaults', () => {
    const c = loadConfig({})
    expect(c).toMatchObject({ PORT: 3000, HOST: '127.0.0.1', SYNC_WAIT_SECONDS: 60, DEFAULT_PLAN: 'free', REPLICATE_BASE_URL: 'https://api.replicate.com/v1', LOG_LEVEL: 'info' })
    expect(c.REPLICATE_API_TOKEN).toBeUndefined()
  })

  it('converts and bounds values', () => {
    expect(loadConfig({ PORT: '8080', SYNC_WAIT_SECONDS: '10', DEFAULT_PLAN: 'premium' })).toMatchObject({ PORT: 8080, SYNC_WAIT_SECONDS: 10, DEFAULT_PLAN: 'premium' })
  })

  it('names every bad variable', () => {
    const err = (() => {
      try {
        loadConfig({ PORT: 'eighty', SYNC_WAIT_SECONDS: '61', REPLICATE_BASE_URL: 'ftp://x', DEFAULT_PLAN: 'gold' })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).variables.sort()).toEqual(['DEFAULT_PLAN', 'PORT', 'REPLICATE_BASE_URL', 'SYNC_WAIT_SECONDS'])
    expect((err as Error).message).toContain('PORT')
  })

  it('an Application Insights connection string needs the lowercase GUID key the exporter accepts', () => {
    const good = 'InstrumentationKey=0a1b2c3d-0000-4000-8000-00000000abcd;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/'
    expect(loadConfig({ APPLICATIONINSIGHTS_CONNECTION_STRING: good }).APPLICATIONINSIGHTS_CONNECTION_STRING).toBe(good)
    for (const bad of ['IngestionEndpoint=https://x.in.applicationinsights.azure.com/', 'InstrumentationKey=0A1B2C3D-0000-4000-8000-00000000ABCD', 'InstrumentationKey=not-a-guid']) {
      expect(() => loadConfig({ APPLICATIONINSIGHTS_CONNECTION_STRING: bad }), bad).toThrow(/APPLICATIONINSIGHTS_CONNECTION_STRING/)
    }
  })

  it('the queue worker needs a queue and a connection string or a namespace', () => {
    const err = (() => {
      try {
        loadConfig({ WORKER: 'on' })
      } catch (e) {
        return e
      }
    })()
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).variables.sort()).toEqual(['SERVICE_BUS_NAMESPACE', 'SERVICE_BUS_QUEUE'])
    expect(loadConfig({ WORKER: 'on', SERVICE_BUS_NAMESPACE: 'sb-flux.servicebus.windows.net', SERVICE_BUS_QUEUE: 'jobs' })).toMatchObject({ WORKER_CONCURRENCY: 8, WORKER_MAX_DELIVERIES: 5, WORKER_PORT: 3001 })
    // Off, nothing about Service Bus is required.
    expect(loadConfig({}).WORKER).toBe('off')
  })

  it('refuses production without a token', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/REPLICATE_API_TOKEN is required in production/)
    expect(loadConfig({ NODE_ENV: 'production', REPLICATE_API_TOKEN: 'r8_x' }).NODE_ENV).toBe('production')
  })

  it('the server exits at boot with a message naming the bad variable', async () => {
    const { code, stderr } = await new Promise<{ code: number | null, stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--experimental-strip-types', 'src/server.ts'], {
        env: { ...process.env, PORT: 'not-a-port', NODE_ENV: 'test' },
        stdio: ['ignore', 'ignore', 'pipe']
      })
      let stderr = ''
      child.stderr.on('data', (d) => { stderr += String(d) })
      child.on('exit', (code) => resolve({ code, stderr }))
    })
    expect(code).toBe(78)
    expect(stderr).toContain('PORT is invalid')
  })
})
