import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Emulator } from '../../src/emulator/index.ts'
import { api, createSchnell, loadOpenApiValidator, pollUntilTerminal, seg, startFastEmulator } from './helpers.ts'

/**
 * Every response a client relies on validates against Replicate's own OpenAPI document
 * (test/fixtures/replicate/openapi.yaml). Error bodies have no schema there beyond the problem object
 * the Files API declares, so they are checked against that plus the exact captured shapes.
 */

const validate = loadOpenApiValidator()
const PREDICTION = '#/components/schemas/schemas_prediction_response'
const MODEL = '#/components/schemas/schemas_model_response'
const VERSION = '#/components/schemas/schemas_version_response'
const FILE = '#/components/schemas/schemas_file_response'
const ok = (path: string, method: string, status: string): string =>
  `#/paths/${seg(path)}/${method}/responses/${status}/content/${seg('application/json')}/schema`
const PROBLEM = `#/paths/${seg('/files/{file_id}')}/get/responses/404/content/${seg('application/problem+json')}/schema`
const TOO_LARGE = `#/paths/${seg('/files')}/post/responses/413/content/${seg('application/problem+json')}/schema`

let emu: Emulator

beforeAll(async () => {
  emu = await startFastEmulator({ lowCreditTokens: ['r8_low_credit'], maxFileBytes: 1024 })
})
afterAll(async () => emu.close())

describe('responses match the OpenAPI contract', () => {
  it('validator rejects what the contract forbids (so the checks below can fail)', () => {
    expect(validate(PREDICTION, { id: 'x' })).not.toEqual([])
    expect(validate(PREDICTION, { id: 'x', model: 'm', version: 'hidden', input: {}, output: null, data_removed: false, error: null, status: 'bogus', created_at: '2024-01-01T00:00:00Z', urls: { get: 'http://a/b', cancel: 'http://a/c', web: 'http://a/d' } })).not.toEqual([])
  })

  it('create (201), get, cancel, list and the sync-mode create', async () => {
    const created = await createSchnell(emu, { prompt: 'contract' })
    expect(created.status).toBe(201)
    expect(validate(PREDICTION, created.body)).toEqual([])
    expect(validate(ok('/models/{model_owner}/{model_name}/predictions', 'post', '201'), created.body)).toEqual([])

    const got = await api(emu, 'GET', `/predictions/${created.body.id}`)
    expect(validate(ok('/predictions/{prediction_id}', 'get', '200'), got.body)).toEqual([])

    const canceled = await api(emu, 'POST', `/predictions/${created.body.id}/cancel`)
    expect(canceled.status).toBe(200)
    expect(validate(ok('/predictions/{prediction_id}/cancel', 'post', '200'), canceled.body)).toEqual([])

    const sync = await createSchnell(emu, { prompt: 'contract sync' }, { headers: { prefer: 'wait' } })
    expect(validate(PREDICTION, sync.body)).toEqual([])
    const done = await pollUntilTerminal(emu, sync.body.id)
    expect(validate(PREDICTION, done)).toEqual([])

    const byVersion = await api(emu, 'POST', '/predictions', { body: { version: 'black-forest-labs/flux-schnell', input: { prompt: 'v' } } })
    expect(byVersion.status).toBe(201)
    expect(validate(ok('/predictions', 'post', '201'), byVersion.body)).toEqual([])

    const list = await api(emu, 'GET', '/predictions')
    expect(list.body.results.length).toBe(3)
    expect(validate(ok('/predictions', 'get', '200'), list.body)).toEqual([])
  })

  it('model, its latest version, and the account', async () => {
    const model = await api(emu, 'GET', '/models/black-forest-labs/flux-dev')
    expect(validate(MODEL, model.body)).toEqual([])
    expect(validate(ok('/models/{model_owner}/{model_name}', 'get', '200'), model.body)).toEqual([])
    expect(validate(VERSION, model.body.latest_version)).toEqual([])
    const input = model.body.latest_version.openapi_schema.components.schemas.Input
    expect(input.required).toEqual(['prompt'])
    expect(input.properties.guidance).toMatchObject({ type: 'number', minimum: 0, maximum: 10, default: 3 })
    expect(model.body.latest_version.openapi_schema.components.schemas.Output).toEqual({ type: 'array', title: 'Output', items: { type: 'string', format: 'uri' } })

    const version = await api(emu, 'GET', `/models/black-forest-labs/flux-dev/versions/${model.body.latest_version.id}`)
    expect(validate(VERSION, version.body)).toEqual([])
    expect(version.body).toEqual(model.body.latest_version)
    const versions = await api(emu, 'GET', '/models/black-forest-labs/flux-dev/versions')
    expect(validate('#/components/schemas/schemas_paginated_version_response', versions.body)).toEqual([])
    expect((await api(emu, 'GET', '/models/black-forest-labs/flux-dev/versions/0123')).status).toBe(404)

    const pro = await api(emu, 'GET', '/models/black-forest-labs/flux-1.1-pro')
    expect(pro.body.latest_version.openapi_schema.components.schemas.Output).toEqual({ type: 'string', title: 'Output', format: 'uri' })

    const account = await api(emu, 'GET', '/account')
    expect(validate(ok('/account', 'get', '200'), account.body)).toEqual([])

    const secret = await api(emu, 'GET', '/webhooks/default/secret')
    expect(validate(ok('/webhooks/default/secret', 'get', '200'), secret.body)).toEqual([])
  })

  it('a file upload', async () => {
    const form = new FormData()
    form.append('content', new Blob(['hello'], { type: 'text/plain' }), 'hello.txt')
    const response = await fetch(`${emu.baseUrl}/files`, { method: 'POST', headers: { authorization: `Bearer ${emu.token}` }, body: form })
    expect(response.status).toBe(201)
    expect(validate(FILE, await response.json())).toEqual([])
  })

  it('401, 404, 422, 429 and 413 are problem documents', async () => {
    const errors = [
      await api(emu, 'GET', '/account', { token: null }),
      await api(emu, 'GET', '/account', { token: 'r8_wrong' }),
      await api(emu, 'GET', '/predictions/doesnotexist0000000000000'),
      await api(emu, 'POST', '/predictions', { body: { inptu: {} } }),
      await createSchnell(emu, { prompt: 'x', num_outputs: 9 }),
      await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { token: 'r8_low_credit', body: { input: { prompt: 'a' } } }),
      await api(emu, 'POST', '/models/black-forest-labs/flux-schnell/predictions', { token: 'r8_low_credit', body: { input: { prompt: 'b' } } })
    ]
    expect(errors.map((e) => e.status)).toEqual([401, 401, 404, 422, 422, 201, 429])
    for (const error of errors.filter((e) => e.status >= 400)) {
      expect(error.headers.get('content-type')).toMatch(/^application\/problem\+json/)
      expect(validate(PROBLEM, error.body)).toEqual([])
      expect(error.body.status).toBe(error.status)
    }

    const image = `data:image/png;base64,${Buffer.alloc(2048).toString('base64')}`
    const tooLarge = await api(emu, 'POST', '/models/black-forest-labs/flux-dev/predictions', { body: { input: { prompt: 'x', image } } })
    expect(tooLarge.status).toBe(413)
    expect(validate(TOO_LARGE, tooLarge.body)).toEqual([])
  })
})
