import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import { BLOB_ACCOUNT, startFakeBlobStorage } from '../fakes/blob-storage.ts'
import type { FakeBlobStorage } from '../fakes/blob-storage.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { call, signedImageUrl, storeWithKeys } from './helpers.ts'

let blob: FakeBlobStorage
let gw: TestGateway
let store: StateStore
let key: string

beforeAll(async () => {
  blob = await startFakeBlobStorage()
  const made = await storeWithKeys({ k: { plan: 'premium' } })
  store = made.store
  key = made.keys.k
  gw = await startGateway({
    env: {
      IMAGE_STORAGE: 'azure-blob',
      IMAGE_STORAGE_AZURE_CONNECTION_STRING: blob.connectionString,
      IMAGE_STORAGE_AZURE_CONTAINER: 'gateway-images'
    },
    overrides: { tenancy: { store } }
  })
})
afterAll(async () => {
  await gw?.close()
  await store?.close()
  await blob?.close()
})

describe('a gateway keeping images in Azure Blob Storage', () => {
  it('keeps the generated image in the container and serves it after Replicate expired its copy', async () => {
    expect(blob.containers.has('gateway-images')).toBe(true)
    // The gateway's copy of the image is slow, as on a busy machine: nothing below depends on how long it takes.
    gw.emulator.inject({ kind: 'delay', delayMs: 600, method: 'GET', path: /^\/delivery\// })
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a lighthouse kept in a blob', model: 'flux-schnell', output_format: 'png' } })
    expect(res.status).toBe(200)
    const id = res.body.id as string
    expect(res.body.output).toEqual([signedImageUrl(gw.url, id, 0)])

    const upstreamId = await gw.upstreamId(id)
    const upstreamUrl = (gw.emulator.getPrediction(upstreamId)!.output as string[])[0]!
    const original = Buffer.from(await (await request(upstreamUrl)).body.arrayBuffer())
    expect(blob.blob('gateway-images', `${id}/0.png`)).toMatchObject({ contentType: 'image/png', bytes: original })

    // Replicate removes its copy an hour after completion: ended here on demand, not raced against a short timer.
    expect(gw.emulator.expireOutput(upstreamId)).toBe(true)
    expect((await request(upstreamUrl)).statusCode).toBe(404)

    const kept = await request(`${gw.url}/v1/predictions/${id}/images/0`, { headers: { authorization: `Bearer ${key}` } })
    expect(kept.statusCode).toBe(200)
    expect(kept.headers['content-type']).toBe('image/png')
    expect(kept.headers['content-length']).toBe(String(original.length))
    expect(Buffer.from(await kept.body.arrayBuffer()).equals(original)).toBe(true)
    expect(blob.requests.findLast((r) => r.method === 'GET')).toMatchObject({ path: `/${BLOB_ACCOUNT}/gateway-images/${id}/0.png`, status: 200 })
  })

  it('an image gone from the container is a 404, not a 500', async () => {
    const res = await call(gw.url, 'POST', '/v1/text-to-image', { key, body: { prompt: 'a lighthouse that will be lost', model: 'flux-schnell', output_format: 'png' } })
    expect(res.status).toBe(200)
    const id = res.body.id as string
    blob.containers.get('gateway-images')!.delete(`${id}/0.png`)
    const gone = await call(gw.url, 'GET', `/v1/predictions/${id}/images/0`, { key })
    expect(gone.status).toBe(404)
    expect(gone.body).toMatchObject({ code: 'not_found' })
    expect(blob.requests.at(-1)).toMatchObject({ method: 'GET', status: 404, errorCode: 'BlobNotFound' })
  })

  it('every request reached the fake signed with the account key', () => {
    expect(blob.requests.length).toBeGreaterThanOrEqual(4)
    for (const r of blob.requests) expect(r.errorCode).not.toBe('AuthenticationFailed')
  })
})
