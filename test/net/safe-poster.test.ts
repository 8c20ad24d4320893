import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { UrlNotAllowedError } from '../../src/net/errors.ts'
import { createSafePoster } from '../../src/net/safe-fetch.ts'

describe('safe poster (reply webhooks)', () => {
  it('refuses by URL before any connection: scheme, credentials, forbidden literals, local names', () => {
    const poster = createSafePoster()
    expect(poster.violation('http://hooks.example.com/x')).toMatch(/scheme must be one of: https/)
    expect(poster.violation('https://user:pw@hooks.example.com/x')).toMatch(/credentials/)
    expect(poster.violation('https://169.254.169.254/latest')).toMatch(/forbidden address/)
    expect(poster.violation('https://[::1]/x')).toMatch(/forbidden address/)
    expect(poster.violation('https://metadata.google.internal/x')).toMatch(/local host name/)
    expect(poster.violation('not a url')).toMatch(/not a valid absolute URL/)
    expect(poster.violation('https://hooks.example.com/done')).toBeUndefined()
  })

  it('refuses a name that resolves to a private address, at connect time', async () => {
    const poster = createSafePoster({ lookup: async () => [{ address: '10.0.0.7', family: 4 }] })
    try {
      await expect(poster.post('https://hooks.example.com/done', { a: 1 })).rejects.toBeInstanceOf(UrlNotAllowedError)
    } finally {
      await poster.close()
    }
  })

  it('with allowPrivate, still refuses a name that resolves to a cloud metadata address, at connect time', async () => {
    const poster = createSafePoster({ allowedSchemes: ['https:', 'http:'], allowPrivate: true, lookup: async () => [{ address: '169.254.169.254', family: 4 }] })
    try {
      expect(poster.violation('http://hooks.example.com/done')).toBeUndefined()
      await expect(poster.post('http://hooks.example.com/done', { a: 1 })).rejects.toBeInstanceOf(UrlNotAllowedError)
    } finally {
      await poster.close()
    }
  })

  it('posts JSON to an allowed address and answers with the status, without following redirects', async () => {
    const seen: Array<{ method?: string, type?: string, extra?: string, body: string }> = []
    const server = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => { body += String(c) })
      req.on('end', () => {
        seen.push({ method: req.method, type: req.headers['content-type'], extra: req.headers['x-correlation-id'] as string | undefined, body })
        res.writeHead(seen.length === 1 ? 204 : 302, { location: 'http://169.254.169.254/' }).end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
    const poster = createSafePoster({ allowedSchemes: ['http:'], allowAddresses: ['127.0.0.1'] })
    try {
      expect(await poster.post(url, { id: 'p1' }, { 'x-correlation-id': 'c1' })).toBe(204)
      expect(await poster.post(url, { id: 'p2' })).toBe(302)
      expect(seen).toEqual([
        { method: 'POST', type: 'application/json', extra: 'c1', body: '{"id":"p1"}' },
        { method: 'POST', type: 'application/json', extra: undefined, body: '{"id":"p2"}' }
      ])
    } finally {
      await poster.close()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
