import { BlobServiceClient } from '@azure/storage-blob'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAzureBlobImageStorage } from '../../src/tenancy/image-storage.ts'
import { BLOB_ACCOUNT, startFakeBlobStorage } from '../fakes/blob-storage.ts'
import type { FakeBlobStorage } from '../fakes/blob-storage.ts'

let blob: FakeBlobStorage
beforeAll(async () => { blob = await startFakeBlobStorage() })
afterAll(async () => { await blob.close() })

async function read (stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer))
  return Buffer.concat(chunks)
}

const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.from('not really an image, but bytes all the same')])

describe('kept images in Azure Blob Storage (the real SDK against a fake service)', () => {
  it('creates its container at start, and finds it there on the next start', async () => {
    const since = blob.requests.length
    await createAzureBlobImageStorage({ container: 'kept-start', connectionString: blob.connectionString })
    await createAzureBlobImageStorage({ container: 'kept-start', connectionString: blob.connectionString })
    const calls = blob.requests.slice(since)
    expect(calls.map((r) => [r.method, r.path, r.query.restype, r.status, r.errorCode])).toEqual([
      ['PUT', `/${BLOB_ACCOUNT}/kept-start`, 'container', 201, undefined],
      ['PUT', `/${BLOB_ACCOUNT}/kept-start`, 'container', 409, 'ContainerAlreadyExists']
    ])
    expect(blob.containers.has('kept-start')).toBe(true)
  })

  it('puts a block blob with its content type and gets the same bytes back', async () => {
    const images = await createAzureBlobImageStorage({ container: 'kept', connectionString: blob.connectionString })
    expect(images.kind).toBe('azure-blob')
    await images.put('abc123/0.png', png, 'image/png')
    await images.put('abc123/1.webp', Buffer.from('RIFF....WEBP'), 'image/webp')

    const upload = blob.requests.find((r) => r.method === 'PUT' && r.path === `/${BLOB_ACCOUNT}/kept/abc123/0.png`)!
    expect(upload.status).toBe(201)
    expect(upload.headers['x-ms-blob-type']).toBe('BlockBlob')
    expect(upload.headers['x-ms-blob-content-type']).toBe('image/png')
    expect(upload.headers.authorization).toMatch(new RegExp(`^SharedKey ${BLOB_ACCOUNT}:[A-Za-z0-9+/]+=*$`))
    expect(blob.blob('kept', 'abc123/0.png')).toMatchObject({ contentType: 'image/png', bytes: png })
    expect(blob.blob('kept', 'abc123/1.webp')?.contentType).toBe('image/webp')

    const got = await images.get('abc123/0.png')
    expect(got?.size).toBe(png.length)
    expect((await read(got!.body)).equals(png)).toBe(true)
    const download = blob.requests.findLast((r) => r.method === 'GET')!
    expect([download.path, download.status]).toEqual([`/${BLOB_ACCOUNT}/kept/abc123/0.png`, 200])
  })

  it('the service hands the stored content type and length back on download', async () => {
    await (await createAzureBlobImageStorage({ container: 'kept-type', connectionString: blob.connectionString }))
      .put('def456/0.jpg', Buffer.from('jpeg bytes'), 'image/jpeg')
    const sdk = BlobServiceClient.fromConnectionString(blob.connectionString).getContainerClient('kept-type').getBlockBlobClient('def456/0.jpg')
    const res = await sdk.download()
    expect(res.contentType).toBe('image/jpeg')
    expect(res.contentLength).toBe('jpeg bytes'.length)
    expect(String(await read(res.readableStreamBody!))).toBe('jpeg bytes')
  })

  it('a missing blob is undefined, after the service answered 404 BlobNotFound', async () => {
    const images = await createAzureBlobImageStorage({ container: 'kept-missing', connectionString: blob.connectionString })
    expect(await images.get('nothere/0.png')).toBeUndefined()
    const miss = blob.requests.findLast((r) => r.method === 'GET')!
    expect([miss.path, miss.status, miss.errorCode]).toEqual([`/${BLOB_ACCOUNT}/kept-missing/nothere/0.png`, 404, 'BlobNotFound'])
  })

  it('refuses a key it did not make before any request is sent', async () => {
    const images = await createAzureBlobImageStorage({ container: 'kept-keys', connectionString: blob.connectionString })
    const since = blob.requests.length
    await expect(images.put('../other/0.png', png, 'image/png')).rejects.toThrow(/unsafe image key/)
    await expect(images.get('abc/0.png?comp=list')).rejects.toThrow(/unsafe image key/)
    expect(blob.requests.length).toBe(since)
  })

  it('a wrong account key is refused by the service, and the error reaches the caller', async () => {
    const wrong = blob.connectionString.replace(/AccountKey=[^;]+/, `AccountKey=${Buffer.alloc(64, 7).toString('base64')}`)
    await expect(createAzureBlobImageStorage({ container: 'kept-wrong', connectionString: wrong })).rejects.toMatchObject({ statusCode: 403 })
    expect(blob.requests.at(-1)).toMatchObject({ status: 403, errorCode: 'AuthenticationFailed' })
    expect(blob.containers.has('kept-wrong')).toBe(false)
  })

  it('without a connection string or account URL it says which settings it needs', async () => {
    await expect(createAzureBlobImageStorage({ container: 'kept' })).rejects.toThrow(/IMAGE_STORAGE_AZURE_CONNECTION_STRING or IMAGE_STORAGE_AZURE_ACCOUNT_URL/)
  })
})
