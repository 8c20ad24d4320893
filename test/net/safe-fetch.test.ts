import type { LookupAddress } from 'node:dns'
import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { AppError } from '../../src/errors.ts'
import { createSafeFetcher } from '../../src/net/safe-fetch.ts'
import type { SafeFetcher, SafeFetcherOptions } from '../../src/net/safe-fetch.ts'
import { makeImage, recordConnections, startServer } from './helpers.ts'
import type { TestServer } from './helpers.ts'

let png: Buffer
let jpeg: Buffer
let server: TestServer
/** Per-path behaviour of the test server, set by each test. */
let routes: Record<string, (res: ServerResponse) => void>
let connections: ReturnType<typeof recordConnections>
const fetchers: SafeFetcher[] = []

function fetcher (opts: SafeFetcherOptions = {}): SafeFetcher {
  const created = createSafeFetcher({ allowedSchemes: ['http:'], allowAddresses: ['127.0.0.1'], ...opts })
  fetchers.push(created)
  return created
}

function redirect (location: string, status = 302): (res: ServerResponse) => void {
  return (res) => {
    res.writeHead(status, { location })
    res.end()
  }
}

function image (bytes: Buffer, contentType: string): (res: ServerResponse) => void {
  return (res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': bytes.length })
    res.end(bytes)
  }
}

/** The coded error a promise rejects with. */
async function failure (promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(AppError)
  return err as AppError
}

const resolveTo = (...addresses: string[]) =>
  vi.fn(async (_hostname: string): Promise<LookupAddress[]> => addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })))

beforeAll(async () => {
  png = await makeImage('png')
  jpeg = await makeImage('jpeg')
  server = await startServer((req, res) => {
    const route = routes[new URL(req.url ?? '/', 'http://x').pathname]
    if (route === undefined) {
      res.writeHead(404)
      res.end()
      return
    }
    route(res)
  })
})

afterAll(async () => {
  await server.close()
})

beforeEach(() => {
  routes = {}
  server.hits.length = 0
  connections = recordConnections()
})

afterEach(async () => {
  connections.stop()
  await Promise.all(fetchers.splice(0).map((f) => f.close()))
})

describe('createSafeFetcher: success', () => {
  it('returns the bytes, the sniffed type and the final URL', async () => {
    routes['/a.png'] = image(png, 'image/png')
    const result = await fetcher().fetch(`${server.origin}/a.png`)
    expect(result.bytes.equals(png)).toBe(true)
    expect(result.contentType).toBe('image/png')
    expect(result.finalUrl).toBe(`${server.origin}/a.png`)
  })

  it('reads the media type from a Content-Type with parameters, case and the image/jpg alias', async () => {
    routes['/a.jpg'] = image(jpeg, 'Image/JPG; charset=binary')
    const result = await fetcher().fetch(`${server.origin}/a.jpg`)
    expect(result.contentType).toBe('image/jpeg')
  })

  it('follows a relative redirect and reports the final URL', async () => {
    routes['/start'] = redirect('/img/a.png', 301)
    routes['/img/a.png'] = image(png, 'image/png')
    const result = await fetcher().fetch(`${server.origin}/start`)
    expect(result.finalUrl).toBe(`${server.origin}/img/a.png`)
    expect(server.hits).toEqual(['GET /start', 'GET /img/a.png'])
  })

  it('follows exactly maxRedirects hops', async () => {
    routes['/r1'] = redirect('/r2', 307)
    routes['/r2'] = redirect('/r3', 308)
    routes['/r3'] = redirect('/a.png', 303)
    routes['/a.png'] = image(png, 'image/png')
    const result = await fetcher({ maxRedirects: 3 }).fetch(`${server.origin}/r1`)
    expect(result.finalUrl).toBe(`${server.origin}/a.png`)

    const err = await failure(fetcher({ maxRedirects: 2 }).fetch(`${server.origin}/r1`))
    expect(err.code).toBe('image_fetch_failed')
    expect(err.extra).toEqual({ reason: 'redirect' })
  })

  it('connects to the address the lookup returns (Host header unchanged)', async () => {
    let host: string | undefined
    const lookup = resolveTo('127.0.0.1')
    const captured = await startServer((req, res) => {
      host = req.headers.host
      image(png, 'image/png')(res)
    })
    try {
      const result = await fetcher({ lookup }).fetch(`http://images.test:${captured.port}/a.png`)
      expect(result.contentType).toBe('image/png')
      expect(host).toBe(`images.test:${captured.port}`)
      expect(lookup).toHaveBeenCalledWith('images.test')
    } finally {
      await captured.close()
    }
  })
})

describe('createSafeFetcher: forbidden destinations are refused before connecting', () => {
  it.each([
    'http://169.254.169.254/latest/meta-data',
    'http://2852039166/latest/meta-data',
    'http://[::ffff:a9fe:a9fe]/latest/meta-data',
    'http://[fd00:ec2::254]/latest/meta-data',
    'http://0x7f.2/',
    'http://2130706434/',
    'http://10.0.0.1/',
    'http://[::1]/',
    'http://localhost/',
    'file:///etc/passwd',
    'ftp://example.com/a.png'
  ])('a redirect to %s', async (target) => {
    routes['/go'] = redirect(target)
    const err = await failure(fetcher().fetch(`${server.origin}/go`))
    expect(err.code).toBe('url_not_allowed')
    expect(err.statusCode).toBe(400)
    expect(err.message).toMatch(/^A redirect was refused/)
    expect(server.hits).toEqual(['GET /go'])
    // The only host undici ever tried to reach is the test server.
    expect(new Set(connections.attempts)).toEqual(new Set(['127.0.0.1']))
  })

  it('a first URL at a forbidden literal', async () => {
    const err = await failure(fetcher().fetch('http://169.254.169.254/latest/meta-data'))
    expect(err.code).toBe('url_not_allowed')
    expect(connections.attempts).toEqual([])
  })

  it('a host name that resolves to a private address', async () => {
    const lookup = resolveTo('10.0.0.1')
    const err = await failure(fetcher({ lookup }).fetch('http://evil.test/a.png'))
    expect(err.code).toBe('url_not_allowed')
    expect(err.message).toBe('The URL points to a forbidden address.')
    expect(lookup).toHaveBeenCalledWith('evil.test')
    expect(connections.connected).toEqual([])
  })

  it('a host name that resolves to another loopback address or to ::1', async () => {
    for (const address of ['127.0.0.2', '::1']) {
      const lookup = resolveTo(address)
      const err = await failure(fetcher({ lookup }).fetch(`http://loop.test:${server.port}/a.png`))
      expect(err.code).toBe('url_not_allowed')
      expect(lookup).toHaveBeenCalledWith('loop.test')
    }
    expect(connections.connected).toEqual([])
  })

  it('a host name with one forbidden address among allowed ones', async () => {
    const lookup = resolveTo('127.0.0.1', '169.254.169.254')
    const err = await failure(fetcher({ lookup }).fetch(`http://mixed.test:${server.port}/a.png`))
    expect(err.code).toBe('url_not_allowed')
    expect(server.hits).toEqual([])
    expect(connections.connected).toEqual([])
  })

  it('a host name resolving to an IPv4-mapped private address', async () => {
    const lookup = resolveTo('::ffff:192.168.0.10')
    const err = await failure(fetcher({ lookup }).fetch('http://mapped.test/a.png'))
    expect(err.code).toBe('url_not_allowed')
    expect(connections.connected).toEqual([])
  })

  it('a redirect to a host name that resolves to a private address', async () => {
    routes['/go'] = redirect('http://rebind.test/latest/meta-data')
    const lookup = resolveTo('169.254.169.254')
    const err = await failure(fetcher({ lookup }).fetch(`${server.origin}/go`))
    expect(err.code).toBe('url_not_allowed')
    expect(lookup).toHaveBeenCalledWith('rebind.test')
    expect(connections.connected).toEqual(['127.0.0.1'])
  })

  it('DNS rebinding: every new connection is checked on the address it connects to', async () => {
    routes['/a.png'] = (res) => {
      res.writeHead(200, { 'content-type': 'image/png', connection: 'close' })
      res.end(png)
    }
    const answers = ['127.0.0.1', '10.0.0.1']
    const lookup = vi.fn(async (): Promise<LookupAddress[]> => [{ address: answers.shift() ?? '10.0.0.1', family: 4 }])
    const f = fetcher({ lookup })
    const url = `http://flip.test:${server.port}/a.png`
    expect((await f.fetch(url)).contentType).toBe('image/png')
    const err = await failure(f.fetch(url))
    expect(err.code).toBe('url_not_allowed')
    expect(lookup).toHaveBeenCalledTimes(2)
    expect(server.hits).toEqual(['GET /a.png'])
  })

  it('loopback without an exemption, and http by default', async () => {
    const strict = createSafeFetcher({ allowedSchemes: ['http:', 'https:'] })
    fetchers.push(strict)
    const err = await failure(strict.fetch(`${server.origin}/a.png`))
    expect(err.code).toBe('url_not_allowed')
    const defaults = createSafeFetcher()
    fetchers.push(defaults)
    const scheme = await failure(defaults.fetch(`${server.origin}/a.png`))
    expect(scheme.code).toBe('url_not_allowed')
    expect(scheme.message).toBe('The URL scheme must be one of: https.')
    expect(server.hits).toEqual([])
    expect(connections.attempts).toEqual([])
  })

  it('URLs with credentials and unparsable URLs', async () => {
    const f = fetcher()
    expect((await failure(f.fetch(`http://user:secret@127.0.0.1:${server.port}/a.png`))).code).toBe('url_not_allowed')
    expect((await failure(f.fetch('not a url'))).code).toBe('url_not_allowed')
    expect(server.hits).toEqual([])
  })
})

describe('createSafeFetcher: allowedHosts', () => {
  it('refuses hosts the predicate rejects, before connecting', async () => {
    const allowedHosts = vi.fn((host: string) => host === 'replicate.delivery')
    const err = await failure(fetcher({ allowedHosts }).fetch(`${server.origin}/a.png`))
    expect(err.code).toBe('url_not_allowed')
    expect(err.message).toBe('The URL host is not allowed.')
    expect(allowedHosts).toHaveBeenCalledWith('127.0.0.1')
    expect(connections.attempts).toEqual([])
  })

  it('checks every redirect hop', async () => {
    routes['/a.png'] = image(png, 'image/png')
    routes['/go'] = redirect(`http://elsewhere.test:${server.port}/a.png`)
    const lookup = resolveTo('127.0.0.1')
    const allowedHosts = (host: string): boolean => host === '127.0.0.1'
    expect((await fetcher({ allowedHosts, lookup }).fetch(`${server.origin}/a.png`)).contentType).toBe('image/png')
    const err = await failure(fetcher({ allowedHosts, lookup }).fetch(`${server.origin}/go`))
    expect(err.code).toBe('url_not_allowed')
    expect(err.message).toBe('A redirect was refused: The URL host is not allowed.')
    expect(lookup).not.toHaveBeenCalled()
  })
})

describe('createSafeFetcher: failures', () => {
  it('stops a redirect loop after maxRedirects', async () => {
    routes['/loop'] = redirect('/loop')
    const err = await failure(fetcher().fetch(`${server.origin}/loop`))
    expect(err.code).toBe('image_fetch_failed')
    expect(err.statusCode).toBe(502)
    expect(err.extra).toEqual({ reason: 'redirect' })
    // The first request plus the default three redirects.
    expect(server.hits).toHaveLength(4)
  })

  it('reports a redirect without a Location', async () => {
    routes['/bad'] = (res) => {
      res.writeHead(302)
      res.end()
    }
    const err = await failure(fetcher().fetch(`${server.origin}/bad`))
    expect(err.code).toBe('image_fetch_failed')
    expect(err.extra).toEqual({ reason: 'redirect' })
  })

  it('reports a non-2xx answer with its status', async () => {
    const err = await failure(fetcher().fetch(`${server.origin}/missing.png`))
    expect(err.code).toBe('image_fetch_failed')
    expect(err.extra).toEqual({ reason: 'status', upstreamStatus: 404 })
  })

  it('reports an unreachable source as a network failure', async () => {
    const closed = await startServer(() => undefined)
    await closed.close()
    const err = await failure(fetcher().fetch(`${closed.origin}/a.png`))
    expect(err.code).toBe('image_fetch_failed')
    expect(err.extra).toEqual({ reason: 'network' })
  })
})

describe('createSafeFetcher: size and type', () => {
  it('aborts a body that grows past maxBytes mid-stream', async () => {
    let written = 0
    let closed: Promise<unknown> | undefined
    routes['/endless.png'] = (res) => {
      closed = once(res, 'close')
      res.writeHead(200, { 'content-type': 'image/png' })
      res.write(png.subarray(0, 8))
      const chunk = Buffer.alloc(16 * 1024, 1)
      const pump = (): void => {
        while (!res.destroyed && written < 64 * 1024 * 1024) {
          written += chunk.length
          if (!res.write(chunk)) {
            res.once('drain', pump)
            return
          }
        }
      }
      pump()
    }
    const err = await failure(fetcher({ maxBytes: 100 * 1024 }).fetch(`${server.origin}/endless.png`))
    expect(err.code).toBe('image_too_large')
    expect(err.statusCode).toBe(413)
    expect(err.extra).toEqual({ maxBytes: 100 * 1024 })
    // The server sees the connection drop long before it could finish writing.
    await closed
    expect(written).toBeLessThan(64 * 1024 * 1024)
  })

  it('refuses a declared Content-Length above maxBytes without reading the body', async () => {
    routes['/big.png'] = (res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10_000_000 })
      res.write(png)
    }
    const started = Date.now()
    const err = await failure(fetcher({ maxBytes: 1000 }).fetch(`${server.origin}/big.png`))
    expect(err.code).toBe('image_too_large')
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('accepts a body of exactly maxBytes', async () => {
    routes['/a.png'] = image(png, 'image/png')
    const result = await fetcher({ maxBytes: png.length }).fetch(`${server.origin}/a.png`)
    expect(result.bytes.length).toBe(png.length)
    const err = await failure(fetcher({ maxBytes: png.length - 1 }).fetch(`${server.origin}/a.png`))
    expect(err.code).toBe('image_too_large')
  })

  it.each([
    ['a non-image Content-Type', 'text/html', () => Buffer.from('<html></html>')],
    ['no Content-Type', undefined, () => png],
    ['JPEG bytes labelled PNG', 'image/png', () => jpeg],
    ['HTML labelled PNG', 'image/png', () => Buffer.from('<html><body>hello</body></html>')],
    ['SVG (not accepted)', 'image/svg+xml', () => Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>')],
    ['an empty body', 'image/png', () => Buffer.alloc(0)]
  ])('refuses %s', async (_label, contentType, body) => {
    routes['/x'] = (res) => {
      res.writeHead(200, contentType === undefined ? {} : { 'content-type': contentType })
      res.end(body())
    }
    const err = await failure(fetcher().fetch(`${server.origin}/x`))
    expect(err.code).toBe('unsupported_media_type')
    expect(err.statusCode).toBe(415)
  })

  it('says that an image is not the type its Content-Type declares, rather than listing the types', async () => {
    routes['/lies.png'] = image(jpeg, 'image/png')
    routes['/text.png'] = image(Buffer.from('hello, this is not an image'), 'image/png')
    const lies = await failure(fetcher().fetch(`${server.origin}/lies.png`))
    expect([lies.code, lies.statusCode]).toEqual(['unsupported_media_type', 415])
    expect(lies.message).toBe('The image is not a valid PNG image, as its Content-Type declares: its bytes are JPEG data.')
    const text = await failure(fetcher().fetch(`${server.origin}/text.png`))
    expect(text.message).toBe('The image is not a valid PNG image, as its Content-Type declares: its bytes are not PNG, JPEG, WebP or GIF data.')
  })

  it('honours allowedContentTypes', async () => {
    routes['/a.jpg'] = image(jpeg, 'image/jpeg')
    const err = await failure(fetcher({ allowedContentTypes: ['image/png'] }).fetch(`${server.origin}/a.jpg`))
    expect(err.code).toBe('unsupported_media_type')
    expect(err.extra).toEqual({ allowedTypes: ['image/png'] })
    expect(() => createSafeFetcher({ allowedContentTypes: ['image/svg+xml'] })).toThrow(TypeError)
  })
})

describe('createSafeFetcher: deadlines and cancellation', () => {
  it('times out a server that never answers', async () => {
    routes['/hang'] = () => undefined
    const started = Date.now()
    const err = await failure(fetcher({ timeoutMs: 200 }).fetch(`${server.origin}/hang`))
    expect(err.code).toBe('image_fetch_timeout')
    expect(err.statusCode).toBe(504)
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('times out a body that trickles', async () => {
    routes['/slow.png'] = (res) => {
      res.writeHead(200, { 'content-type': 'image/png' })
      res.write(png.subarray(0, 8))
    }
    const err = await failure(fetcher({ timeoutMs: 200 }).fetch(`${server.origin}/slow.png`))
    expect(err.code).toBe('image_fetch_timeout')
  })

  it("rejects with the caller's abort reason, not a coded error", async () => {
    routes['/hang'] = () => undefined
    const controller = new AbortController()
    const reason = new Error('client went away')
    const pending = fetcher({ timeoutMs: 5000 }).fetch(`${server.origin}/hang`, { signal: controller.signal })
    setTimeout(() => controller.abort(reason), 50)
    await expect(pending).rejects.toBe(reason)
  })

  it('does not start when the signal is already aborted', async () => {
    const controller = new AbortController()
    controller.abort(new Error('already'))
    await expect(fetcher().fetch(`${server.origin}/a.png`, { signal: controller.signal })).rejects.toThrow('already')
    expect(server.hits).toEqual([])
  })
})
