import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Emulator } from '../../src/emulator/index.ts'
import { api, eventually, pollUntilTerminal, startFastEmulator } from './helpers.ts'
import type { Json } from './helpers.ts'

/** Output files are real images of the size the inputs imply, deterministic, and expire. */

let emu: Emulator
let imageServer: Server
let imageServerUrl: string

async function solidPng (width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 90 } } }).png().toBuffer()
}

beforeAll(async () => {
  emu = await startFastEmulator()
  const portrait = await solidPng(200, 400)
  imageServer = createServer((req, res) => {
    if (req.url === '/portrait.png') res.writeHead(200, { 'content-type': 'image/png' }).end(portrait)
    else if (req.url === '/hang.png') res.writeHead(200, { 'content-type': 'image/png' }).write(portrait.subarray(0, 10))
    else res.writeHead(404).end('missing')
  })
  await new Promise<void>((resolve) => imageServer.listen(0, '127.0.0.1', resolve))
  imageServerUrl = `http://127.0.0.1:${(imageServer.address() as AddressInfo).port}`
})
afterAll(async () => {
  await emu.close()
  imageServer.closeAllConnections()
  await new Promise((resolve) => imageServer.close(resolve))
})

async function run (model: string, input: Record<string, unknown>): Promise<Json> {
  const created = await api(emu, 'POST', `/models/black-forest-labs/${model}/predictions`, { body: { input }, headers: { prefer: 'wait=60' } })
  expect(created.status).toBe(201)
  return pollUntilTerminal(emu, created.body.id)
}

async function fetchImage (url: string): Promise<{ response: Response, bytes: Buffer, width?: number, height?: number, format?: string }> {
  const response = await fetch(url)
  const bytes = Buffer.from(await response.arrayBuffer())
  if (!response.ok) return { response, bytes }
  const meta = await sharp(bytes).metadata()
  return { response, bytes, width: meta.width, height: meta.height, format: meta.format }
}

describe('output images', () => {
  it.each([
    { input: { aspect_ratio: '1:1' }, size: [1024, 1024], type: 'image/webp', format: 'webp' },
    { input: { aspect_ratio: '21:9', megapixels: '0.25' }, size: [768, 320], type: 'image/webp', format: 'webp' },
    { input: { aspect_ratio: '9:16', output_format: 'jpg' }, size: [768, 1344], type: 'image/jpeg', format: 'jpeg' },
    { input: { aspect_ratio: '4:5', megapixels: '0.25', output_format: 'png' }, size: [448, 544], type: 'image/png', format: 'png' }
  ])('flux-schnell $input → $size.0×$size.1 $type', async ({ input, size, type, format }) => {
    const prediction = await run('flux-schnell', { prompt: 'a harbour', ...input })
    expect(prediction.status).toBe('succeeded')
    expect(Array.isArray(prediction.output)).toBe(true)
    const image = await fetchImage(prediction.output[0])
    expect(image.response.status).toBe(200)
    expect(image.response.headers.get('content-type')).toBe(type)
    expect(image.response.headers.get('cache-control')).toBe('public,max-age=3600')
    expect(image.response.headers.get('access-control-allow-origin')).toBe('*')
    expect(image.format).toBe(format)
    expect([image.width, image.height]).toEqual(size)
  })

  it('flux-1.1-pro: one URL string; custom width/height rounded to multiples of 32', async () => {
    const custom = await run('flux-1.1-pro', { prompt: 'a bridge', aspect_ratio: 'custom', width: 1000, height: 700 })
    expect(typeof custom.output).toBe('string')
    const image = await fetchImage(custom.output)
    expect([image.width, image.height]).toEqual([992, 704])
    expect(image.response.headers.get('content-type')).toBe('image/webp')

    const ratio = await run('flux-1.1-pro', { prompt: 'a bridge', aspect_ratio: '3:2', output_format: 'jpg' })
    const ratioImage = await fetchImage(ratio.output)
    expect([ratioImage.width, ratioImage.height]).toEqual([1216, 832])
    expect(ratioImage.format).toBe('jpeg')
  })

  it('flux-dev img2img takes the aspect ratio of a data: URI image', async () => {
    const image = `data:image/png;base64,${(await solidPng(300, 200)).toString('base64')}`
    const prediction = await run('flux-dev', { prompt: 'repaint', image, aspect_ratio: '9:16', output_format: 'png' })
    expect(prediction.status).toBe('succeeded')
    expect(prediction.logs).toContain('running with bf16')
    const out = await fetchImage(prediction.output[0])
    expect([out.width, out.height]).toEqual([1248, 832])
  })

  it('flux-kontext-pro match_input_image follows an http input image; explicit ratios are kept', async () => {
    const matched = await run('flux-kontext-pro', { prompt: 'make it blue', input_image: `${imageServerUrl}/portrait.png` })
    expect(matched.status).toBe('succeeded')
    expect(typeof matched.output).toBe('string')
    const out = await fetchImage(matched.output)
    expect(out.response.headers.get('content-type')).toBe('image/png')
    expect([out.width, out.height]).toEqual([720, 1456])
    expect(out.width! % 16).toBe(0)

    const wide = await run('flux-kontext-pro', { prompt: 'make it blue', input_image: `${imageServerUrl}/portrait.png`, aspect_ratio: '2:1' })
    const wideOut = await fetchImage(wide.output)
    expect([wideOut.width, wideOut.height]).toEqual([1456, 720])
  })

  it('an emulator output URL and an uploaded file work as input images', async () => {
    const source = await run('flux-schnell', { prompt: 'source', aspect_ratio: '16:9', megapixels: '0.25' })
    const edited = await run('flux-kontext-pro', { prompt: 'edit', input_image: source.output[0] })
    const editedOut = await fetchImage(edited.output)
    expect(editedOut.width! / editedOut.height!).toBeCloseTo(16 / 9, 1)

    const form = new FormData()
    form.append('content', new Blob([new Uint8Array(await solidPng(100, 300))], { type: 'image/png' }), 'tall.png')
    const upload = await fetch(`${emu.baseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${emu.token}` }, body: form })
    const file = await upload.json() as Json
    const fromFile = await run('flux-dev', { prompt: 'from file', image: file.urls.get, megapixels: '0.25' })
    const fromFileOut = await fetchImage(fromFile.output[0])
    expect(fromFileOut.height! / fromFileOut.width!).toBeCloseTo(7 / 3, 1)
  })

  it('an input image that cannot be read fails the prediction with a clear error', async () => {
    const prediction = await run('flux-kontext-pro', { prompt: 'edit', input_image: `${imageServerUrl}/missing.png` })
    expect(prediction.status).toBe('failed')
    expect(prediction.error).toBe(`Failed to read input image "input_image": could not download ${imageServerUrl}/missing.png: HTTP 404`)
    expect(prediction.output).toBeNull()

    const notImage = await run('flux-dev', { prompt: 'x', image: `data:image/png;base64,${Buffer.from('not an image').toString('base64')}` })
    expect(notImage.status).toBe('failed')
    expect(notImage.error).toContain('cannot identify image file')
  })

  it('an http input image that does not arrive in time fails the prediction', async () => {
    const impatient = await startFastEmulator({ inputFetchTimeoutMs: 100 })
    try {
      const created = await api(impatient, 'POST', '/models/black-forest-labs/flux-dev/predictions', {
        body: { input: { prompt: 'x', image: `${imageServerUrl}/hang.png` } }
      })
      const done = await pollUntilTerminal(impatient, created.body.id)
      expect(done.status).toBe('failed')
      expect(done.error).toBe(`Failed to read input image "image": could not download ${imageServerUrl}/hang.png: timed out after 100 ms`)
    } finally {
      await impatient.close()
    }
  })

  it('same prompt and seed give identical bytes; another prompt or seed gives other bytes', async () => {
    const base = { megapixels: '0.25', output_format: 'png', seed: 42 }
    const [a, b, otherPrompt, otherSeed] = await Promise.all([
      run('flux-schnell', { prompt: 'a red fox in snow', ...base }),
      run('flux-schnell', { prompt: 'a red fox in snow', ...base }),
      run('flux-schnell', { prompt: 'a blue whale at sea', ...base }),
      run('flux-schnell', { prompt: 'a red fox in snow', ...base, seed: 43 })
    ])
    expect(a.logs).toContain('Using seed: 42')
    const [ia, ib, ic, id] = await Promise.all([a, b, otherPrompt, otherSeed].map((p) => fetchImage(p.output[0])))
    expect(ia!.bytes.equals(ib!.bytes)).toBe(true)
    expect(ia!.response.headers.get('etag')).toBe(ib!.response.headers.get('etag'))
    expect(ia!.bytes.equals(ic!.bytes)).toBe(false)
    expect(ia!.bytes.equals(id!.bytes)).toBe(false)
    // Different prompts differ at a glance: their average colours are far apart.
    const mean = async (bytes: Buffer): Promise<number[]> => (await sharp(bytes).stats()).channels.slice(0, 3).map((c) => c.mean)
    const [ma, mc] = await Promise.all([mean(ia!.bytes), mean(ic!.bytes)])
    const distance = ma.reduce((sum, v, i) => sum + Math.abs(v - mc[i]!), 0)
    expect(distance).toBeGreaterThan(30)
  })

  it('answers If-None-Match with 304 and unknown files with 404', async () => {
    const prediction = await run('flux-schnell', { prompt: 'etag', megapixels: '0.25' })
    const first = await fetch(prediction.output[0])
    await first.arrayBuffer()
    const etag = first.headers.get('etag')!
    const again = await fetch(prediction.output[0], { headers: { 'if-none-match': etag } })
    expect(again.status).toBe(304)
    expect((await fetch(prediction.output[0].replace('out-0', 'out-3'))).status).toBe(404)
    expect((await fetch(prediction.output[0].replace('.webp', '.png'))).status).toBe(404)
  })
})

describe('output expiry', () => {
  it('after the TTL the URLs 404 and the prediction shows data_removed with no output or input', async () => {
    const short = await startFastEmulator({ deliveryTtlMs: 2000 })
    try {
      const created = await api(short, 'POST', '/models/black-forest-labs/flux-schnell/predictions', {
        body: { input: { prompt: 'ephemeral', megapixels: '0.25' } },
        headers: { prefer: 'wait' }
      })
      const url = created.body.output[0] as string
      // 2 s scaled is 20 ms: the output may already be gone by now, so only its removal is awaited.
      const removed = await eventually(async () => {
        const { body } = await api(short, 'GET', `/predictions/${created.body.id}`)
        return body.data_removed ? body : undefined
      })
      expect(removed).toMatchObject({ status: 'succeeded', data_removed: true, output: null, input: {} })
      expect((await fetch(url)).status).toBe(404)
    } finally {
      await short.close()
    }
  })

  it('expireOutput ends the delivery time at once; only for a finished prediction', async () => {
    const emu = await startFastEmulator()
    try {
      const created = await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', {
        body: { input: { prompt: 'kept until told', megapixels: '0.25' } },
        headers: { prefer: 'wait' }
      })
      const done = await pollUntilTerminal(emu, created.body.id)
      expect(done.status).toBe('succeeded')
      const url = done.output[0] as string
      // The default delivery time is an hour: the output is served until told otherwise.
      expect((await fetch(url)).status).toBe(200)
      expect(emu.expireOutput(created.body.id)).toBe(true)
      expect((await fetch(url)).status).toBe(404)
      const { body } = await api(emu, 'GET', `/predictions/${created.body.id}`)
      expect(body).toMatchObject({ status: 'succeeded', data_removed: true, output: null, input: {} })

      expect(emu.expireOutput('no-such-prediction')).toBe(false)
    } finally {
      await emu.close()
    }
    // An hour in `starting` (36 s scaled): still unfinished whenever this runs.
    const queued = await startFastEmulator({ startingMs: [3_600_000, 3_600_000] })
    try {
      const running = await api(queued, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { body: { input: { prompt: 'still starting', megapixels: '0.25' } } })
      expect(queued.expireOutput(running.body.id)).toBe(false)
      expect((await api(queued, 'GET', `/predictions/${running.body.id}`)).body).toMatchObject({ status: 'starting', data_removed: false })
    } finally {
      await queued.close()
    }
  })
})
