import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A fake Azure Blob service for the calls the image store makes, in the path-style addressing Azurite uses
 * (`http://127.0.0.1:<port>/<account>/<container>/<blob>`): Create Container (`PUT ?restype=container`, 201 or
 * 409 ContainerAlreadyExists), Put Blob (block blobs only), Get Blob (404 BlobNotFound when absent). Every request
 * must carry a Shared Key `Authorization` that the fake recomputes from the account key, as the service does;
 * a wrong one gets 403 AuthenticationFailed. It listens on 127.0.0.1 only.
 */

export const BLOB_ACCOUNT = 'devstoreaccount1'

export interface BlobRequest {
  method: string
  /** The path as sent, still URL-encoded. */
  path: string
  query: Record<string, string>
  headers: IncomingMessage['headers']
  /** The answer's status, and its x-ms-error-code when it was an error. */
  status: number
  errorCode: string | undefined
}

export interface StoredBlob {
  bytes: Buffer
  contentType: string
  etag: string
  lastModified: Date
}

export interface FakeBlobStorage {
  readonly port: number
  readonly accountKey: string
  /** `DefaultEndpointsProtocol=http;AccountName=…;AccountKey=…;BlobEndpoint=http://127.0.0.1:<port>/<account>;` */
  readonly connectionString: string
  readonly requests: BlobRequest[]
  readonly containers: Map<string, Map<string, StoredBlob>>
  blob: (container: string, name: string) => StoredBlob | undefined
  close: () => Promise<void>
}

const ERROR_MESSAGES: Record<string, string> = {
  AuthenticationFailed: 'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.',
  ContainerAlreadyExists: 'The specified container already exists.',
  ContainerNotFound: 'The specified container does not exist.',
  BlobNotFound: 'The specified blob does not exist.',
  InvalidHeaderValue: 'The value for one of the HTTP headers is not in the correct format.',
  MissingRequiredHeader: 'An HTTP header that\'s mandatory for this request is not specified.',
  UnsupportedHttpVerb: 'The resource doesn\'t support the specified HTTP verb.'
}

/** The query as the signature sees it: names lowercased, values decoded, repeated values sorted and comma-joined. */
function queryOf (search: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const [name, value] of new URLSearchParams(search)) {
    const key = name.toLowerCase()
    out.set(key, [...(out.get(key) ?? []), value])
  }
  return out
}

/** The StringToSign of the Shared Key scheme for the Blob service (versions 2015-02-21 and later). */
export function sharedKeyStringToSign (method: string, rawPath: string, search: string, headers: IncomingMessage['headers'], account = BLOB_ACCOUNT): string {
  const header = (name: string) => {
    const v = headers[name]
    return Array.isArray(v) ? v.join(',') : (v ?? '')
  }
  const contentLength = header('content-length')
  const canonicalHeaders = Object.keys(headers)
    .filter((name) => name.startsWith('x-ms-'))
    .sort()
    .map((name) => `${name}:${header(name).replace(/\s+/g, ' ').trim()}\n`)
    .join('')
  const query = queryOf(search)
  const canonicalResource = `/${account}${rawPath}` + [...query.keys()].sort()
    .map((name) => `\n${name}:${[...query.get(name)!].sort().join(',')}`)
    .join('')
  return [
    method.toUpperCase(),
    header('content-encoding'),
    header('content-language'),
    contentLength === '0' ? '' : contentLength,
    header('content-md5'),
    header('content-type'),
    header('date'),
    header('if-modified-since'),
    header('if-match'),
    header('if-none-match'),
    header('if-unmodified-since'),
    header('range')
  ].join('\n') + '\n' + canonicalHeaders + canonicalResource
}

export async function startFakeBlobStorage (opts: { accountKey?: string } = {}): Promise<FakeBlobStorage> {
  const accountKey = opts.accountKey ?? randomBytes(64).toString('base64')
  const requests: BlobRequest[] = []
  const containers = new Map<string, Map<string, StoredBlob>>()

  function answer (req: IncomingMessage, res: ServerResponse, record: BlobRequest, status: number, headers: Record<string, string> = {}, body?: Buffer) {
    record.status = status
    res.writeHead(status, {
      server: 'Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0',
      'x-ms-request-id': randomUUID(),
      'x-ms-version': String(req.headers['x-ms-version'] ?? '2025-11-05'),
      ...(req.headers['x-ms-client-request-id'] ? { 'x-ms-client-request-id': String(req.headers['x-ms-client-request-id']) } : {}),
      date: new Date().toUTCString(),
      'content-length': String(body?.length ?? 0),
      ...headers
    })
    res.end(req.method === 'HEAD' ? undefined : body)
  }

  function fail (req: IncomingMessage, res: ServerResponse, record: BlobRequest, status: number, code: string, detail?: string) {
    record.errorCode = code
    const message = `${ERROR_MESSAGES[code] ?? code}\nRequestId:${randomUUID()}\nTime:${new Date().toISOString()}`
    const xml = `\uFEFF<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message>${detail ? `<AuthenticationErrorDetail>${detail}</AuthenticationErrorDetail>` : ''}</Error>`
    answer(req, res, record, status, { 'content-type': 'application/xml', 'x-ms-error-code': code }, Buffer.from(xml))
  }

  function authorized (req: IncomingMessage, rawPath: string, search: string): string | undefined {
    const auth = req.headers.authorization
    const m = typeof auth === 'string' ? /^SharedKey ([^:]+):([A-Za-z0-9+/]+=*)$/.exec(auth) : null
    if (!m) return 'The Authorization header is missing or not of the form SharedKey <account>:<signature>.'
    if (m[1] !== BLOB_ACCOUNT) return `The account ${m[1]} is not ${BLOB_ACCOUNT}.`
    const date = Date.parse(String(req.headers['x-ms-date'] ?? req.headers.date ?? ''))
    if (!Number.isFinite(date) || Math.abs(Date.now() - date) > 15 * 60_000) return 'Request date header too old or missing.'
    const stringToSign = sharedKeyStringToSign(req.method!, rawPath, search, req.headers)
    const expected = createHmac('sha256', Buffer.from(accountKey, 'base64')).update(stringToSign, 'utf8').digest()
    const given = Buffer.from(m[2]!, 'base64')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return `The MAC signature found in the HTTP request '${m[2]}' is not the same as any computed signature. Server used following string to sign: '${stringToSign}'.`
    }
    return undefined
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const [rawPath = '/', search = ''] = (req.url ?? '/').split('?', 2)
      const query = Object.fromEntries(new URLSearchParams(search))
      const record: BlobRequest = { method: req.method ?? '', path: rawPath, query, headers: req.headers, status: 0, errorCode: undefined }
      requests.push(record)

      const denied = authorized(req, rawPath, search)
      if (denied) return fail(req, res, record, 403, 'AuthenticationFailed', denied)
      if (!req.headers['x-ms-version']) return fail(req, res, record, 400, 'MissingRequiredHeader')

      const [account, containerName, ...blobParts] = rawPath.slice(1).split('/').map(decodeURIComponent)
      if (account !== BLOB_ACCOUNT || !containerName) return fail(req, res, record, 400, 'InvalidUri')
      const blobName = blobParts.join('/')
      const container = containers.get(containerName)
      const now = new Date()

      if (!blobName) {
        if (req.method !== 'PUT' || query.restype !== 'container' || query.comp !== undefined) return fail(req, res, record, 405, 'UnsupportedHttpVerb')
        if (container) return fail(req, res, record, 409, 'ContainerAlreadyExists')
        containers.set(containerName, new Map())
        return answer(req, res, record, 201, { etag: `"0x${randomBytes(8).toString('hex').toUpperCase()}"`, 'last-modified': now.toUTCString() })
      }

      if (req.method === 'PUT' && query.comp === undefined) {
        if (req.headers['x-ms-blob-type'] !== 'BlockBlob') return fail(req, res, record, 400, 'InvalidHeaderValue')
        if (!container) return fail(req, res, record, 404, 'ContainerNotFound')
        const bytes = Buffer.concat(chunks)
        const blob: StoredBlob = {
          bytes,
          // Put Blob stores x-ms-blob-content-type, else the request's Content-Type.
          contentType: String(req.headers['x-ms-blob-content-type'] ?? req.headers['content-type'] ?? 'application/octet-stream'),
          etag: `"0x${randomBytes(8).toString('hex').toUpperCase()}"`,
          lastModified: now
        }
        container.set(blobName, blob)
        return answer(req, res, record, 201, {
          etag: blob.etag,
          'last-modified': now.toUTCString(),
          'content-md5': createHash('md5').update(bytes).digest('base64'),
          'x-ms-request-server-encrypted': 'true'
        })
      }

      if ((req.method === 'GET' || req.method === 'HEAD') && query.comp === undefined) {
        if (!container) return fail(req, res, record, 404, 'ContainerNotFound')
        const blob = container.get(blobName)
        if (!blob) return fail(req, res, record, 404, 'BlobNotFound')
        return answer(req, res, record, 200, {
          'content-type': blob.contentType,
          etag: blob.etag,
          'last-modified': blob.lastModified.toUTCString(),
          'accept-ranges': 'bytes',
          'x-ms-blob-type': 'BlockBlob',
          'x-ms-creation-time': blob.lastModified.toUTCString(),
          'x-ms-lease-state': 'available',
          'x-ms-lease-status': 'unlocked',
          'x-ms-server-encrypted': 'true'
        }, blob.bytes)
      }

      return fail(req, res, record, 405, 'UnsupportedHttpVerb')
    })
  })

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    port,
    accountKey,
    connectionString: `DefaultEndpointsProtocol=http;AccountName=${BLOB_ACCOUNT};AccountKey=${accountKey};BlobEndpoint=http://127.0.0.1:${port}/${BLOB_ACCOUNT};`,
    requests,
    containers,
    blob: (container, name) => containers.get(container)?.get(name),
    close () {
      // The SDK keeps connections alive; they would hold close() open.
      server.closeAllConnections()
      return new Promise<void>((resolve, reject) => server.close((err) => err ? reject(err) : resolve()))
    }
  }
}
