import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { sleep } from './helpers.ts'

let gw: TestGateway
let store: StateStore

beforeAll(async () => {
  // No keys: the gateway runs open, every prediction owned by `anonymous`.
  store = createSqliteStore({ path: ':memory:' })
  gw = await startGateway({ overrides: { tenancy: { store } } })
})
afterAll(async () => {
  await gw.close()
  await store.close()
})

type Stored = { completed_at: string | null, started_at: string | null, created_at: string }

describe('completed_at', () => {
  it('a sync create finalized while Replicate says processing answers with the moment it was finalized, and keeps it', async () => {
    const before = Date.now()
    const created = await gw.call('POST', '/v1/text-to-image', { prompt: 'a finished lighthouse', model: 'flux-schnell' })
    expect(created.status).toBe(200)
    expect(created.body.status).toBe('succeeded')
    const id = created.body.id as string
    // The emulator, like Replicate, hands the files over while it still says processing, without completed_at.
    expect(gw.logs.find((l) => l.msg === 'prediction created' && l.predictionId === id)).toMatchObject({ status: 'processing' })
    const completedAt = created.body.completed_at as string
    expect(completedAt).toEqual(expect.any(String))
    expect(Date.parse(completedAt)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
    expect(Date.parse(completedAt)).toBeGreaterThanOrEqual(Date.parse(created.body.created_at as string))

    await sleep(20)
    const read = await gw.call('GET', `/v1/predictions/${id}`)
    expect(read.body).toMatchObject({ status: 'succeeded', completed_at: completedAt })
    expect(((await store.getPrediction(id))?.last as Stored).completed_at).toBe(completedAt)
  })

  it("keeps Replicate's own completed_at when it comes", async () => {
    // schnell made to outlast the (scaled) sync window: the create answers without the images, and the tracker's
    // read then finds the prediction succeeded, with Replicate's completed_at.
    const slow = await startGateway({ emulator: { predictSeconds: { 'black-forest-labs/flux-schnell': 100 } }, overrides: { tenancy: { tracker: { poll: { initialMs: 50, maxIntervalMs: 100 } } } } })
    try {
      const created = await slow.call('POST', '/v1/text-to-image', { prompt: 'an async lighthouse', model: 'flux-schnell' }, { prefer: 'respond-async' })
      expect(created.status).toBe(202)
      const id = created.body.id as string
      const read = await slow.call('GET', `/v1/predictions/${id}?wait=20`)
      const theirs = slow.emulator.getPrediction(await slow.upstreamId(id))!
      expect(theirs.status).toBe('succeeded')
      expect(theirs.completed_at).toEqual(expect.any(String))
      expect(read.body).toMatchObject({ status: 'succeeded', completed_at: theirs.completed_at })
      expect((await slow.call('GET', `/v1/predictions/${id}`)).body.completed_at).toBe(theirs.completed_at)
    } finally {
      await slow.close()
    }
  })

  it('a record finalized without completed_at is backfilled on read with its settlement time, stored, and stable', async () => {
    const created = await gw.call('POST', '/v1/text-to-image', { prompt: 'an old lighthouse', model: 'flux-schnell' })
    const id = created.body.id as string
    const entry = (await store.getPrediction(id))!
    // As records were stored before: final, with Replicate's null completed_at.
    await store.putPrediction({ ...entry, last: { ...(entry.last as Stored), completed_at: null } })
    const ledger = await store.getLedgerEntry(entry.ledgerId)
    expect(ledger?.settledAt).toEqual(expect.any(Number))

    const read = await gw.call('GET', `/v1/predictions/${id}`)
    expect(read.body).toMatchObject({ status: 'succeeded', completed_at: new Date(ledger!.settledAt!).toISOString() })
    expect(((await store.getPrediction(id))?.last as Stored).completed_at).toBe(read.body.completed_at)
    expect((await gw.call('GET', `/v1/predictions/${id}`)).body.completed_at).toBe(read.body.completed_at)
  })

  it('without a settlement time, the backfill falls back to started_at', async () => {
    const created = await gw.call('POST', '/v1/text-to-image', { prompt: 'a forgotten lighthouse', model: 'flux-schnell' })
    const id = created.body.id as string
    const entry = (await store.getPrediction(id))!
    const last = entry.last as Stored
    expect(last.started_at).toEqual(expect.any(String))
    await store.putPrediction({ ...entry, ledgerId: 'no-such-ledger-entry', last: { ...last, completed_at: null } })

    const read = await gw.call('GET', `/v1/predictions/${id}`)
    expect(read.body).toMatchObject({ status: 'succeeded', completed_at: last.started_at })
  })
})
