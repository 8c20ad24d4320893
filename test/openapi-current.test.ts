import { readFileSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'

/**
 * The service serves openapi/openapi.json as committed instead of generating it at every start; this keeps that file
 * what the route schemas say (as `npm run openapi:check` does), so a route changed without `npm run openapi` fails here.
 */
const committed = readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')
// As scripts/openapi.ts builds it: a placeholder token keeps the emulator from starting.
const config = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', REPLICATE_API_TOKEN: 'placeholder-for-openapi-generation' })
const apps: Array<Awaited<ReturnType<typeof buildApp>>> = []
afterAll(async () => { await Promise.all(apps.map((app) => app.close())) })

describe('the OpenAPI document', () => {
  it('in openapi/ is the one the routes generate', async () => {
    const app = await buildApp({ config, openapi: 'generate' })
    apps.push(app)
    await app.ready()
    expect(`${JSON.stringify(app.swagger(), null, 2)}\n`).toBe(committed)
  })

  it('is served as committed, without loading the generator', async () => {
    const app = await buildApp({ config })
    apps.push(app)
    const res = await app.inject('/openapi.json')
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual(JSON.parse(committed))
    expect(app.hasPlugin('@fastify/swagger')).toBe(false)
  })
})
