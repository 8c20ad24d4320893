import { createHash } from 'node:crypto'
import { formatTimestamp } from './clock.ts'
import { newFileId } from './ids.ts'

/**
 * The Files API (REFERENCE §1.8): multipart upload with a `content` part and an optional JSON
 * `metadata` part; files live 24 h, as the real one did.
 */

const FILE_LIFETIME_MS = 24 * 3_600_000

export interface StoredFile {
  id: string
  name: string
  contentType: string
  bytes: Buffer
  metadata: Record<string, unknown>
  createdAt: number
  expiresAt: number
}

export interface Upload {
  name: string
  contentType: string
  bytes: Buffer
  metadata: Record<string, unknown>
}

export interface FileStore {
  create(upload: Upload): StoredFile
  get(id: string): StoredFile | undefined
  delete(id: string): boolean
  list(): StoredFile[]
  clear(): void
}

export function createFileStore (now: () => number): FileStore {
  const files = new Map<string, StoredFile>()
  function live (id: string): StoredFile | undefined {
    const file = files.get(id)
    if (file && file.expiresAt <= now()) {
      files.delete(id)
      return undefined
    }
    return file
  }
  return {
    create (upload) {
      const createdAt = now()
      const file = { id: newFileId(), ...upload, createdAt, expiresAt: createdAt + FILE_LIFETIME_MS }
      files.set(file.id, file)
      return file
    },
    get: live,
    delete: (id) => live(id) !== undefined && files.delete(id),
    list: () => [...files.keys()].map(live).filter((f): f is StoredFile => f !== undefined).reverse(),
    clear: () => files.clear()
  }
}

export function fileView (file: StoredFile, baseUrl: string, precision: 'ms' | 'us' | 'ns'): Record<string, unknown> {
  const md5 = createHash('md5').update(file.bytes).digest('hex')
  return {
    id: file.id,
    name: file.name,
    content_type: file.contentType,
    size: file.bytes.length,
    etag: md5,
    checksums: { sha256: createHash('sha256').update(file.bytes).digest('hex'), md5 },
    metadata: file.metadata,
    created_at: formatTimestamp(file.createdAt, precision),
    expires_at: formatTimestamp(file.expiresAt, precision),
    urls: { get: `${baseUrl}/files/${file.id}` }
  }
}

export type UploadResult = { ok: true, upload: Upload } | { ok: false, detail: string }

/** Parses a multipart/form-data body (`content`, optional `metadata`, `filename`, `type`). */
export async function parseUpload (body: Buffer, contentType: string): Promise<UploadResult> {
  let form: FormData
  try {
    form = await new Response(body, { headers: { 'content-type': contentType } }).formData()
  } catch {
    return { ok: false, detail: 'Could not parse the multipart/form-data body' }
  }
  const content = form.get('content')
  if (!(content instanceof Blob)) return { ok: false, detail: 'The content field is required and must be a file' }
  let metadata: Record<string, unknown> = {}
  const rawMetadata = form.get('metadata')
  if (rawMetadata !== null) {
    const text = typeof rawMetadata === 'string' ? rawMetadata : await rawMetadata.text()
    try {
      const parsed: unknown = text === '' ? {} : JSON.parse(text)
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object')
      metadata = parsed as Record<string, unknown>
    } catch {
      return { ok: false, detail: 'metadata must be a JSON object' }
    }
  }
  const filename = form.get('filename')
  const type = form.get('type')
  const fileName = content instanceof File ? content.name : ''
  return {
    ok: true,
    upload: {
      name: typeof filename === 'string' && filename !== '' ? filename : fileName || 'file',
      contentType: typeof type === 'string' && type !== '' ? type : content.type || 'application/octet-stream',
      bytes: Buffer.from(await content.arrayBuffer()),
      metadata
    }
  }
}
