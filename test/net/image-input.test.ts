import { beforeAll, describe, expect, it } from 'vitest'
import { AppError, ValidationError } from '../../src/errors.ts'
import { parseImageInput } from '../../src/net/image-input.ts'
import { makeImage } from './helpers.ts'

const limits = { maxBytes: 1024 * 1024 }
let png: Buffer
let jpeg: Buffer
let webp: Buffer
let gif: Buffer

function dataUri (type: string, bytes: Buffer): string {
  return `data:${type};base64,${bytes.toString('base64')}`
}

async function rejection (promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(AppError)
  return err as AppError
}

beforeAll(async () => {
  png = await makeImage('png', 64, 48)
  jpeg = await makeImage('jpeg', 30, 20)
  webp = await makeImage('webp', 16, 9)
  gif = await makeImage('gif', 5, 7)
})

describe('parseImageInput: URLs', () => {
  it.each([
    ['https://example.com/cat.png', 'https://example.com/cat.png'],
    ['https://EXAMPLE.com:443/a%20b.png?x=1', 'https://example.com/a%20b.png?x=1'],
    ['  https://replicate.delivery/pbxt/abc/out.webp  ', 'https://replicate.delivery/pbxt/abc/out.webp'],
    ['https://8.8.8.8/img.jpg', 'https://8.8.8.8/img.jpg']
  ])('accepts %s', async (input, url) => {
    expect(await parseImageInput(input, limits)).toEqual({ kind: 'url', url })
  })

  it.each([
    'http://example.com/cat.png',
    'javascript:alert(1)',
    'file:///etc/passwd',
    'ftp://example.com/cat.png',
    'blob:https://example.com/0b5e',
    'example.com/cat.png',
    '//example.com/cat.png',
    '',
    '   ',
    `https://example.com/${'a'.repeat(2100)}.png`
  ])('refuses %j as a validation error on image_url', async (input) => {
    const err = await rejection(parseImageInput(input, limits))
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).errors).toEqual([{ field: 'image_url', message: expect.any(String) }])
  })

  it.each([
    'https://169.254.169.254/latest/meta-data',
    'https://2130706433/a.png',
    'https://0x7f.1/a.png',
    'https://[::ffff:10.0.0.1]/a.png',
    'https://[fd00:ec2::254]/',
    'https://10.1.2.3/a.png',
    'https://localhost/a.png',
    'https://metadata.google.internal/computeMetadata/v1/',
    'https://intranet/a.png',
    'https://user:pw@example.com/a.png',
    'https://example.com:8443/a.png'
  ])('refuses %s as url_not_allowed on image_url', async (input) => {
    const err = await rejection(parseImageInput(input, limits))
    expect(err.code).toBe('url_not_allowed')
    expect(err.statusCode).toBe(400)
    expect(err.extra).toEqual({ field: 'image_url' })
  })

  it('names the configured field', async () => {
    const err = await rejection(parseImageInput('http://example.com/a.png', { ...limits, field: 'body.image' }))
    expect((err as ValidationError).errors[0]?.field).toBe('body.image')
  })
})

describe('parseImageInput: data URIs', () => {
  it.each([
    ['image/png', () => png, 64, 48],
    ['image/jpeg', () => jpeg, 30, 20],
    ['image/webp', () => webp, 16, 9],
    ['image/gif', () => gif, 5, 7]
  ])('decodes %s with its dimensions', async (type, bytes, width, height) => {
    const parsed = await parseImageInput(dataUri(type, bytes()), limits)
    expect(parsed).toEqual({ kind: 'data', bytes: bytes(), contentType: type, width, height })
  })

  it('accepts upper-case prefixes, extra parameters, the image/jpg alias and wrapped base64', async () => {
    const wrapped = jpeg.toString('base64').replace(/.{76}/g, '$&\r\n')
    const parsed = await parseImageInput(`DATA:image/JPG;name=a.jpg;BASE64,${wrapped}`, limits)
    expect(parsed).toMatchObject({ kind: 'data', contentType: 'image/jpeg', width: 30, height: 20 })
  })

  it('refuses a payload above maxBytes, and accepts one of exactly maxBytes', async () => {
    const err = await rejection(parseImageInput(dataUri('image/png', png), { maxBytes: png.length - 1 }))
    expect(err.code).toBe('image_too_large')
    expect(err.statusCode).toBe(413)
    expect(err.extra).toEqual({ field: 'image_url', maxBytes: png.length - 1 })
    expect(await parseImageInput(dataUri('image/png', png), { maxBytes: png.length })).toMatchObject({ kind: 'data' })
  })

  it('refuses a payload far above maxBytes from its length alone', async () => {
    const huge = `data:image/png;base64,${'A'.repeat(8 * 1024 * 1024)}`
    const err = await rejection(parseImageInput(huge, { maxBytes: 1024 }))
    expect(err.code).toBe('image_too_large')
  })

  it.each([
    ['a declared type that is not an image', () => dataUri('text/html', Buffer.from('<script>alert(1)</script>'))],
    ['SVG', () => dataUri('image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>'))],
    ['JPEG bytes declared as PNG', () => dataUri('image/png', jpeg)],
    ['text declared as PNG', () => dataUri('image/png', Buffer.from('hello, this is not an image'))],
    ['a type outside allowedTypes', () => dataUri('image/gif', gif)]
  ])('refuses %s as unsupported_media_type', async (_label, input) => {
    const err = await rejection(parseImageInput(input(), { ...limits, allowedTypes: ['image/png', 'image/jpeg', 'image/webp'] }))
    expect(err.code).toBe('unsupported_media_type')
    expect(err.statusCode).toBe(415)
    expect(err.extra).toMatchObject({ field: 'image_url' })
  })

  it('says that data is not a valid image of its declared type', async () => {
    const zeros = await rejection(parseImageInput('data:image/png;base64,AAAA', limits))
    expect([zeros.code, zeros.statusCode]).toEqual(['unsupported_media_type', 415])
    expect(zeros.message).toBe('The data is not a valid PNG image, as its data: URI declares: its bytes are not PNG, JPEG, WebP or GIF data.')
    const jpegAsPng = await rejection(parseImageInput(dataUri('image/png', jpeg), limits))
    expect(jpegAsPng.message).toBe('The data is not a valid PNG image, as its data: URI declares: its bytes are JPEG data.')
    // A type we do not take at all still lists the ones we do.
    const svg = await rejection(parseImageInput(dataUri('image/svg+xml', Buffer.from('<svg/>')), limits))
    expect(svg.message).toMatch(/^The image must be one of: image\/png, /)
  })

  it.each([
    ['a PNG signature followed by garbage', () => dataUri('image/png', Buffer.concat([png.subarray(0, 8), Buffer.from('garbage garbage garbage garbage')]))],
    ['a PNG cut in half', () => dataUri('image/png', png.subarray(0, Math.floor(png.length / 2)))],
    ['a JPEG cut in half', () => dataUri('image/jpeg', jpeg.subarray(0, Math.floor(jpeg.length / 2)))],
    ['invalid base64', () => 'data:image/png;base64,iVBORw0KGgo*&^%'],
    ['base64 of the wrong length', () => 'data:image/png;base64,iVBORw0KGgoA'],
    ['an empty payload', () => 'data:image/png;base64,'],
    ['no base64 marker', () => `data:image/png,${png.toString('latin1')}`],
    ['no comma', () => 'data:image/png;base64']
  ])('refuses %s as a validation error', async (_label, input) => {
    const err = await rejection(parseImageInput(input(), limits))
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).errors).toEqual([{ field: 'image_url', message: expect.any(String) }])
  })

  it('refuses an image with more pixels than maxPixels', async () => {
    const err = await rejection(parseImageInput(dataUri('image/png', png), { ...limits, maxPixels: 64 * 48 - 1 }))
    expect((err as ValidationError).errors).toEqual([{ field: 'image_url', message: `must be at most ${64 * 48 - 1} pixels` }])
    expect(await parseImageInput(dataUri('image/png', png), { ...limits, maxPixels: 64 * 48 })).toMatchObject({ width: 64 })
  })
})
