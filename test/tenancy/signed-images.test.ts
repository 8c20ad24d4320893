import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { request } from 'undici'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { createImageUrlSigner, IMAGE_URL_SECRET_NAME } from '../../src/tenancy/image-urls.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, storeWithKeys } from './helpers.ts'

const SECRET = 's'.repeat(48)

describe('the signer', () => {
  it('signs id, index and expiry; an altered or expired URL fails; reads within a step give the same URL', () => {
    let now = Date.UTC(2026, 10, 26, 12, 0, 7)
    const signer = createImageUrlSigner({ secret: SECRET, ttlSeconds: 3600, now: () => now })
    const url = new URL(signer.sign('http://gw.test', 'abc', 1))
    expect(url.pathname).toBe('/v1/predictions/abc/images/1')
    const exp = Number(url.searchParams.get('exp'))
    const sig = url.searchParams.get('sig')!
    // Rounded down to a 300 s step, then one TTL ahead.
    expect(exp).toBe(Date.UTC(2026, 10, 26, 12, 0, 0) / 1000 + 3600)
    expect(signer.check('abc', 1, exp, sig)).toBe('valid')
    now += 200_000
    expect(signer.sign('http://gw.test', 'abc', 1)).toBe(url.toString())
    // The next step signs anew (kept signatures are their step's own): as a signer with nothing kept would, and valid.
    now += 100_000
    const stepped = new URL(signer.sign('http://gw.test', 'abc', 1))
    expect(stepped.toString()).toBe(createImageUrlSigner({ secret: SECRET, ttlSeconds: 3600, now: () => now }).sign('http://gw.test', 'abc', 1))
    expect(Number(stepped.searchParams.get('exp'))).toBe(exp + 300)
    expect(signer.check('abc', 1, exp + 300, stepped.searchParams.get('sig')!)).toBe('valid')
    now -= 100_000
    expect(signer.check('abc', 0, exp, sig)).toBe('invalid')
    expect(signer.check('abd', 1, exp, sig)).toBe('invalid')
    expect(signer.check('abc', 1, exp + 3600, sig)).toBe('invalid')
    expect(signer.check('abc', 1, exp, sig.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')))).toBe('invalid')
    expect(createImageUrlSigner({ secret: 't'.repeat(48), ttlSeconds: 3600, now: () => now }).check('abc', 1, exp, sig)).toBe('invalid')
    now = exp * 1000
    expect(signer.check('abc', 1, exp, sig)).toBe('expired')
  })

  it('signs only our kept-image URLs in output', () => {
    const signer = createImageUrlSigner({ secret: SECRET, ttlSeconds: 600 })
    const pub = { id: 'p1', output: ['http://gw.test/v1/predictions/p1/images/0', 'https://replicate.delivery/x/out-1.webp', 'http://gw.test/v1/predictions/p2/images/0'] }
    const signed = signer.signOutput(pub as never)
    expect(signed.output![0]).toMatch(/^http:\/\/gw\.test\/v1\/predictions\/p1\/images\/0\?exp=\d+&sig=[\w-]{43}$/)
    expect(signed.output!.slice(1)).toEqual(pub.output.slice(1))
  })
})

describe('signed image URLs through the gateway', () => {
  let gw: TestGateway
  let store: StateStore
  let keys: Record<'owner' | 'other', string>
  let id: string
  let signed: string
  const images = mkdtempSync(path.join(tmpdir(), 'fgw-signed-'))
  beforeAll(async () => {
    store = createSqliteStore({ path: ':memory:' });
    ({ keys } = await storeWithKeys({ owner: { plan: 'basic' }, other: { plan: 'basic' } }, store))
    gw = await startGateway({ env: { IMAGE_STORAGE_DIR: images }, overrides: { tenancy: { store } } })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key: keys.owner, body: { prompt: 'a red bicycle against a wall', model: 'flux-schnell' } })
    expect(res.status).toBe(200)
    id = res.body.id
    expect(res.body.output).toEqual([signedImageUrl(gw.url, id, 0)])
    signed = res.body.output[0]
  })
  afterAll(async () => {
    await gw.close()
    await store.close()
    rmSync(images, { recursive: true, force: true })
  })

  it('serves a signed URL with no header, cacheable and with an ETag; 304 on If-None-Match', async () => {
    const res = await request(signed)
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('image/webp')
    const bytes = Buffer.from(await res.body.arrayBuffer())
    expect(bytes.subarray(8, 12).toString()).toBe('WEBP')
    expect(res.headers.etag).toBe(`"${id}-0-${bytes.length}"`)
    const maxAge = Number(/^public, max-age=(\d+), immutable$/.exec(String(res.headers['cache-control']))?.[1])
    expect(maxAge).toBeGreaterThan(3000)
    expect(maxAge).toBeLessThanOrEqual(3600)
    const again = await request(signed, { headers: { 'if-none-match': String(res.headers.etag) } })
    expect(again.statusCode).toBe(304)
    expect(await again.body.text()).toBe('')
  })

  it('refuses an altered or expired signature with 403 signature_invalid, and a missing one needs the key', async () => {
    const url = new URL(signed)
    const exp = Number(url.searchParams.get('exp'))
    const sig = url.searchParams.get('sig')!
    const cases = [
      [`/v1/predictions/${id}/images/0?exp=${exp + 1}&sig=${sig}`, 'invalid'],
      [`/v1/predictions/${id}/images/1?exp=${exp}&sig=${sig}`, 'invalid'],
      [`/v1/predictions/${id}/images/0?sig=${sig}`, 'invalid'],
      [`/v1/predictions/${id}/images/0?exp=${exp}&sig=${sig.slice(0, -2)}xx`, 'invalid']
    ] as const
    for (const [path, reason] of cases) {
      const res = await call(gw.url, 'GET', path)
      expect(res.status, path).toBe(403)
      expect(res.body).toMatchObject({ code: 'signature_invalid', status: 403, reason })
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
    }
    // An expired URL with a good signature says so (signed here with the secret the gateway keeps in its store).
    const secret = await store.getOrCreateSecret(IMAGE_URL_SECRET_NAME, 'unused-candidate-unused-candidate')
    const past = createImageUrlSigner({ secret, ttlSeconds: 3600, now: () => Date.now() - 2 * 3600_000 }).sign(gw.url, id, 0)
    const expired = await call(gw.url, 'GET', past.slice(gw.url.length))
    expect(expired.status).toBe(403)
    expect(expired.body).toMatchObject({ code: 'signature_invalid', reason: 'expired' })
    expect(expired.body.detail).toMatch(/expired/)

    const bare = `/v1/predictions/${id}/images/0`
    expect((await call(gw.url, 'GET', bare)).status).toBe(401)
    expect((await call(gw.url, 'GET', bare, { key: keys.other })).status).toBe(404)
    const owner = await request(`${gw.url}${bare}`, { headers: { authorization: `Bearer ${keys.owner}` } })
    expect(owner.statusCode).toBe(200)
    expect(owner.headers['cache-control']).toBe('private, max-age=86400, immutable')
    expect(owner.headers.etag).toMatch(new RegExp(`^"${id}-0-\\d+"$`))
    await owner.body.dump()
  })

  it('hands out fresh URLs on every read, and keeps one generated secret in the store', async () => {
    const read = await call(gw.url, 'GET', `/v1/predictions/${id}`, { key: keys.owner })
    expect(read.body.output).toEqual([signedImageUrl(gw.url, id, 0)])
    const cancel = await call(gw.url, 'POST', `/v1/predictions/${id}/cancel`, { key: keys.owner })
    expect(cancel.body.output).toEqual([signedImageUrl(gw.url, id, 0)])
    // A second instance on the same store signs alike: the URL the first handed out works there.
    const second = await startGateway({ env: { IMAGE_STORAGE_DIR: images }, overrides: { tenancy: { store } } })
    try {
      const res = await request(`${second.url}${new URL(signed).pathname}${new URL(signed).search}`)
      expect(res.statusCode).toBe(200)
      await res.body.dump()
    } finally {
      await second.close()
    }
  })

  it('uses IMAGE_URL_SECRET when set: URLs signed with another key fail', async () => {
    const other = await startGateway({ env: { IMAGE_URL_SECRET: 'x'.repeat(40) }, overrides: { tenancy: { store } } })
    try {
      const res = await call(other.url, 'GET', `${new URL(signed).pathname}${new URL(signed).search}`)
      expect(res.status).toBe(403)
      expect(res.body.code).toBe('signature_invalid')
    } finally {
      await other.close()
    }
  })
})
