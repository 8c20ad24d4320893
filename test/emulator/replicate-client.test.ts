import Replicate, { validateWebhook } from 'replicate'
import sharp from 'sharp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Emulator } from '../../src/emulator/index.ts'
import { signWebhook } from '../../src/replicate/webhooks.ts'
import { eventually, startFastEmulator, startWebhookReceiver } from './helpers.ts'
import type { WebhookReceiver } from './helpers.ts'

/** The official `replicate` npm client, pointed at the emulator, works end to end. */

let emu: Emulator
let replicate: Replicate
let receiver: WebhookReceiver

beforeAll(async () => {
  // A small page size makes paginate() follow `next` links.
  // flux-1.1-pro runs for 3 s real, so the cancel test reaches it while it runs.
  emu = await startFastEmulator({ listPageSize: 2, predictSeconds: { 'black-forest-labs/flux-1.1-pro': 300 } })
  replicate = new Replicate({ auth: emu.token, baseUrl: emu.baseUrl })
  receiver = await startWebhookReceiver()
})
afterAll(async () => {
  await emu.close()
  await receiver.close()
})

async function imageSize (url: string): Promise<[number, number]> {
  const response = await fetch(url)
  const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata()
  return [meta.width, meta.height]
}

describe('official replicate client', () => {
  it('run() completes flux-schnell and returns fetchable image URLs', async () => {
    const output = await replicate.run('black-forest-labs/flux-schnell', {
      input: { prompt: 'a lighthouse at dusk', num_outputs: 2, aspect_ratio: '16:9', megapixels: '0.25' }
    }) as string[]
    expect(output).toHaveLength(2)
    // http: URLs (not https:) come back as plain strings rather than FileOutput streams.
    expect(output[0]).toMatch(new RegExp(`^${emu.origin}/delivery/[a-z0-9]{26}/out-0\\.webp$`))
    expect(await imageSize(output[1]!)).toEqual([672, 384])
  })

  it('run() completes flux-dev', async () => {
    const output = await replicate.run('black-forest-labs/flux-dev', {
      input: { prompt: 'a red bicycle', output_format: 'png', megapixels: '0.25', guidance: 3.5 }
    }) as string[]
    expect(output).toHaveLength(1)
    expect(output[0]).toMatch(/\/out-0\.png$/)
    expect(await imageSize(output[0]!)).toEqual([512, 512])
  })

  it('run() with a pinned version posts the bare version id', async () => {
    const model = await replicate.models.get('black-forest-labs', 'flux-schnell')
    const versionId = model.latest_version!.id
    const output = await replicate.run(`black-forest-labs/flux-schnell:${versionId}`, { input: { prompt: 'pinned', megapixels: '0.25' } }) as string[]
    expect(output).toHaveLength(1)
    const create = emu.requests.filter((r) => r.method === 'POST' && r.path === '/v1/predictions').at(-1)
    expect(create?.body).toMatchObject({ version: versionId })
  })

  it('run() rejects with the model error when the prediction fails', async () => {
    await expect(replicate.run('black-forest-labs/flux-schnell', { input: { prompt: 'nsfw-test' } }))
      .rejects.toThrow('Prediction failed: All generated images contained NSFW content. Try running it again with a different prompt.')
  })

  it('predictions.create, get and cancel', async () => {
    const created = await replicate.predictions.create({ model: 'black-forest-labs/flux-1.1-pro', input: { prompt: 'slow one' } })
    expect(created.status).toBe('starting')
    const got = await replicate.predictions.get(created.id)
    expect(got.id).toBe(created.id)
    const canceled = await replicate.predictions.cancel(created.id)
    expect(canceled.status).toBe('canceled')
    expect((await replicate.predictions.get(created.id)).status).toBe('canceled')
  })

  it('predictions.list pages through with paginate()', async () => {
    const ids: string[] = []
    let pages = 0
    for await (const page of replicate.paginate(() => replicate.predictions.list())) {
      pages++
      ids.push(...page.map((p) => p.id))
    }
    const created = emu.requests.filter((r) => r.method === 'POST' && /predictions$/.test(r.path)).length
    expect(ids.length).toBe(created)
    expect(pages).toBe(Math.ceil(created / 2))
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('validateWebhook accepts a webhook the emulator signed', async () => {
    const secret = await replicate.webhooks.default.secret.get()
    expect(secret.key).toBe(emu.webhookSecret)
    await replicate.predictions.create({
      model: 'black-forest-labs/flux-schnell',
      input: { prompt: 'hooked', megapixels: '0.25' },
      webhook: receiver.url,
      webhook_events_filter: ['completed']
    })
    const hook = await eventually(() => receiver.received[0])
    expect(hook.body.status).toBe('succeeded')
    const valid = await validateWebhook({
      id: hook.headers['webhook-id'] as string,
      timestamp: hook.headers['webhook-timestamp'] as string,
      signature: hook.headers['webhook-signature'] as string,
      body: hook.rawBody,
      secret: secret.key
    })
    expect(valid).toBe(true)
    const tampered = await validateWebhook({
      id: hook.headers['webhook-id'] as string,
      timestamp: hook.headers['webhook-timestamp'] as string,
      signature: hook.headers['webhook-signature'] as string,
      body: hook.rawBody.replace('succeeded', 'failed'),
      secret: secret.key
    })
    expect(tampered).toBe(false)
  })

  it('signWebhook reproduces the Svix test vector (REFERENCE §5)', () => {
    expect(signWebhook('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}'))
      .toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=')
  })
})
