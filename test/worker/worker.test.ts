import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StateStore } from '../../src/stores/types.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { startFakeServiceBus } from '../fakes/service-bus/broker.ts'
import type { FakeServiceBus } from '../fakes/service-bus/broker.ts'
import { storeWithKeys } from '../tenancy/helpers.ts'
import { QUEUE, backend, creates, eventsOf, startWorkerGateway } from './helpers.ts'
import type { Backend } from './helpers.ts'

let bus: FakeServiceBus
let gw: TestGateway
let store: StateStore
let sb: Backend
let ids: Record<'basic' | 'free' | 'broke' | 'revoked', string>

beforeAll(async () => {
  bus = await startFakeServiceBus()
  ;({ store, ids } = await storeWithKeys({
    basic: { plan: 'basic', budgetCredits: 1000 },
    free: { plan: 'free' },
    broke: { plan: 'basic', budgetCredits: 1, budgetPeriod: 'total' },
    revoked: { plan: 'basic' }
  }))
  await store.revokeKey(ids.revoked, Date.now())
  gw = await startWorkerGateway(bus, { overrides: { tenancy: { store } } })
  sb = backend(bus)
})
afterAll(async () => {
  await sb.close()
  await gw.close()
  await store.close()
  await bus.close()
})

const settledOn = (messageId: string) => bus.waitFor(`${messageId} to be settled`, () => eventsOf(bus, messageId).some((t) => t === 'complete' || t === 'dead-letter'))

describe('the queue worker', () => {
  it('is ready only with its receiver link attached', async () => {
    await bus.waitFor('the receiver link', () => bus.receivers(QUEUE) === 1)
    const ready = await gw.call('GET', '/health/ready')
    expect(ready.status).toBe(200)
    expect(ready.body.checks.worker).toEqual({ status: 'ok' })
  })

  it('generates, keeps the images, settles the credits, replies with signed URLs, then completes', async () => {
    const before = creates(gw).length
    await sb.send({
      messageId: 'happy-1',
      correlationId: 'order-77',
      body: { kind: 'text-to-image', request: { prompt: 'a lighthouse on a cliff at dusk', model: 'flux-schnell', num_outputs: 2 }, api_key_id: ids.basic, reply_to: { queue: 'replies' } }
    })
    const [reply] = await sb.receive('replies', 1)
    await settledOn('happy-1')
    expect(eventsOf(bus, 'happy-1')).toEqual(['delivered', 'complete'])
    expect(creates(gw).length - before).toBe(1)

    expect(reply!.correlationId).toBe('order-77')
    expect(reply!.contentType).toBe('application/json')
    const prediction = reply!.body as { id: string, status: string, output: string[], cost_credits: number, completed_at: string | null }
    expect(reply!.applicationProperties).toEqual({ prediction_id: prediction.id, status: 'succeeded' })
    expect(prediction.status).toBe('succeeded')
    expect(prediction.completed_at).not.toBeNull()
    expect(prediction.cost_credits).toBe(2)
    expect(prediction.output).toHaveLength(2)
    // Kept images on our own address, signed so the URL alone fetches them.
    for (const url of prediction.output) {
      expect(url).toMatch(new RegExp(`^${gw.url}/v1/predictions/${prediction.id}/images/\\d\\?exp=\\d+&sig=`))
      const image = await request(url)
      expect(image.statusCode).toBe(200)
      expect(image.headers['content-type']).toMatch(/^image\//)
      await image.body.dump()
    }
    const entry = await store.getPrediction(prediction.id)
    expect(entry).toMatchObject({ owner: ids.basic, finalized: true })
    expect(entry!.kept).toHaveLength(2)
    expect(await store.getLedgerEntry(entry!.ledgerId)).toMatchObject({ keyId: ids.basic, state: 'settled', credits: 2 })
  })

  it('delivers the prediction to reply_to.webhook, with the correlation id', async () => {
    const received: Array<{ headers: Record<string, unknown>, body: Record<string, unknown> }> = []
    const hook = createServer((req, res) => {
      let text = ''
      req.on('data', (c) => { text += String(c) })
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(text) as Record<string, unknown> })
        res.writeHead(204).end()
      })
    })
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/done`
    try {
      await sb.send({ messageId: 'hook-1', body: { kind: 'text-to-image', request: { prompt: 'a paper boat on a pond' }, api_key_id: ids.basic, reply_to: { webhook: url } } })
      await settledOn('hook-1')
      expect(received).toHaveLength(1)
      expect(received[0]!.headers['content-type']).toBe('application/json')
      // No correlationId on the request: the messageId stands in.
      expect(received[0]!.headers['x-correlation-id']).toBe('hook-1')
      expect(received[0]!.body).toMatchObject({ status: 'succeeded', model: 'flux-dev' })
      expect(eventsOf(bus, 'hook-1')).toEqual(['delivered', 'complete'])
    } finally {
      await new Promise((resolve) => hook.close(resolve))
    }
  })
})
