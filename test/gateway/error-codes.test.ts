import { readFileSync } from 'node:fs'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AppError } from '../../src/errors.ts'
import { ERROR_CODE_NAMES, ERROR_CODES } from '../../src/error-codes.ts'
import { ImageFetchFailedError, ImageFetchTimeoutError, ImageTooLargeError, UrlNotAllowedError } from '../../src/net/errors.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

const root = path.resolve(import.meta.dirname, '../..')
let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway()
})
afterAll(async () => {
  await gw.close()
})

/** The README's error-code table, as [code, status] rows. */
function readmeTable (): [string, number][] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8')
  const section = readme.split('<!-- error-codes:start -->')[1]!.split('<!-- error-codes:end -->')[0]!
  return [...section.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])])
}

describe('error codes', () => {
  it('the served OpenAPI document lists every code as the Problem.code enum', async () => {
    const doc = (await gw.call('GET', '/openapi.json')).body
    const code = doc.components.schemas.Problem.properties.code
    expect(code.enum).toEqual(ERROR_CODE_NAMES)
    for (const name of ['url_not_allowed', 'image_too_large', 'image_fetch_failed', 'image_fetch_timeout', 'invalid_signature', 'signature_invalid']) {
      expect(code.enum).toContain(name)
      expect(code.description).toContain(`\`${name}\``)
    }
  })

  it('the README table has the same codes and statuses, in the same order', () => {
    expect(readmeTable()).toEqual(ERROR_CODE_NAMES.map((c) => [c, ERROR_CODES[c].status]))
  })

  it('an error takes its status from the catalog', () => {
    expect(new UrlNotAllowedError('no').statusCode).toBe(400)
    expect(new ImageTooLargeError(10).statusCode).toBe(413)
    expect(new ImageFetchFailedError('status', 'no').statusCode).toBe(502)
    expect(new ImageFetchTimeoutError(10).statusCode).toBe(504)
    expect(new AppError('upstream_queue_full', 'full').statusCode).toBe(503)
  })

  it('problems the service answers carry a listed code with the listed status', async () => {
    const answers = await Promise.all([
      gw.call('POST', '/v1/text-to-image', { prompt: 'no' }),
      gw.call('GET', '/v1/predictions/doesnotexist'),
      gw.call('POST', '/v1/image-to-image', { prompt: 'steal metadata', image_url: 'https://169.254.169.254/latest/meta-data', model: 'flux-dev' }),
      gw.call('POST', '/v1/text-to-image', 'not json', { 'content-type': 'text/plain' })
    ])
    const seen = answers.map((a) => [a.body.code, a.status])
    expect(seen.map(([c]) => c)).toEqual(['validation_error', 'not_found', 'url_not_allowed', 'unsupported_media_type'])
    for (const [code, status] of seen) expect(status).toBe(ERROR_CODES[code as keyof typeof ERROR_CODES].status)
  })
})
