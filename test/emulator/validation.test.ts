import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Emulator } from '../../src/emulator/index.ts'
import { versionIdFor } from '../../src/emulator/ids.ts'
import { fileTooLarge } from '../../src/emulator/problems.ts'
import { api, createSchnell, startFastEmulator } from './helpers.ts'

/** Authentication, request validation and the other 4xx answers (REFERENCE §3.1, §11.1–2, §11.7, §11.12). */

let emu: Emulator

beforeAll(async () => {
  emu = await startFastEmulator({ tokens: ['r8_first', 'r8_second'], billingRequiredTokens: ['r8_no_billing'], maxFileBytes: 1000 })
})
afterAll(async () => emu.close())

const NOT_FOUND = { detail: 'The requested resource could not be found.', status: 404 }

describe('authentication', () => {
  it('no Authorization header', async () => {
    const response = await api(emu, 'GET', '/account', { token: null })
    expect(response.status).toBe(401)
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(response.body).toEqual({ title: 'Unauthenticated', detail: 'You did not pass an authentication token', status: 401 })
  })

  it.each(['Bearer r8_wrong', 'Basic abc', 'Bearer'])('a bad token (%s)', async (authorization) => {
    const response = await api(emu, 'GET', '/account', { token: null, headers: { authorization } })
    expect(response.status).toBe(401)
    expect(response.body).toEqual({ title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 })
  })

  it('accepts every configured token with Bearer or Token', async () => {
    expect(emu.token).toBe('r8_first')
    for (const authorization of ['Bearer r8_first', 'Token r8_second', 'bearer r8_second']) {
      const response = await api(emu, 'GET', '/account', { token: null, headers: { authorization } })
      expect(response.status).toBe(200)
      expect(response.body).toMatchObject({ type: 'user', username: 'emulator' })
    }
  })

  it('a billing-required token gets the real 402 on creates only', async () => {
    const create = await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { token: 'r8_no_billing', body: { input: { prompt: 'x' } } })
    expect(create.status).toBe(402)
    expect(create.body).toEqual({
      title: 'Billing required',
      detail: 'You need to set up billing to run this model. Go to https://replicate.com/account/billing#billing to set it up. If you have recently set up billing, please wait a few minutes before trying again.',
      status: 402
    })
    expect((await api(emu, 'GET', '/account', { token: 'r8_no_billing' })).status).toBe(200)
  })
})

describe('not found', () => {
  it.each([
    ['GET', '/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa'],
    ['GET', '/nothing/here'],
    ['GET', '/models/black-forest-labs/flux-unknown'],
    ['POST', '/models/someone/community-model/predictions'],
    ['GET', '/files/nope']
  ])('%s %s', async (method, path) => {
    const response = await api(emu, method, path, method === 'POST' ? { body: { input: { prompt: 'x' } } } : {})
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/)
    expect(response.body).toEqual(NOT_FOUND)
  })

  it('authentication comes before routing', async () => {
    expect((await api(emu, 'GET', '/nothing/here', { token: null })).status).toBe(401)
  })
})

describe('422 validation', () => {
  it('missing input and a misspelled top-level key, as in the changelog example', async () => {
    const response = await api(emu, 'POST', '/predictions', { body: { version: 'black-forest-labs/flux-schnell', inptu: { text: 'Alice' } } })
    expect(response.status).toBe(422)
    expect(response.body.status).toBe(422)
    expect(response.body.invalid_fields).toEqual([
      { type: 'required', field: '', description: 'input is required' },
      { type: 'additional_property_not_allowed', field: '', description: 'Additional property inptu is not allowed' }
    ])
  })

  it('version is required on /predictions but not allowed on the models route', async () => {
    const missing = await api(emu, 'POST', '/predictions', { body: { input: { prompt: 'x' } } })
    expect(missing.body.invalid_fields).toEqual([{ type: 'required', field: '', description: 'version is required' }])
    const extra = await createSchnell(emu, { prompt: 'x' }, { body: { version: 'abc' } })
    expect(extra.body.invalid_fields).toEqual([{ type: 'additional_property_not_allowed', field: '', description: 'Additional property version is not allowed' }])
  })

  it('webhook and webhook_events_filter are checked', async () => {
    const response = await createSchnell(emu, { prompt: 'x' }, { body: { webhook: 'not a url', webhook_events_filter: ['start', 'finished'] } })
    expect(response.status).toBe(422)
    expect(response.body.invalid_fields).toEqual([
      { type: 'format', field: 'webhook', description: "Does not match format 'uri'" },
      { type: 'enum', field: 'webhook_events_filter.1', description: 'webhook_events_filter.1 must be one of the following: "start", "output", "logs", "completed"' }
    ])
  })

  it('input values outside the model schema name the field as input.<name>', async () => {
    const response = await createSchnell(emu, {
      prompt: 'x',
      num_outputs: 5,
      num_inference_steps: 0,
      aspect_ratio: '7:5',
      megapixels: 1,
      go_fast: 'yes'
    })
    expect(response.status).toBe(422)
    expect(response.body.invalid_fields).toEqual([
      // createSchnell puts megapixels first in the input; problems follow the input's key order.
      { type: 'invalid_type', field: 'input.megapixels', description: 'Invalid type. Expected: string, given: integer' },
      { type: 'less_than_equal', field: 'input.num_outputs', description: 'Must be less than or equal to 4' },
      { type: 'greater_than_equal', field: 'input.num_inference_steps', description: 'Must be greater than or equal to 1' },
      { type: 'enum', field: 'input.aspect_ratio', description: 'aspect_ratio must be one of the following: "1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"' },
      { type: 'invalid_type', field: 'input.go_fast', description: 'Invalid type. Expected: boolean, given: string' }
    ])
  })

  it('a missing prompt, a dev step count beyond 50, and a non-URI image', async () => {
    const response = await api(emu, 'POST', '/models/black-forest-labs/flux-dev/predictions', {
      body: { input: { num_inference_steps: 60, image: 'not-a-uri', guidance: 3.5 } }
    })
    expect(response.body.invalid_fields).toEqual([
      { type: 'required', field: 'input.prompt', description: 'prompt is required' },
      { type: 'less_than_equal', field: 'input.num_inference_steps', description: 'Must be less than or equal to 50' },
      { type: 'format', field: 'input.image', description: "Does not match format 'uri'" }
    ])
  })

  it('unknown keys inside input are ignored, and echoed', async () => {
    const response = await createSchnell(emu, { prompt: 'x', negative_prompt: 'blurry', guidance_scale: 7 })
    expect(response.status).toBe(201)
    expect(response.body.input).toMatchObject({ negative_prompt: 'blurry', guidance_scale: 7 })
  })

  it('an unknown or wrong version gets the real "Invalid version" body; the three valid forms work', async () => {
    const invalid = {
      title: 'Invalid version or not permitted',
      detail: "The specified version does not exist (or perhaps you don't have permission to use it?)",
      status: 422
    }
    for (const version of ['someone/model', 'f'.repeat(64), `black-forest-labs/flux-dev:${'0'.repeat(64)}`]) {
      const response = await api(emu, 'POST', '/predictions', { body: { version, input: { prompt: 'x' } } })
      expect(response.status).toBe(422)
      expect(response.body).toEqual(invalid)
    }
    const id = versionIdFor('black-forest-labs/flux-dev')
    const forms: [string, string][] = [['black-forest-labs/flux-dev', 'hidden'], [`black-forest-labs/flux-dev:${id}`, id], [id, id]]
    for (const [version, echoed] of forms) {
      const response = await api(emu, 'POST', '/predictions', { body: { version, input: { prompt: 'x' } } })
      expect(response.status).toBe(201)
      expect(response.body).toMatchObject({ model: 'black-forest-labs/flux-dev', version: echoed })
    }
  })

  it('a body that is not JSON is a 400 problem', async () => {
    const response = await fetch(`${emu.baseUrl}/predictions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${emu.token}`, 'content-type': 'application/json' },
      body: '{"input":'
    })
    expect(response.status).toBe(400)
    expect(((await response.json()) as { detail: string }).detail).toMatch(/^JSON parse error/)
  })
})

describe('size limits (413)', () => {
  it('a data: URI input over the limit', async () => {
    const image = `data:image/png;base64,${Buffer.alloc(1001).toString('base64')}`
    const response = await api(emu, 'POST', '/models/black-forest-labs/flux-dev/predictions', { body: { input: { prompt: 'x', image } } })
    expect(response.status).toBe(413)
    expect(response.body).toEqual({ detail: 'Files must be less than 1000 bytes in size' })
    const atLimit = `data:image/png;base64,${Buffer.alloc(1000).toString('base64')}`
    expect((await api(emu, 'POST', '/models/black-forest-labs/flux-dev/predictions', { body: { input: { prompt: 'x', image: atLimit } } })).status).toBe(201)
  })

  it('an upload over the limit', async () => {
    const form = new FormData()
    form.append('content', new Blob([new Uint8Array(1001)]), 'big.bin')
    const response = await fetch(`${emu.baseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${emu.token}` }, body: form })
    expect(response.status).toBe(413)
    expect(await response.json()).toEqual({ detail: 'Files must be less than 1000 bytes in size' })
  })

  it('the default limit reads as the real message', () => {
    expect(fileTooLarge(100 * 1024 * 1024).body).toEqual({ detail: 'Files must be less than 100MB in size' })
  })
})
