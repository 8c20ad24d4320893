import { afterEach, describe, expect, it } from 'vitest'
import { FAILURE_MESSAGES } from '../../src/models/replicate-models.ts'
import type { Emulator, EmulatorOptions } from '../../src/emulator/index.ts'
import { api, createSchnell, eventually, pollUntilTerminal, startFastEmulator } from './helpers.ts'
import type { Json } from './helpers.ts'

/** Status transitions, sync mode, deadlines, cancel and model-side failures (REFERENCE §11.3–8). */

const open: Emulator[] = []
async function emulator (opts: EmulatorOptions = {}): Promise<Emulator> {
  const emu = await startFastEmulator(opts)
  open.push(emu)
  return emu
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((e) => e.close()))
})

/** Polls and records every distinct status seen, starting from the create response, until terminal. */
async function watch (emu: Emulator, created: Json): Promise<{ statuses: string[], snapshots: Json[] }> {
  const statuses: string[] = [created.status]
  const snapshots: Json[] = [created]
  await eventually(async () => {
    const { body } = await api(emu, 'GET', `/predictions/${created.id}`)
    if (statuses.at(-1) !== body.status) {
      statuses.push(body.status)
      snapshots.push(body)
    }
    return ['succeeded', 'failed', 'canceled', 'aborted'].includes(body.status) ? true : undefined
  }, 2)
  return { statuses, snapshots }
}

describe('status transitions', () => {
  it('starting → processing → succeeded, with the fields of each state', async () => {
    // 50 s of emulated predict time is 500 ms real: long enough to observe `processing`.
    const emu = await emulator({ startingMs: [3000, 3000], predictSeconds: { 'black-forest-labs/flux-schnell': 50 } })
    const created = await createSchnell(emu, { prompt: 'lifecycle', num_outputs: 2 })
    expect(created.status).toBe(201)
    const p = created.body
    expect(p).toMatchObject({ status: 'starting', version: 'hidden', model: 'black-forest-labs/flux-schnell', output: null, error: null, logs: '', data_removed: false, source: 'api' })
    expect(p.id).toMatch(/^[a-z0-9]{26}$/)
    expect(p.urls).toEqual({
      get: `${emu.baseUrl}/predictions/${p.id}`,
      cancel: `${emu.baseUrl}/predictions/${p.id}/cancel`,
      web: `${emu.origin}/p/${p.id}`
    })
    expect(p.input).toEqual({ prompt: 'lifecycle', num_outputs: 2, megapixels: '0.25' })
    expect(p).not.toHaveProperty('started_at')
    expect(p).not.toHaveProperty('metrics')

    const { statuses, snapshots } = await watch(emu, p)
    expect(statuses).toEqual(['starting', 'processing', 'succeeded'])
    const processing = snapshots[1]
    expect(processing.started_at).toEqual(expect.any(String))
    expect(processing.logs).toMatch(/Using seed: \d+/)
    expect(processing).not.toHaveProperty('completed_at')

    const done = snapshots[2]
    expect(done.output).toHaveLength(2)
    expect(done.logs).toContain('Total safe images: 2 out of 2')
    expect(done.metrics).toMatchObject({ predict_time: expect.any(Number), total_time: expect.any(Number), image_count: 2 })
    expect(done.metrics.total_time).toBeGreaterThanOrEqual(done.metrics.predict_time)
    const [created_, started, completed] = [done.created_at, done.started_at, done.completed_at].map((t: string) => Date.parse(t))
    expect(created_).toBeLessThanOrEqual(started!)
    expect(started).toBeLessThanOrEqual(completed!)
    // The random seed the logs report is the one used: asking for it reproduces the image.
    const seed = Number(/Using seed: (\d+)/.exec(done.logs)![1])
    const again = await pollUntilTerminal(emu, (await createSchnell(emu, { prompt: 'lifecycle', seed })).body.id)
    const [original, repeated] = await Promise.all([done.output[0], again.output[0]].map(async (url: string) => Buffer.from(await (await fetch(url)).arrayBuffer())))
    expect(original!.equals(repeated!)).toBe(true)
  })

  it('a given seed is echoed in the logs, and single-output models return one URL string', async () => {
    const emu = await emulator()
    const created = await api(emu, 'POST', '/models/black-forest-labs/flux-1.1-pro/predictions', {
      body: { input: { prompt: 'pro', seed: 1234, aspect_ratio: '1:1' } }
    })
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done.status).toBe('succeeded')
    expect(done.logs).toContain('Using seed: 1234')
    expect(done.output).toEqual(expect.stringMatching(new RegExp(`^${emu.origin}/delivery/${done.id}/out-0\\.webp$`)))
  })
})

describe('Prefer: wait', () => {
  it('answers as soon as the files exist: processing, output filled, no completed_at or metrics; succeeded a moment later', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'sync', num_outputs: 2 }, { headers: { prefer: 'wait' } })
    expect(created.status).toBe(201)
    expect(created.headers.get('preference-applied')).toBe('wait')
    expect(created.body.status).toBe('processing')
    expect(created.body.output).toHaveLength(2)
    expect(created.body).not.toHaveProperty('completed_at')
    expect(created.body).not.toHaveProperty('metrics')
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done.status).toBe('succeeded')
    expect(done.output).toEqual(created.body.output)
  })

  it('echoes wait=N', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'sync' }, { headers: { prefer: 'wait=5' } })
    expect(created.headers.get('preference-applied')).toBe('wait=5')
    expect(created.body.output).toHaveLength(1)
  })

  it('too short a wait returns the incomplete prediction: still starting, output null, 201 by default', async () => {
    const emu = await emulator({ startingMs: [5000, 5000] })
    const created = await createSchnell(emu, { prompt: 'slow' }, { headers: { prefer: 'wait=1' } })
    expect(created.status).toBe(201)
    expect(created.headers.get('preference-applied')).toBe('wait=1')
    expect(created.body).toMatchObject({ status: 'starting', output: null })
    expect((await pollUntilTerminal(emu, created.body.id)).status).toBe('succeeded')
  })

  it('a timeout while processing returns processing with output null, with the configured status code', async () => {
    const emu = await emulator({ startingMs: [0, 0], predictSeconds: { 'black-forest-labs/flux-schnell': 60 }, syncTimeoutStatus: 202 })
    const created = await createSchnell(emu, { prompt: 'slow' }, { headers: { prefer: 'wait=2' } })
    expect(created.status).toBe(202)
    expect(created.body).toMatchObject({ status: 'processing', output: null })
  })

  it('slowStart keeps a prediction in starting beyond the whole sync window', async () => {
    const emu = await emulator({ slowStart: true })
    const created = await createSchnell(emu, { prompt: 'queued' }, { headers: { prefer: 'wait' } })
    expect(created.body.status).toBe('starting')
  })

  it('clamps wait beyond 60, or rejects it when configured to', async () => {
    const emu = await emulator()
    const clamped = await createSchnell(emu, { prompt: 'x' }, { headers: { prefer: 'wait=120' } })
    expect(clamped.headers.get('preference-applied')).toBe('wait=60')
    const strict = await emulator({ preferWaitOutOfRange: 'reject' })
    const rejected = await createSchnell(strict, { prompt: 'x' }, { headers: { prefer: 'wait=120' } })
    expect(rejected.status).toBe(400)
    expect(rejected.body.detail).toContain('between 1 and 60')
  })

  it('without Prefer, answers 201 at once with starting', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'async' })
    expect(created.status).toBe(201)
    expect(created.headers.get('preference-applied')).toBeNull()
    expect(created.body.status).toBe('starting')
  })
})

describe('Cancel-After and cancel', () => {
  it('a deadline reached while starting aborts the prediction', async () => {
    const emu = await emulator({ startingMs: [20_000, 20_000] })
    const created = await createSchnell(emu, { prompt: 'late' }, { headers: { 'cancel-after': '5s' } })
    expect(Date.parse(created.body.deadline) - Date.parse(created.body.created_at)).toBe(50)
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done).toMatchObject({ status: 'aborted', output: null, error: null })
    expect(done).not.toHaveProperty('started_at')
    expect(done.completed_at).toEqual(expect.any(String))
  })

  it('a deadline reached while processing cancels it', async () => {
    const emu = await emulator({ startingMs: [100, 100], predictSeconds: { 'black-forest-labs/flux-schnell': 60 } })
    const created = await createSchnell(emu, { prompt: 'long' }, { headers: { 'cancel-after': '10s' } })
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done).toMatchObject({ status: 'canceled', output: null })
    expect(done.started_at).toEqual(expect.any(String))
    expect(done.metrics.predict_time).toEqual(expect.any(Number))
  })

  it.each([['1h30m', 5_400_000], ['30', 30_000], ['2m5s', 125_000]])('parses Cancel-After %s', async (header, ms) => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'x' }, { headers: { 'cancel-after': header } })
    expect(created.status).toBe(201)
    expect(Date.parse(created.body.deadline) - Date.parse(created.body.created_at)).toBe(ms * 0.01)
  })

  it.each(['4s', 'soon', '5x'])('rejects Cancel-After %s', async (header) => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'x' }, { headers: { 'cancel-after': header } })
    expect(created.status).toBe(400)
    expect(created.body.title).toBe('Invalid Cancel-After header')
  })

  it('cancel on a running prediction: 200 canceled with completed_at and metrics; it stays canceled; cancel again is a no-op', async () => {
    const emu = await emulator({ startingMs: [0, 0], predictSeconds: { 'black-forest-labs/flux-schnell': 50 } })
    const created = await createSchnell(emu, { prompt: 'stop me' })
    const canceled = await api(emu, 'POST', `/predictions/${created.body.id}/cancel`)
    expect(canceled.status).toBe(200)
    expect(canceled.body).toMatchObject({ status: 'canceled', output: null })
    expect(canceled.body.completed_at).toEqual(expect.any(String))
    expect(canceled.body.metrics.total_time).toEqual(expect.any(Number))
    // Past the time it would have finished (500 ms), it is still canceled.
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect((await api(emu, 'GET', `/predictions/${created.body.id}`)).body.status).toBe('canceled')
    const again = await api(emu, 'POST', `/predictions/${created.body.id}/cancel`)
    expect(again.status).toBe(200)
    expect(again.body).toEqual(canceled.body)
  })

  it('cancel on a succeeded prediction returns it unchanged; on an unknown id 404', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'done' })
    const done = await pollUntilTerminal(emu, created.body.id)
    const cancel = await api(emu, 'POST', `/predictions/${created.body.id}/cancel`)
    expect(cancel.status).toBe(200)
    expect(cancel.body).toEqual(done)
    expect((await api(emu, 'POST', '/predictions/aaaaaaaaaaaaaaaaaaaaaaaaaa/cancel')).status).toBe(404)
  })
})

describe('model-side failures', () => {
  it('schnell/dev: the all-NSFW failure, partial filtering, and disable_safety_checker', async () => {
    const emu = await emulator()
    const all = await createSchnell(emu, { prompt: 'nsfw-test', num_outputs: 2 }, { headers: { prefer: 'wait' } })
    expect(all.status).toBe(201)
    expect(all.body).toMatchObject({ status: 'failed', error: FAILURE_MESSAGES.allNsfw, output: null })
    expect(all.body.logs).toContain('NSFW content detected in image 1')

    const partial = await createSchnell(emu, { prompt: 'partial-nsfw-test', num_outputs: 4 }, { headers: { prefer: 'wait' } })
    expect(partial.body.output).toHaveLength(2)
    const partialDone = await pollUntilTerminal(emu, partial.body.id)
    expect(partialDone.status).toBe('succeeded')
    expect(partialDone.logs).toContain('Total safe images: 2 out of 4')
    expect(partialDone.metrics.image_count).toBe(2)

    const unchecked = await api(emu, 'POST', '/models/black-forest-labs/flux-dev/predictions', {
      body: { input: { prompt: 'nsfw-test', disable_safety_checker: true, megapixels: '0.25' } }
    })
    expect((await pollUntilTerminal(emu, unchecked.body.id)).status).toBe('succeeded')
  })

  it.each(['flux-1.1-pro', 'flux-kontext-pro'])('%s: the E005 moderation failure', async (model) => {
    const emu = await emulator()
    const created = await api(emu, 'POST', `/models/black-forest-labs/${model}/predictions`, { body: { input: { prompt: 'nsfw-test' } } })
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done).toMatchObject({ status: 'failed', error: FAILURE_MESSAGES.proFlagged, output: null })
  })

  it('the generic failure trigger', async () => {
    const emu = await emulator({ failureMessage: 'CUDA out of memory' })
    const created = await createSchnell(emu, { prompt: 'please fail-test' })
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done).toMatchObject({ status: 'failed', error: 'CUDA out of memory', output: null })
    expect(done.metrics.predict_time).toEqual(expect.any(Number))
  })
})

describe('client-pitfall switches', () => {
  it.each([['us', 6], ['ns', 9]] as const)('timestampPrecision %s gives %i fractional digits', async (precision, digits) => {
    const emu = await emulator({ pitfalls: { timestampPrecision: precision } })
    const created = await createSchnell(emu, { prompt: 'x' }, { headers: { prefer: 'wait' } })
    const done = await pollUntilTerminal(emu, created.body.id)
    for (const field of ['created_at', 'started_at', 'completed_at']) {
      expect(done[field]).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{${digits}}Z$`))
    }
  })

  it('abortAll, omitWebUrl and omitCompletedAt', async () => {
    const emu = await emulator({ pitfalls: { abortAll: true, omitWebUrl: true, omitCompletedAt: true } })
    const created = await createSchnell(emu, { prompt: 'x' })
    expect(created.body.urls).not.toHaveProperty('web')
    const done = await pollUntilTerminal(emu, created.body.id)
    expect(done.status).toBe('aborted')
    expect(done).not.toHaveProperty('completed_at')
  })
})

describe('listing', () => {
  it('newest first, with created_after and an absolute next link carrying the filter', async () => {
    const emu = await emulator({ listPageSize: 2 })
    const first = await createSchnell(emu, { prompt: '1' })
    await new Promise((resolve) => setTimeout(resolve, 5))
    const ids = [first.body.id]
    for (const prompt of ['2', '3', '4']) ids.push((await createSchnell(emu, { prompt })).body.id)
    const after = (await api(emu, 'GET', `/predictions/${ids[1]}`)).body.created_at as string

    const page1 = await api(emu, 'GET', `/predictions?created_after=${encodeURIComponent(after)}`)
    expect(page1.body.results.map((p: Json) => p.id)).toEqual([ids[3], ids[2]])
    expect(page1.body.previous).toBeNull()
    const next = new URL(page1.body.next)
    expect(next.origin).toBe(emu.origin)
    expect(next.searchParams.get('cursor')).toEqual(expect.any(String))
    expect(next.searchParams.get('created_after')).toBe(after)

    const page2 = await api(emu, 'GET', page1.body.next)
    expect(page2.body.results.map((p: Json) => p.id)).toEqual([ids[1]])
    expect(page2.body.next).toBeNull()
    expect((await api(emu, 'GET', '/predictions?cursor=garbage')).status).toBe(400)
  })
})

describe('instance behaviour', () => {
  it('publicUrl is used in every URL handed out, and its outputs still resolve as inputs', async () => {
    const emu = await emulator({ publicUrl: 'http://emulator.internal:9999/' })
    const created = await createSchnell(emu, { prompt: 'public' }, { headers: { prefer: 'wait' } })
    expect(created.body.urls.get).toBe(`http://emulator.internal:9999/v1/predictions/${created.body.id}`)
    expect(created.body.output[0]).toBe(`http://emulator.internal:9999/delivery/${created.body.id}/out-0.webp`)
    const edit = await api(emu, 'POST', '/models/black-forest-labs/flux-kontext-pro/predictions', { body: { input: { prompt: 'edit', input_image: created.body.output[0] } } })
    expect((await pollUntilTerminal(emu, edit.body.id)).status).toBe('succeeded')
  })

  it('an image key the model does not have is ignored, not fetched', async () => {
    const emu = await emulator()
    const created = await createSchnell(emu, { prompt: 'x', image: 'http://127.0.0.1:9/unreachable.png' })
    expect((await pollUntilTerminal(emu, created.body.id)).status).toBe('succeeded')
  })

  it('close() ends a pending sync wait instead of hanging', async () => {
    const emu = await startFastEmulator({ slowStart: true, timeScale: 1 })
    const pending = createSchnell(emu, { prompt: 'never' }, { headers: { prefer: 'wait=60' } }).then((r) => r.status, () => 'connection closed')
    await eventually(() => emu.requests[0])
    await emu.close()
    expect([201, 'connection closed']).toContain(await pending)
  })

  it('keeps at most maxRecordedRequests, dropping the oldest', async () => {
    const emu = await emulator({ maxRecordedRequests: 3 })
    for (const path of ['/account', '/models/black-forest-labs/flux-dev', '/account', '/webhooks/default/secret']) await api(emu, 'GET', path)
    expect(emu.requests.map((r) => r.path)).toEqual(['/v1/models/black-forest-labs/flux-dev', '/v1/account', '/v1/webhooks/default/secret'])
  })
})
