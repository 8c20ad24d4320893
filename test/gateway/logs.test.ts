import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'

const TOKEN = 'r8_secret_token_that_must_never_be_logged'
let gw: TestGateway

beforeAll(async () => {
  gw = await startGateway({ emulator: { tokens: [TOKEN] } })
  // The gateway must use the secret token for this suite to mean anything.
  expect(gw.emulator.token).toBe(TOKEN)
})
afterAll(async () => {
  await gw.close()
})

describe('logs', () => {
  it('are JSON with the request id on every line of a request, and never hold tokens, auth headers or prompts', async () => {
    const prompt = 'a very particular marmalade cathedral at noon'
    const res = await request(`${gw.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer caller-key-12345', 'x-request-id': 'req-logs-1' },
      body: JSON.stringify({ prompt })
    })
    expect(res.statusCode).toBe(200)
    await res.body.text()
    const lines = gw.logs.filter((l) => l.request_id === 'req-logs-1')
    // One line for the request, when it ends, and the service's own lines (prediction created) before it.
    expect(lines.map((l) => l.msg).filter((m) => m === 'request completed' || m === 'incoming request')).toEqual(['request completed'])
    expect(lines.map((l) => l.msg)).toContain('prediction accepted')
    // At info, a request is what pino's default says of it: no headers.
    const completed = lines.find((l) => l.msg === 'request completed') as { req: Record<string, unknown>, res: Record<string, unknown>, responseTime: number }
    expect(completed.req).toEqual({ method: 'POST', url: '/v1/text-to-image', remoteAddress: '127.0.0.1' })
    expect(completed.res).toEqual({ statusCode: 200 })
    expect(completed.responseTime).toBeGreaterThan(0)
    const text = gw.logText()
    expect(text).not.toContain('caller-key-12345')
    expect(text).not.toContain(TOKEN)
    expect(text).not.toContain('marmalade')
  })

  it('a refused prompt is logged as a warning with its categories, not its text', async () => {
    const res = await request(`${gw.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-logs-2' },
      body: JSON.stringify({ prompt: 'explicit porn of a lighthouse keeper' })
    })
    expect(res.statusCode).toBe(422)
    await res.body.text()
    const warning = gw.logs.find((l) => l.request_id === 'req-logs-2' && l.level === 40)
    expect(warning).toMatchObject({ msg: 'prompt refused by the content policy', categories: ['sexual'] })
    expect(gw.logText()).not.toContain('lighthouse keeper')
  })

  it('never hold the signature of an image URL, which is a credential while it lasts', async () => {
    const res = await request(`${gw.url}/v1/text-to-image`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-logs-3' },
      body: JSON.stringify({ prompt: 'a signed postcard of a harbour' })
    })
    const { output } = await res.body.json() as { output: string[] }
    const signature = new URL(output[0]!).searchParams.get('sig')!
    expect((await request(output[0]!, { headers: { 'x-request-id': 'req-logs-4' } })).statusCode).toBe(200)
    const incoming = gw.logs.find((l) => l.request_id === 'req-logs-4' && l.msg === 'request completed') as { req: { url: string } }
    expect(incoming.req.url).toMatch(/\/images\/0\?exp=\d+&sig=\[redacted\]$/)
    expect(gw.logText()).not.toContain(signature)
  })

  it('probes stay out of the info log', async () => {
    const before = gw.logs.length
    for (let i = 0; i < 3; i++) await (await request(`${gw.url}/health/live`)).body.text()
    expect(gw.logs.length).toBe(before)
  })
})

describe('logs at debug', () => {
  let loud: TestGateway
  beforeAll(async () => {
    loud = await startGateway({ env: { LOG_LEVEL: 'debug' } })
  })
  afterAll(async () => {
    await loud.close()
  })

  it('add a line when a request starts, and the request headers, with credentials redacted', async () => {
    const res = await request(`${loud.url}/v1/models`, { headers: { authorization: 'Bearer debug-key-67890', 'x-request-id': 'req-debug-1', 'user-agent': 'log-test' } })
    await res.body.text()
    const incoming = loud.logs.find((l) => l.request_id === 'req-debug-1' && l.msg === 'incoming request') as { req: { headers: Record<string, string> } }
    expect(incoming.req.headers).toMatchObject({ authorization: '[redacted]', 'user-agent': 'log-test' })
    expect(loud.logText()).not.toContain('debug-key-67890')
  })
})
