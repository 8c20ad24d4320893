import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'

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

/** The few calls of @azure/storage-blob we use, so the dependency stays optional and typed. */
interface BlobClientLike {
  uploadData: (data: Buffer, opts: { blobHTTPHeaders: { blobContentType: string } }) => Promise<unknown>
  download: () => Promise<{ readableStreamBody?: NodeJS.ReadableStream, contentLength?: number }>
}
interface ContainerClientLike {
  createIfNotExists: () => Promise<unknown>
  getBlockBlobClient: (name: string) => BlobClientLike
}
interface BlobServiceClientLike {
  getContainerClient: (name: string) => ContainerClientLike
}
interface BlobModuleLike {
  BlobServiceClient: {
    new (url: string, credential: unknown): BlobServiceClientLike
    fromConnectionString: (cs: string) => BlobServiceClientLike
  }
}

export interface AzureBlobStorageOptions {
  container: string
  connectionString?: string | undefined
  /** With managed identity (DefaultAzureCredential) when no connection string is given. */
  accountUrl?: string | undefined
}

export async function createAzureBlobImageStorage (o: AzureBlobStorageOptions): Promise<ImageStorage> {
  // A variable specifier keeps the package optional: only deployments that use Blob Storage install it.
  const moduleName = '@azure/storage-blob'
  const blob = await import(moduleName) as BlobModuleLike
  let service: BlobServiceClientLike
  if (o.connectionString) {
    service = blob.BlobServiceClient.fromConnectionString(o.connectionString)
  } else if (o.accountUrl) {
    const { DefaultAzureCredential } = await import('@azure/identity')
    service = new blob.BlobServiceClient(o.accountUrl, new DefaultAzureCredential())
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
      try {
        const res = await container.getBlockBlobClient(checkKey(key)).download()
        if (!res.readableStreamBody) return undefined
        return { body: res.readableStreamBody as Readable, size: res.contentLength ?? 0 }
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 404) return undefined
        throw err
      }
    }
  }
}
