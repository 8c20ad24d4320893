import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server } from 'node:https'
import type { LookupAddress } from 'node:dns'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import { deflateSync, crc32 } from 'node:zlib'
import sharp from 'sharp'
import { request } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { makeImage } from '../net/helpers.ts'

/**
 * image-to-image inputs over HTTP: URLs that point inside (by literal, by name, by redirect) are refused before any
 * connection is made; images that are too big, of the wrong type or corrupt are refused; good images reach the model
 * as data URIs holding exactly the bytes that were checked. Nothing here connects anywhere but 127.0.0.1: every TCP
 * connection attempt in this process is watched, and one to any other address fails the suite before it is made.
 */

const MAX_BYTES = 64 * 1024

// ---- a guard on every TCP connection attempt ----------------------------------------------------------------

/** Addresses of every connection attempt that was not to 127.0.0.1 (each one was stopped). */
const offLimits: string[] = []

function watchSocket (message: unknown): void {
  const socket = (message as { socket: Socket }).socket
  socket.on('connectionAttempt', (ip: string, port: number) => {
    if (ip === '127.0.0.1') return
    offLimits.push(`${ip}:${port}`)
    // Thrown before the socket's connect call: the attempt never leaves the process, and the failure is loud.
    throw new Error(`connection attempt to ${ip}:${port} (only 127.0.0.1 is allowed in these tests)`)
  })
}

// ---- a fake resolver --------------------------------------------------------------------------------------------

const DNS: Record<string, LookupAddress[]> = {
  'private.example.com': [{ address: '10.0.0.1', family: 4 }],
  'metadata.example.com': [{ address: '169.254.169.254', family: 4 }],
  'router.example.com': [{ address: '192.168.1.1', family: 4 }],
  'loopback.example.com': [{ address: '127.0.0.1', family: 4 }],
  'loopback6.example.com': [{ address: '::1', family: 6 }],
  'aws-v6.example.com': [{ address: 'fd00:ec2::254', family: 6 }],
  'mapped.example.com': [{ address: '::ffff:169.254.169.254', family: 6 }],
  // One permitted (on the gateway that allows 127.0.0.1) and one forbidden address: the name is refused as a whole.
  'mixed.example.com': [{ address: '127.0.0.1', family: 4 }, { address: '10.0.0.1', family: 4 }]
}
const lookups: string[] = []

async function fakeLookup (hostname: string): Promise<LookupAddress[]> {
  lookups.push(hostname)
  const found = DNS[hostname]
  if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
  return found
}

// ---- a local https image server with a certificate made for this run --------------------------------------------

let certDir: string
let defaultCAs: string[]
let server: Server
let origin: string
const hits: string[] = []

let png: Buffer
let jpeg: Buffer
let gif: Buffer
let webp: Buffer
let bigPng: Buffer
/** Just over IMAGE_MAX_BYTES: as a data URI it still fits the image-to-image body limit. */
let slightlyBigPng: Buffer
let bombPng: Buffer

/** A PNG whose header claims `width`×`height` but whose pixel data is a few bytes: only decoding would show it. */
function pngClaiming (width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const out = Buffer.alloc(8 + data.length + 4)
    out.writeUInt32BE(data.length, 0)
    body.copy(out, 4)
    out.writeUInt32BE(crc32(body), 8 + data.length)
    return out
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr.writeUInt8(8, 8) // bit depth
  ihdr.writeUInt8(2, 9) // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.alloc(64))),
    chunk('IEND', Buffer.alloc(0))
  ])
}

function route (req: IncomingMessage, res: ServerResponse): void {
  hits.push(`${req.method} ${req.url}`)
  const send = (status: number, headers: Record<string, string | number>, body?: Buffer | string): void => {
    res.writeHead(status, headers)
    res.end(body)
  }
  switch (req.url) {
    case '/good.png': return send(200, { 'content-type': 'image/png', 'content-length': png.length }, png)
    case '/good.jpg': return send(200, { 'content-type': 'image/jpeg; charset=binary' }, jpeg)
    case '/good.webp': return send(200, { 'content-type': 'image/webp' }, webp)
    case '/alias.jpg': return send(200, { 'content-type': 'image/jpg' }, jpeg)
    case '/big.png': return send(200, { 'content-type': 'image/png', 'content-length': bigPng.length }, bigPng)
    case '/big-chunked.png': {
      // No Content-Length: the limit has to be enforced while reading.
      res.writeHead(200, { 'content-type': 'image/png' })
      let offset = 0
      const pump = (): void => {
        while (offset < bigPng.length) {
          const more = res.write(bigPng.subarray(offset, offset + 8192))
          offset += 8192
          if (!more) {
            res.once('drain', pump)
            return
          }
        }
        res.end()
      }
      res.on('error', () => {})
      return pump()
    }
    case '/bomb.png': return send(200, { 'content-type': 'image/png' }, bombPng)
    case '/page.html': return send(200, { 'content-type': 'text/html; charset=utf-8' }, '<html><body>not an image</body></html>')
    case '/no-type': return send(200, {}, png)
    case '/octet.png': return send(200, { 'content-type': 'application/octet-stream' }, png)
    case '/svg': return send(200, { 'content-type': 'image/svg+xml' }, '<svg xmlns="http://www.w3.org/2000/svg"/>')
    case '/gif-as.png': return send(200, { 'content-type': 'image/png' }, gif)
    case '/html-as.png': return send(200, { 'content-type': 'image/png' }, '<html><body>a lie</body></html>')
    case '/corrupt.png': return send(200, { 'content-type': 'image/png' }, Buffer.concat([png.subarray(0, 33), randomBytes(64)]))
    case '/truncated.png': return send(200, { 'content-type': 'image/png' }, png.subarray(0, png.length - 30))
    case '/missing.png': return send(404, { 'content-type': 'text/plain' }, 'not found')
    case '/to-metadata-http': return send(302, { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' })
    case '/to-metadata-https': return send(301, { location: 'https://169.254.169.254/latest/meta-data/' })
    case '/to-metadata-hex': return send(307, { location: 'https://0xa9fea9fe/latest/meta-data/' })
    case '/to-private-name': return send(302, { location: 'https://private.example.com/a.png' })
    case '/to-loopback6': return send(302, { location: 'https://[::1]/a.png' })
    case '/to-localhost': return send(302, { location: 'https://localhost/a.png' })
    case '/to-credentials': return send(302, { location: 'https://user:secret@127.0.0.1/good.png' })
    case '/to-good': return send(302, { location: '/good.png' })
    case '/loop': return send(302, { location: '/loop' })
    default: return send(404, {}, '')
  }
}

function makeCertificate (dir: string): { key: string, cert: string } {
  const keyFile = path.join(dir, 'key.pem')
  const certFile = path.join(dir, 'cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { stdio: 'ignore' })
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8') }
}

// ---- gateways ---------------------------------------------------------------------------------------------------

/** The production policy: https only, no exceptions. */
let strict: TestGateway
/** Also allows the local test server at 127.0.0.1 (any port), still https only. */
let local: TestGateway
/** Allows 127.0.0.1 and http as well, to show that the address policy alone still refuses. */
let lenient: TestGateway

const env = { DEFAULT_PLAN: 'basic', IMAGE_MAX_BYTES: String(MAX_BYTES), IMAGE_FETCH_TIMEOUT_MS: '5000' }

beforeAll(async () => {
  subscribe('net.client.socket', watchSocket)
  png = await makeImage('png', 40, 30)
  jpeg = await makeImage('jpeg', 48, 32)
  gif = await makeImage('gif', 10, 10)
  webp = await makeImage('webp', 24, 24)
  bigPng = await sharp(randomBytes(200 * 200 * 3), { raw: { width: 200, height: 200, channels: 3 } }).png().toBuffer()
  expect(bigPng.length).toBeGreaterThan(MAX_BYTES)
  slightlyBigPng = await sharp(randomBytes(152 * 150 * 3), { raw: { width: 152, height: 150, channels: 3 } }).png().toBuffer()
  expect(slightlyBigPng.length).toBeGreaterThan(MAX_BYTES)
  expect(slightlyBigPng.length).toBeLessThan(MAX_BYTES * 1.1)
  bombPng = pngClaiming(10_000, 10_000)

  certDir = mkdtempSync(path.join(tmpdir(), 'ssrf-test-'))
  const { key, cert } = makeCertificate(certDir)
  defaultCAs = tls.getCACertificates('default')
  tls.setDefaultCACertificates([...defaultCAs, cert])
  server = createServer({ key, cert }, route)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  strict = await startGateway({ env, overrides: { imageFetch: { lookup: fakeLookup } } })
  local = await startGateway({ env, overrides: { imageFetch: { lookup: fakeLookup, allowAddresses: ['127.0.0.1'] } } })
  lenient = await startGateway({
    env,
    overrides: { imageFetch: { lookup: fakeLookup, allowAddresses: ['127.0.0.1'], allowedSchemes: ['https:', 'http:'] } }
  })
})

afterAll(async () => {
  await Promise.all([strict?.close(), local?.close(), lenient?.close()])
  server?.closeAllConnections()
  await new Promise<void>((resolve) => server ? server.close(() => resolve()) : resolve())
  if (defaultCAs !== undefined) tls.setDefaultCACertificates(defaultCAs)
  if (certDir !== undefined) rmSync(certDir, { recursive: true, force: true })
  unsubscribe('net.client.socket', watchSocket)
})

beforeEach(() => {
  for (const gw of [strict, local, lenient]) gw.emulator.reset()
  hits.length = 0
  lookups.length = 0
  offLimits.length = 0
})

// ---- helpers ----------------------------------------------------------------------------------------------------

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Record<string, unknown>
}

async function imageToImage (gw: TestGateway, imageUrl: string, extra: Record<string, unknown> = {}): Promise<Answer> {
  const res = await request(`${gw.url}/v1/image-to-image`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'the same street at night', model: 'flux-dev', image_url: imageUrl, ...extra })
  })
  return { status: res.statusCode, headers: res.headers, body: await res.body.json() as Record<string, unknown> }
}

const creates = (gw: TestGateway) => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

/** A refusal naming image_url, with nothing sent upstream and no connection made anywhere but 127.0.0.1. */
function expectRefused (gw: TestGateway, res: Answer, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json(;|$)/)
  expect(res.body).toMatchObject({ type: `urn:flux-gateway:problem:${code}`, status, code })
  expect(res.body.errors).toEqual([{ field: 'image_url', message: expect.any(String) }])
  expect(gw.emulator.requests).toEqual([])
  expect(offLimits).toEqual([])
}

function dataUri (type: string, bytes: Buffer): string {
  return `data:${type};base64,${bytes.toString('base64')}`
}

// ---- refused by the URL alone -----------------------------------------------------------------------------------

describe('URLs refused before any lookup or connection', () => {
  it.each([
    ['http, any host', 'http://example.com/cat.png', 'validation_error'],
    ['http to the metadata service', 'http://169.254.169.254/latest/meta-data/', 'validation_error'],
    ['10.0.0.1', 'https://10.0.0.1/a.png', 'url_not_allowed'],
    ['192.168.1.1', 'https://192.168.1.1/a.png', 'url_not_allowed'],
    ['172.16.0.1', 'https://172.16.0.1/a.png', 'url_not_allowed'],
    ['100.64.0.1 (CGNAT)', 'https://100.64.0.1/a.png', 'url_not_allowed'],
    ['127.0.0.1', 'https://127.0.0.1/a.png', 'url_not_allowed'],
    ['127.0.0.1 on another port', 'https://127.0.0.1:8443/a.png', 'url_not_allowed'],
    ['127.255.255.254', 'https://127.255.255.254/a.png', 'url_not_allowed'],
    ['127.1 (short form)', 'https://127.1/a.png', 'url_not_allowed'],
    ['0x7f000001 (hex)', 'https://0x7f000001/a.png', 'url_not_allowed'],
    ['0x7f.1 (hex, short)', 'https://0x7f.1/a.png', 'url_not_allowed'],
    ['0177.0.0.1 (octal)', 'https://0177.0.0.1/a.png', 'url_not_allowed'],
    ['2130706433 (decimal)', 'https://2130706433/a.png', 'url_not_allowed'],
    ['0.0.0.0', 'https://0.0.0.0/a.png', 'url_not_allowed'],
    ['169.254.169.254 (cloud metadata)', 'https://169.254.169.254/latest/meta-data/', 'url_not_allowed'],
    ['0xa9fea9fe (metadata, hex)', 'https://0xa9fea9fe/latest/meta-data/', 'url_not_allowed'],
    ['2852039166 (metadata, decimal)', 'https://2852039166/latest/meta-data/', 'url_not_allowed'],
    ['169.254.170.2 (ECS task metadata)', 'https://169.254.170.2/v2/credentials', 'url_not_allowed'],
    ['100.100.100.200 (Alibaba metadata)', 'https://100.100.100.200/latest/meta-data/', 'url_not_allowed'],
    ['224.0.0.1 (multicast)', 'https://224.0.0.1/a.png', 'url_not_allowed'],
    ['255.255.255.255', 'https://255.255.255.255/a.png', 'url_not_allowed'],
    ['[::1]', 'https://[::1]/a.png', 'validation_error'],
    ['[fd00:ec2::254] (AWS metadata, IPv6)', 'https://[fd00:ec2::254]/latest/meta-data/', 'validation_error'],
    ['[fe80::1]', 'https://[fe80::1]/a.png', 'validation_error'],
    ['[::ffff:127.0.0.1]', 'https://[::ffff:127.0.0.1]/a.png', 'validation_error'],
    ['localhost', 'https://localhost/a.png', 'url_not_allowed'],
    ['LOCALHOST. (case, trailing dot)', 'https://LOCALHOST./a.png', 'url_not_allowed'],
    ['a .localhost name', 'https://images.localhost/a.png', 'url_not_allowed'],
    ['metadata.google.internal', 'https://metadata.google.internal/computeMetadata/v1/', 'url_not_allowed'],
    ['a .local name', 'https://printer.local/a.png', 'url_not_allowed'],
    ['a single-label name', 'https://intranet/a.png', 'url_not_allowed'],
    ['a non-default port', 'https://images.example.com:8443/a.png', 'url_not_allowed'],
    ['credentials in the URL', 'https://user:secret@images.example.com/a.png', 'validation_error']
  ])('%s → 400 naming image_url', async (_label, url, code) => {
    const res = await imageToImage(strict, url)
    expectRefused(strict, res, 400, code)
    expect(lookups).toEqual([])
  })

  it('the test server itself is refused by the production policy (and by http)', async () => {
    expectRefused(strict, await imageToImage(strict, `${origin}/good.png`), 400, 'url_not_allowed')
    expectRefused(strict, await imageToImage(strict, `${origin.replace('https:', 'http:')}/good.png`), 400, 'validation_error')
    expect(hits).toEqual([])
  })

  it('allowing 127.0.0.1 exempts exactly that address: 127.0.0.2 is still refused', async () => {
    expectRefused(local, await imageToImage(local, 'https://127.0.0.2/a.png'), 400, 'url_not_allowed')
    expectRefused(local, await imageToImage(local, 'https://127.0.0.2:8443/a.png'), 400, 'url_not_allowed')
  })
})

// ---- refused by what a name resolves to -------------------------------------------------------------------------

describe('names that resolve to forbidden addresses', () => {
  it.each([
    ['private.example.com', '10.0.0.1'],
    ['metadata.example.com', '169.254.169.254'],
    ['router.example.com', '192.168.1.1'],
    ['loopback.example.com', '127.0.0.1'],
    ['loopback6.example.com', '::1'],
    ['aws-v6.example.com', 'fd00:ec2::254'],
    ['mapped.example.com', '::ffff:169.254.169.254']
  ])('%s (→ %s) → 400 url_not_allowed, refused at lookup, nothing connected', async (host) => {
    const res = await imageToImage(strict, `https://${host}/a.png`)
    expectRefused(strict, res, 400, 'url_not_allowed')
    expect(lookups).toContain(host)
  })

  it('a name with one permitted and one forbidden address is refused as a whole', async () => {
    const res = await imageToImage(local, 'https://mixed.example.com/a.png')
    expectRefused(local, res, 400, 'url_not_allowed')
    expect(lookups).toContain('mixed.example.com')
  })

  it('a name that does not resolve is a 502, not a refusal of the caller\'s input', async () => {
    const res = await imageToImage(strict, 'https://nowhere.example.com/a.png')
    expect(res.status).toBe(502)
    expect(res.body.code).toBe('image_fetch_failed')
    expect(lookups).toContain('nowhere.example.com')
    expect(strict.emulator.requests).toEqual([])
    expect(offLimits).toEqual([])
  })
})

// ---- redirects --------------------------------------------------------------------------------------------------

describe('redirects from an allowed server', () => {
  it.each([
    ['/to-metadata-http', 'http://169.254.169.254/…'],
    ['/to-metadata-https', 'https://169.254.169.254/…'],
    ['/to-metadata-hex', 'https://0xa9fea9fe/…'],
    ['/to-loopback6', 'https://[::1]/…'],
    ['/to-localhost', 'https://localhost/…'],
    ['/to-credentials', 'https://user:secret@127.0.0.1/…']
  ])('%s (→ %s) → 400 url_not_allowed; only the first hop is requested', async (hop) => {
    const res = await imageToImage(local, `${origin}${hop}`)
    expectRefused(local, res, 400, 'url_not_allowed')
    expect(hits).toEqual([`GET ${hop}`])
    expect(lookups).toEqual([])
  })

  it('a redirect to a name that resolves to 10.0.0.1 → 400, refused at lookup', async () => {
    const res = await imageToImage(local, `${origin}/to-private-name`)
    expectRefused(local, res, 400, 'url_not_allowed')
    expect(hits).toEqual(['GET /to-private-name'])
    expect(lookups).toEqual(['private.example.com'])
  })

  it('with http allowed, a redirect to http://169.254.169.254/ is still refused, by its address', async () => {
    const res = await imageToImage(lenient, `${origin}/to-metadata-http`)
    expectRefused(lenient, res, 400, 'url_not_allowed')
    expect(res.body.detail).toMatch(/forbidden address/)
    expect(hits).toEqual(['GET /to-metadata-http'])
  })

  it('a redirect to an allowed place is followed (so the refusals above are about the destination)', async () => {
    const res = await imageToImage(local, `${origin}/to-good`)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(hits).toEqual(['GET /to-good', 'GET /good.png'])
    expect(creates(local)).toHaveLength(1)
    expect(creates(local)[0]!.body).toMatchObject({ input: { image: dataUri('image/png', png) } })
  })

  it('an endless redirect loop → 502 image_fetch_failed after a few hops, nothing upstream', async () => {
    const res = await imageToImage(local, `${origin}/loop`)
    expect(res.status).toBe(502)
    expect(res.body).toMatchObject({ code: 'image_fetch_failed', reason: 'redirect' })
    expect(hits.length).toBeGreaterThan(1)
    expect(hits.length).toBeLessThanOrEqual(4)
    expect(local.emulator.requests).toEqual([])
  })

  it('a 404 from the image server → 502 image_fetch_failed, nothing upstream', async () => {
    const res = await imageToImage(local, `${origin}/missing.png`)
    expect(res.status).toBe(502)
    expect(res.body).toMatchObject({ code: 'image_fetch_failed', reason: 'status', status: 502 })
    expect(local.emulator.requests).toEqual([])
  })
})

// ---- size and type of fetched images ----------------------------------------------------------------------------

describe('fetched images: size and type', () => {
  it('larger than IMAGE_MAX_BYTES, by Content-Length → 413 image_too_large', async () => {
    expectRefused(local, await imageToImage(local, `${origin}/big.png`), 413, 'image_too_large')
  })

  it('larger than IMAGE_MAX_BYTES, streamed without a Content-Length → 413 image_too_large', async () => {
    expectRefused(local, await imageToImage(local, `${origin}/big-chunked.png`), 413, 'image_too_large')
  })

  it.each([
    ['text/html', '/page.html'],
    ['no Content-Type', '/no-type'],
    ['application/octet-stream holding a PNG', '/octet.png'],
    ['image/svg+xml', '/svg'],
    ['a PNG header on a GIF', '/gif-as.png'],
    ['a PNG header on HTML', '/html-as.png']
  ])('%s → 415 unsupported_media_type', async (_label, file) => {
    expectRefused(local, await imageToImage(local, `${origin}${file}`), 415, 'unsupported_media_type')
  })

  it.each([
    ['corrupt after the header', '/corrupt.png'],
    ['cut short', '/truncated.png'],
    ['a pixel bomb (the header claims 100 megapixels)', '/bomb.png']
  ])('an image %s → 400 validation_error naming image_url', async (_label, file) => {
    expectRefused(local, await imageToImage(local, `${origin}${file}`), 400, 'validation_error')
  })
})

// ---- good images ------------------------------------------------------------------------------------------------

/** The bytes of a base64 data URI, after checking its media type. */
function bytesOf (uri: unknown, type: string): Buffer {
  expect(typeof uri).toBe('string')
  const prefix = `data:${type};base64,`
  expect((uri as string).startsWith(prefix)).toBe(true)
  return Buffer.from((uri as string).slice(prefix.length), 'base64')
}

describe('good images', () => {
  it.each([
    ['PNG', '/good.png', 'image/png', () => png],
    ['JPEG (with a charset parameter)', '/good.jpg', 'image/jpeg', () => jpeg],
    ['JPEG served as image/jpg', '/alias.jpg', 'image/jpeg', () => jpeg],
    ['WebP', '/good.webp', 'image/webp', () => webp]
  ])('a %s served over https → 200; flux-dev gets the very bytes served, as a data URI', async (_label, file, type, served) => {
    const res = await imageToImage(local, `${origin}${file}`)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body).toMatchObject({ status: 'succeeded', model: 'flux-dev', warnings: [] })
    expect(hits).toEqual([`GET ${file}`])
    const [create] = creates(local)
    expect(creates(local)).toHaveLength(1)
    expect(create!.path).toBe('/v1/models/black-forest-labs/flux-dev/predictions')
    const input = (create!.body as { input: Record<string, unknown> }).input
    expect(bytesOf(input.image, type).equals(served())).toBe(true)
    expect(JSON.stringify(create!.body)).not.toContain(origin)
    expect(offLimits).toEqual([])
  })

  it('flux-kontext-pro gets it as input_image', async () => {
    const res = await imageToImage(local, `${origin}/good.png`, { model: 'flux-kontext-pro' })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const input = (creates(local)[0]!.body as { input: Record<string, unknown> }).input
    expect(creates(local)[0]!.path).toBe('/v1/models/black-forest-labs/flux-kontext-pro/predictions')
    expect(bytesOf(input.input_image, 'image/png').equals(png)).toBe(true)
    expect(input.aspect_ratio).toBe('match_input_image')
  })

  it('a refused prompt is refused before the image is fetched', async () => {
    const res = await imageToImage(local, `${origin}/good.png`, { prompt: 'a nude figure in the street' })
    expect(res.status).toBe(422)
    expect(res.body.code).toBe('content_policy_violation')
    expect(hits).toEqual([])
    expect(local.emulator.requests).toEqual([])
  })

  it('a bad field is refused before the image is fetched', async () => {
    const res = await imageToImage(local, `${origin}/good.png`, { guidance_scale: 15 })
    expect(res.status).toBe(400)
    expect(res.body.errors).toEqual([{ field: 'guidance_scale', message: expect.any(String) }])
    expect(hits).toEqual([])
    expect(local.emulator.requests).toEqual([])
  })
})

// ---- data URIs --------------------------------------------------------------------------------------------------

describe('data: URI inputs', () => {
  it.each([
    ['PNG', 'image/png', () => png],
    ['JPEG', 'image/jpeg', () => jpeg],
    ['GIF', 'image/gif', () => gif],
    ['WebP', 'image/webp', () => webp]
  ])('a valid %s → 200, sent upstream unchanged, nothing fetched', async (_label, type, bytes) => {
    const uri = dataUri(type, bytes())
    const res = await imageToImage(strict, uri)
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    const input = (creates(strict)[0]!.body as { input: Record<string, unknown> }).input
    expect(input.image).toBe(uri)
    expect(lookups).toEqual([])
    expect(offLimits).toEqual([])
  })

  it.each([
    ['cut short', () => dataUri('image/png', png.subarray(0, png.length - 30))],
    ['corrupt after the header', () => dataUri('image/png', Buffer.concat([png.subarray(0, 33), randomBytes(64)]))],
    ['a pixel bomb (the header claims 100 megapixels)', () => dataUri('image/png', bombPng)],
    ['base64 of the wrong length', () => 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA'],
    ['an empty payload', () => 'data:image/png;base64,'],
    ['not base64', () => 'data:image/png,iVBORw0KGgo'],
    ['a type FLUX cannot read (SVG)', () => dataUri('image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))],
    ['a type FLUX cannot read (BMP)', () => dataUri('image/bmp', Buffer.from('BM'))]
  ])('%s → 400 validation_error naming image_url', async (_label, uri) => {
    expectRefused(strict, await imageToImage(strict, uri()), 400, 'validation_error')
  })

  it('larger than IMAGE_MAX_BYTES → 413 image_too_large', async () => {
    expectRefused(strict, await imageToImage(strict, dataUri('image/png', slightlyBigPng)), 413, 'image_too_large')
  })

  it('so large that the body passes the image-to-image body limit → 413 payload_too_large', async () => {
    // The body limit follows IMAGE_MAX_BYTES: base64 of that many bytes, plus 64 KiB.
    expect(dataUri('image/png', bigPng).length).toBeGreaterThan(Math.ceil(MAX_BYTES * 4 / 3) + 64 * 1024)
    const res = await imageToImage(strict, dataUri('image/png', bigPng))
    expect(res.status).toBe(413)
    expect(res.body).toMatchObject({ code: 'payload_too_large', status: 413 })
    expect(strict.emulator.requests).toEqual([])
  })

  it.each([
    ['JPEG bytes labelled PNG', () => dataUri('image/png', jpeg)],
    ['PNG bytes labelled GIF', () => dataUri('image/gif', png)],
    ['text labelled WebP', () => dataUri('image/webp', Buffer.from('RIFF....not really webp at all'))]
  ])('%s → 415 unsupported_media_type', async (_label, uri) => {
    expectRefused(strict, await imageToImage(strict, uri()), 415, 'unsupported_media_type')
  })
})
