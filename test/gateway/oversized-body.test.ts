import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LINGER } from '../../src/drain-refused-body.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway
let port: number

beforeAll(async () => {
  gw = await startGateway()
  port = Number(new URL(gw.url).port)
})
afterAll(async () => {
  await gw.close()
})

const head = (size: number, path = '/v1/text-to-image'): string =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${size}\r\n\r\n`

/** Writes `payload` in one go, as fetch and urllib do, ends its side, and collects all it reads until the close. */
function sendAtOnce (payload: Buffer): Promise<{ text: string, error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    let text = ''
    let error: string | undefined
    socket.on('data', (d) => { text += d.toString('latin1') })
    socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code })
    socket.on('close', () => resolve({ text, ...(error ? { error } : {}) }))
    socket.end(payload)
  })
}

/** The JSON bodies of the HTTP/1.1 responses in `text` (content-length framed). */
function responses (text: string): { status: number, body: Record<string, unknown> }[] {
  const out: { status: number, body: Record<string, unknown> }[] = []
  let rest = text
  while (rest.startsWith('HTTP/1.1')) {
    const end = rest.indexOf('\r\n\r\n')
    const headers = rest.slice(0, end)
    const length = Number(/content-length: (\d+)/i.exec(headers)![1])
    out.push({ status: Number(headers.slice(9, 12)), body: JSON.parse(rest.slice(end + 4, end + 4 + length)) })
    rest = rest.slice(end + 4 + length)
  }
  return out
}

describe('a body over the limit', () => {
  it.each([1_000_000, 20_000_000])('of %i bytes written at once is answered 413 payload_too_large, not reset', async (size) => {
    const { text, error } = await sendAtOnce(Buffer.concat([Buffer.from(head(size)), Buffer.alloc(size, 'a')]))
    expect(error).toBeUndefined()
    expect(responses(text)).toMatchObject([{ status: 413, body: { code: 'payload_too_large' } }])
  }, 30_000)

  it('sent by fetch is answered 413 payload_too_large', async () => {
    const res = await fetch(`${gw.url}/v1/text-to-image`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'a'.repeat(20_000_000) })
    expect(res.status).toBe(413)
    expect(await res.json()).toMatchObject({ code: 'payload_too_large', status: 413 })
  }, 30_000)

  it('leaves the connection usable once the body is read: the next request on it is answered', async () => {
    const size = 2_000_000
    const second = 'GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nconnection: close\r\n\r\n'
    const { text } = await sendAtOnce(Buffer.concat([Buffer.from(head(size)), Buffer.alloc(size, 'a'), Buffer.from(second)]))
    const answered = responses(text)
    expect(answered.map((r) => r.status)).toEqual([413, 200])
    expect(answered[1]!.body).toMatchObject({ status: 'ok' })
  }, 30_000)

  it('is read for a bounded amount only: a client that keeps writing is cut off past the bound', async () => {
    const declared = 4 * LINGER.maxBytes
    const chunk = Buffer.alloc(1024 * 1024, 'a')
    const written = await new Promise<number>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      let total = 0
      let ended = false
      const finish = (): void => {
        if (ended) return
        ended = true
        socket.destroy()
        resolve(total)
      }
      socket.on('error', finish)
      socket.on('close', finish)
      socket.on('data', () => {})
      socket.write(head(declared))
      const pump = (): void => {
        // Bounded: at most the declared size, 1 MiB at a time, waiting for the socket to drain.
        while (!ended && total < declared) {
          total += chunk.length
          if (!socket.write(chunk)) return void socket.once('drain', pump)
        }
        finish()
      }
      pump()
    })
    expect(written).toBeGreaterThanOrEqual(LINGER.maxBytes)
    expect(written).toBeLessThan(declared)
  }, 60_000)
})
