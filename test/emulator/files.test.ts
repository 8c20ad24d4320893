import { createHash } from 'node:crypto'
import Replicate from 'replicate'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Emulator } from '../../src/emulator/index.ts'
import { api, startFastEmulator } from './helpers.ts'

/** The Files API (REFERENCE §1.8) through the official client and raw HTTP. */

let emu: Emulator
let replicate: Replicate

beforeAll(async () => {
  emu = await startFastEmulator()
  replicate = new Replicate({ auth: emu.token, baseUrl: emu.baseUrl })
})
afterAll(async () => emu.close())

describe('files', () => {
  it('create (201) with metadata, get, list, delete (204), then 404', async () => {
    const bytes = Buffer.from('hello files')
    const file = await replicate.files.create(new Blob([new Uint8Array(bytes)], { type: 'text/plain' }), { customer: 42 })
    expect(file).toMatchObject({
      content_type: 'text/plain',
      size: bytes.length,
      metadata: { customer: 42 },
      checksums: { sha256: createHash('sha256').update(bytes).digest('hex'), md5: createHash('md5').update(bytes).digest('hex') },
      urls: { get: `${emu.baseUrl}/files/${file.id}` }
    })
    expect(Date.parse(String(file.expires_at)) - Date.parse(file.created_at)).toBe(24 * 3_600_000)
    const create = emu.requests.find((r) => r.method === 'POST' && r.path === '/v1/files')
    expect(String(create?.headers['content-type'])).toMatch(/^multipart\/form-data; boundary=/)

    expect(await replicate.files.get(file.id)).toEqual(file)
    expect((await replicate.files.list()).results.map((f) => f.id)).toContain(file.id)

    const deleted = await fetch(`${emu.baseUrl}/files/${file.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${emu.token}` } })
    expect(deleted.status).toBe(204)
    const gone = await api(emu, 'GET', `/files/${file.id}`)
    expect(gone.status).toBe(404)
    expect((await api(emu, 'DELETE', `/files/${file.id}`)).status).toBe(404)
  })

  it('a Buffer upload gets a generated name and octet-stream type', async () => {
    const file = await replicate.files.create(Buffer.from([1, 2, 3]))
    expect(file.content_type).toBe('application/octet-stream')
    // The client's FileObject type omits `name`; the raw object has it.
    expect((await api(emu, 'GET', `/files/${file.id}`)).body.name).toMatch(/^buffer_\d+$/)
    expect(file.size).toBe(3)
  })

  it('rejects a body that is not multipart, or lacks the content part', async () => {
    const notMultipart = await api(emu, 'POST', '/files', { body: { content: 'x' } })
    expect(notMultipart.status).toBe(400)
    const form = new FormData()
    form.append('metadata', '{}')
    const noContent = await fetch(`${emu.baseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${emu.token}` }, body: form })
    expect(noContent.status).toBe(400)
  })
})
