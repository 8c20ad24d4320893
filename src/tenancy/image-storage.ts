import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import type { BlobDownloadResponseParsed, BlobServiceClient } from '@azure/storage-blob'
import { isRestError } from '../vault/failure.ts'

/**
 * Where kept images live: a local directory by default, Azure Blob Storage when configured. Keys are
 * `<prediction id>/<index>.<ext>`, made by us, never by a caller.
 */
export interface ImageStorage {
  readonly kind: string
  put: (key: string, bytes: Buffer, contentType: string) => Promise<void>
  /** The stored image, or undefined when it is not there. */
  get: (key: string) => Promise<{ body: Readable, size: number } | undefined>
}

const SAFE_KEY = /^[a-z0-9]{1,64}\/\d{1,2}\.(png|jpg|webp|gif)$/

function checkKey (key: string): string {
  if (!SAFE_KEY.test(key)) throw new Error(`unsafe image key ${JSON.stringify(key)}`)
  return key
}

export function createLocalImageStorage (dir: string): ImageStorage {
  const root = path.resolve(dir)
  return {
    kind: 'local',
    async put (key, bytes) {
      const file = path.join(root, checkKey(key))
      await mkdir(path.dirname(file), { recursive: true })
      // Written aside and renamed, so a reader never sees half an image.
      const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
      await writeFile(tmp, bytes)
      await rename(tmp, file)
    },
    async get (key) {
      const file = path.join(root, checkKey(key))
      try {
        // Read whole (kept images are bounded by KEPT_IMAGE_MAX_BYTES): a file stream piped into the
        // reply now and then never finished the response, which held the connection and close() forever.
        const bytes = await readFile(file)
        return { body: Readable.from([bytes]), size: bytes.length }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw err
      }
    }
  }
}

export interface AzureBlobStorageOptions {
  container: string
  connectionString?: string | undefined
  /** With managed identity (DefaultAzureCredential) when no connection string is given. */
  accountUrl?: string | undefined
}

export async function createAzureBlobImageStorage (o: AzureBlobStorageOptions): Promise<ImageStorage> {
  // The Blob SDK is loaded only where Blob storage is configured (it was the heaviest import of start-up).
  const { BlobServiceClient } = await import('@azure/storage-blob')
  let service: BlobServiceClient
  if (o.connectionString) {
    service = BlobServiceClient.fromConnectionString(o.connectionString)
  } else if (o.accountUrl) {
    // Loaded only here: deployments with a connection string never pull in the identity stack.
    const { DefaultAzureCredential } = await import('@azure/identity')
    service = new BlobServiceClient(o.accountUrl, new DefaultAzureCredential())
  } else {
    throw new Error('IMAGE_STORAGE=azure-blob needs IMAGE_STORAGE_AZURE_CONNECTION_STRING or IMAGE_STORAGE_AZURE_ACCOUNT_URL')
  }
  const container = service.getContainerClient(o.container)
  await container.createIfNotExists()
  return {
    kind: 'azure-blob',
    async put (key, bytes, contentType) {
      await container.getBlockBlobClient(checkKey(key)).uploadData(bytes, { blobHTTPHeaders: { blobContentType: contentType } })
    },
    async get (key) {
      let res: BlobDownloadResponseParsed
      try {
        res = await container.getBlockBlobClient(checkKey(key)).download()
      } catch (err) {
        if (isRestError(err) && err.statusCode === 404) return undefined
        throw err
      }
      if (!res.readableStreamBody) return undefined
      // Read whole, as the local store does: a download that breaks midway then fails before the reply
      // has sent a byte, and the length we announce is the length we send.
      const chunks: Buffer[] = []
      for await (const chunk of res.readableStreamBody) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
      const bytes = Buffer.concat(chunks)
      return { body: Readable.from([bytes]), size: bytes.length }
    }
  }
}
