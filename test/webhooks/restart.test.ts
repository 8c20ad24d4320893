import { createServer } from 'node:http'
import type { IncomingHttpHeaders } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmulator } from '../../src/emulator/index.ts'
import type { Emulator } from '../../src/emulator/index.ts'
import { createSqliteStore } from '../../src/stores/sqlite.ts'
import type { WebhookDelivery } from '../../src/stores/types.ts'
import { webhookSecrets } from '../../src/webhooks/secrets.ts'
import { spawnGateway, until, withStore } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { call, sleep, storeWithKeys } from '../tenancy/helpers.ts'

/** A delivery whose process dies between attempts is finished by the next process, once, with the same webhook-id. */

let emulator: Emulator
let dir: string
const running: GatewayProcess[] = []
const received: Array<{ headers: IncomingHttpHeaders, body: string }> = []
const statuses = [500]
const receiver = createServer((req, res) => {
  let body = ''
  req.on('data', (c: Buffer) => { body += String(c) })
  req.on('end', () => {
    received.push({ headers: req.headers, body })
    res.writeHead(statuses.shift() ?? 200).end()
  })
})

beforeAll(async () => {
  emulator = await startEmulator({ timeScale: 0.05 })
  dir = mkdtempSync(path.join(tmpdir(), 'fgw-webhook-restart-'))
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
})
afterAll(async () => {
  for (const g of running) await g.stop()
  await emulator.close()
  await new Promise((resolve) => receiver.close(resolve))
  rmSync(dir, { recursive: true, force: true })
})



describe('webhook deliveries across a restart', () => {
  it('after kill -9 while waiting to retry, the next process sends the retry, and nothing is sent twice', async () => {
    const file = path.join(dir, 'state.sqlite')
    const seed = await storeWithKeys({ k: { plan: 'basic', budgetCredits: 10 } }, createSqliteStore({ path: file }))
    await seed.store.close()
    const env = {
      REPLICATE_API_TOKEN: emulator.token,
      REPLICATE_BASE_URL: emulator.baseUrl,
      STATE_SQLITE_PATH: file,
      IMAGE_STORAGE_DIR: path.join(dir, 'images'),
      TRACKER_LEASE_MS: '1000',
      WEBHOOK_ALLOW_INSECURE: 'true'
    }
    const { port } = receiver.address() as AddressInfo
    const first = await spawnGateway(env)
    running.push(first)
    const created = await call(first.url, 'POST', '/v1/text-to-image', { key: seed.keys.k, body: { prompt: 'outlives its process', model: 'flux-schnell', webhook: `http://127.0.0.1:${port}/hook` } })
    expect(created.status).toBe(200)
    const id = created.body.id as string

    // The first attempt failed (500) and the retry is due in 5 s: the process dies while it waits.
    const failedOnce = await until(() => withStore(file, async (s) => {
      const [d] = await s.listWebhookDeliveries(id)
      return d && d.attempts.length === 1 ? d : undefined
    }), 'the first attempt to be recorded')
    expect(failedOnce).toMatchObject({ state: 'pending', attempts: [{ status: 500 }] })
    await first.kill9()
    expect(received).toHaveLength(1)

    const second = await spawnGateway(env)
    running.push(second)
    const delivered = await until<WebhookDelivery>(() => withStore(file, async (s) => {
      const [d] = await s.listWebhookDeliveries(id)
      return d?.state === 'delivered' ? d : undefined
    }), 'the retry from the second process')
    expect(delivered.attempts.map((a) => a.status)).toEqual([500, 200])
    // The retry came when it was due, not before.
    expect(delivered.attempts[1]!.at).toBeGreaterThanOrEqual(failedOnce.nextAt)

    await sleep(200)
    expect(received).toHaveLength(2)
    expect(received.map((r) => r.headers['webhook-id'])).toEqual([`msg_${id}_completed`, `msg_${id}_completed`])
    const [secret] = await withStore(file, (s) => webhookSecrets(s, seed.ids.k, Date.now()))
    for (const r of received) {
      const event = new Webhook(secret!).verify(r.body, { 'webhook-id': String(r.headers['webhook-id']), 'webhook-timestamp': String(r.headers['webhook-timestamp']), 'webhook-signature': String(r.headers['webhook-signature']) }) as { data: { id: string, status: string } }
      expect(event.data).toMatchObject({ id, status: 'succeeded' })
    }
  }, 60_000)
})
