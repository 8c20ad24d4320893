import createClient from 'openapi-fetch'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { paths } from '../../openapi/schema.d.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway({ emulator: { slowStart: true } })
})
afterAll(async () => {
  await gw.close()
})

describe('a client generated from openapi/openapi.json', () => {
  it('runs text-to-image → get → cancel, typed end to end', async () => {
    const api = createClient<paths>({ baseUrl: gw.url })
    const created = await api.POST('/v1/text-to-image', {
      params: { header: { prefer: 'respond-async' } },
      body: { prompt: 'a typed request for a paper boat', model: 'flux-dev', width: 1024, height: 768 }
    })
    expect(created.response.status).toBe(202)
    const id = created.data!.id
    expect(created.data!.status).toBe('starting')
    expect(created.data!.warnings.map((w) => w.field)).toEqual(['width', 'height'])

    const got = await api.GET('/v1/predictions/{id}', { params: { path: { id } } })
    expect(got.response.status).toBe(200)
    expect(got.data!.id).toBe(id)
    expect(got.data!.model).toBe('flux-dev')

    const canceled = await api.POST('/v1/predictions/{id}/cancel', { params: { path: { id } } })
    expect(canceled.response.status).toBe(200)
    expect(canceled.data!.status).toBe('canceled')

    const problem = await api.POST('/v1/text-to-image', { body: { prompt: 'no' } })
    expect(problem.response.status).toBe(400)
    expect(problem.error).toMatchObject({ code: 'validation_error', errors: [{ field: 'prompt' }] })

    const quote = await api.POST('/v1/quotes', { body: { model: 'flux-dev', num_images: 3 } })
    expect(quote.data).toMatchObject({ total_credits: 6 })
  })
})
