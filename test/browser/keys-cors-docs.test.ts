import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { storeWithKeys } from '../tenancy/helpers.ts'
import type { StateStore } from '../../src/stores/types.ts'
import { eventually, fakeEventsRoute, findChromium, launchChromium } from './chromium.ts'
import type { PageDocument, PageElement, PageImage, PageStorage, TestBrowser } from './chromium.ts'

declare const document: PageDocument
declare const sessionStorage: PageStorage
declare const localStorage: PageStorage

const CHROMIUM = findChromium()
if (!CHROMIUM) process.stderr.write('test/browser: SKIPPED, no chromium binary (install Debian\'s chromium or set CHROMIUM_PATH)\n')

/** Another origin's page: a bare HTML page on its own port, from which a test drives fetches as that page. */
async function startOtherOrigin (): Promise<{ server: Server, port: number }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end('<!doctype html><html lang="en"><head><title>another app</title></head><body><h1>another app</h1></body></html>')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

describe.skipIf(!CHROMIUM)('API keys, other origins and the docs in Chromium', { timeout: 60_000 }, () => {
  let gw: TestGateway
  let store: StateStore
  let keys: Record<'small' | 'app' | 'docs', string>
  let other: { server: Server, port: number }
  let browser: TestBrowser

  beforeAll(async () => {
    other = await startOtherOrigin();
    ({ store, keys } = await storeWithKeys({
      small: { plan: 'basic', budgetCredits: 5 },
      app: { plan: 'basic', rateLimitPerMinute: 100 },
      docs: { plan: 'basic' }
    }))
    gw = await startGateway({ env: { CORS_ORIGINS: `http://127.0.0.1:${other.port}` }, overrides: { tenancy: { store } } })
    browser = await launchChromium(CHROMIUM!)
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await gw?.close()
    await store?.close()
    await new Promise((resolve) => other?.server.close(resolve))
  })

  const creates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

  it('takes the key once for the tab, offers only the plan\'s models, and explains insufficient_credits', async () => {
    const { page, errors } = await browser.newPage()
    await page.goto(`${gw.url}/`)
    await eventually(() => page.locator('#key-status').textContent()).toContain('needs an API key')
    expect(await page.locator('#model').isDisabled()).toBe(true)
    expect(await page.locator('#generate').isDisabled()).toBe(true)
    expect(await page.locator('#history-status').textContent()).toBe('Enter a key to see your history.')
    // Focus is on the key field, so typing it is the first thing a keyboard user does.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('api-key')
    await browser.screenshot(page, 'playground-7-key-needed')

    // A key the service refuses is shown as its 401, and not kept.
    await page.keyboard.type('fgw_not_a_real_key_1234567890')
    await page.keyboard.press('Enter')
    await page.locator('#problem[data-code="unauthorized"]').waitFor()
    expect(await page.locator('#problem').textContent()).toContain('An API key is needed')
    expect(await page.locator('#key-status').textContent()).toBe('That key was refused: enter another.')
    expect(await page.evaluate(() => sessionStorage.getItem('flux-gateway.api-key'))).toBeNull()

    await page.locator('#api-key').fill(keys.small)
    await page.keyboard.press('Enter')
    await eventually(() => page.locator('#key-status').textContent()).toMatch(/on the basic plan\. 5 credits left this month\./)
    expect(await page.locator('#model option').evaluateAll((os) => os.map((o) => (o as unknown as PageElement).value))).toEqual(['flux-schnell', 'flux-dev'])
    expect(await page.locator('#model').inputValue()).toBe('flux-dev')
    // Kept for this tab only, and the field is emptied.
    expect(await page.evaluate(() => sessionStorage.getItem('flux-gateway.api-key'))).toBe(keys.small)
    expect(await page.evaluate(() => localStorage.length)).toBe(0)
    expect(await page.locator('#api-key').inputValue()).toBe('')

    // A reload keeps it; a generation goes through with it, long-polls included, and the balance follows.
    await page.reload()
    await eventually(() => page.locator('#model').isEnabled()).toBe(true)
    await page.locator('#model').selectOption('flux-schnell')
    await page.locator('#prompt').fill('a paper boat on a pond')
    await page.locator('#generate').click()
    await page.locator('#images img').waitFor()
    await eventually(() => page.locator('#images img').evaluate((img) => (img as unknown as PageImage).naturalWidth)).toBeGreaterThan(0)
    await eventually(() => page.locator('#key-status').textContent()).toContain('4 credits left this month.')

    // 4 images of flux-dev cost 8: the quote says so before, and the service's 402 is shown after.
    const before = creates().length
    await page.locator('#model').selectOption('flux-dev')
    await page.locator('#num-outputs').fill('4')
    await eventually(() => page.locator('#quote').textContent()).toContain('8 credits for 4 images of FLUX.1 [dev]')
    expect(await page.locator('#quote .over').textContent()).toBe('More than the 4 credits you have left.')
    await page.locator('#generate').click()
    const alert = page.locator('#problem[data-code="insufficient_credits"]')
    await alert.waitFor()
    const text = (await alert.textContent())!
    expect(text).toContain('Not enough credits')
    expect(text).toContain("This needs 8 credits; 4 remain in the key's monthly budget.")
    expect(text).toContain('Choose fewer images or a cheaper model')
    expect(text).toContain('HTTP 402')
    await browser.screenshot(page, 'playground-8-insufficient-credits')
    expect(creates()).toHaveLength(before)

    // Forgetting the key locks the page again.
    await page.locator('#forget-key').click()
    await eventually(() => page.locator('#key-status').textContent()).toContain('needs an API key')
    expect(await page.evaluate(() => sessionStorage.getItem('flux-gateway.api-key'))).toBeNull()
    expect(errors.filter((e) => !e.includes('status of 401') && !e.includes('status of 402'))).toEqual([])
    await page.close()
  })

  it('with a key, reads an events route through fetch, which can send the Authorization header EventSource cannot', async () => {
    const { page, errors } = await browser.newPage()
    const streamed = await fakeEventsRoute(page, gw.url)
    await page.goto(`${gw.url}/`)
    await page.locator('#api-key').fill(keys.app)
    await page.locator('#api-key').press('Enter')
    await eventually(() => page.locator('#model').isEnabled()).toBe(true)
    await page.locator('#model').selectOption('flux-schnell')
    await page.locator('#prompt').fill('a lantern in the fog')
    await page.locator('#generate').click()
    await page.locator('#progress-log li[data-status="succeeded"]').waitFor()
    expect(await page.locator('#progress-log li').evaluateAll((lis) => lis.map((li) => (li as unknown as PageElement).dataset.status)))
      .toEqual(['sending', 'starting', 'processing', 'succeeded'])
    expect(await page.locator('#progress-via').textContent()).toContain('server-sent events')
    expect(streamed).toEqual([{ id: await page.locator('#images').getAttribute('data-prediction'), authorization: `Bearer ${keys.app}` }])
    // Before the key is typed, the page's first calls are answered 401, which the browser logs.
    expect(errors.filter((e) => !e.includes('status of 401'))).toEqual([])
    await page.close()
  })

  it('lets a page on another allowed origin generate through the API and show the image; an origin not listed is blocked', async () => {
    const { page } = await browser.newPage()
    await page.goto(`http://127.0.0.1:${other.port}/`)
    const result = await page.evaluate(async ({ api, key }) => {
      const auth = { authorization: `Bearer ${key}` }
      const create = await fetch(`${api}/v1/text-to-image`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json', prefer: 'respond-async', 'idempotency-key': 'other-origin-1' },
        body: JSON.stringify({ prompt: 'a kite over the dunes', model: 'flux-schnell' })
      })
      const location = create.headers.get('location')
      const created = await create.json() as { id: string }
      const done = await (await fetch(`${api}${location}?wait=30`, { headers: auth })).json() as { status: string, output: string[] }
      const list = await (await fetch(`${api}/v1/predictions?limit=1`, { headers: auth })).json() as { data: Array<{ id: string }> }
      const img = document.createElement('img')
      img.src = done.output[0]!
      await img.decode()
      document.body.append(img)
      return {
        status: create.status,
        location,
        id: created.id,
        requestId: create.headers.get('x-request-id'),
        rateLimit: create.headers.get('ratelimit-limit'),
        preferenceApplied: create.headers.get('preference-applied'),
        final: done.status,
        listed: list.data[0]!.id,
        width: img.naturalWidth
      }
    }, { api: gw.url, key: keys.app })
    expect(result).toMatchObject({ status: 202, final: 'succeeded', rateLimit: '100', preferenceApplied: 'respond-async', width: 1024 })
    expect(result.location).toBe(`/v1/predictions/${result.id}`)
    expect(result.listed).toBe(result.id)
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/)
    await browser.screenshot(page, 'other-origin')

    // localhost is another origin than 127.0.0.1, and is not listed: its preflight is refused, nothing is created.
    const before = creates().length
    await page.goto(`http://localhost:${other.port}/`)
    const blocked = await page.evaluate(async ({ api, key }) => {
      try {
        await fetch(`${api}/v1/text-to-image`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ prompt: 'a kite over the dunes', model: 'flux-schnell' })
        })
        return 'answered'
      } catch (err) {
        return (err as Error).name
      }
    }, { api: gw.url, key: keys.app })
    expect(blocked).toBe('TypeError')
    expect(creates()).toHaveLength(before)
    await page.close()
  })

  it('"Try it out" on /docs takes the key in Authorize and calls the origin the page came from', async () => {
    const { page, errors } = await browser.newPage()
    await page.goto(`${gw.url}/docs`)
    await page.locator('.btn.authorize').click()
    await page.locator('.modal-ux input').fill(keys.docs)
    await page.locator('.modal-ux .auth-btn-wrapper button.authorize').click()
    await page.locator('.modal-ux .btn-done').click()

    const op = page.locator('#operations-usage-getKey')
    await op.locator('.opblock-summary').first().click()
    await op.locator('.try-out__btn').click()
    await op.locator('.execute').click()
    const live = op.locator('.live-responses-table tbody tr.response')
    const status = live.locator('td.response-col_status')
    await eventually(() => status.textContent()).toBe('200')
    expect(await op.locator('.request-url pre').textContent()).toBe(`${gw.url}/v1/key`)
    expect(await live.locator('td.response-col_description').textContent()).toContain('"plan": "basic"')
    await browser.screenshot(page, 'docs-try-it-out')
    // Swagger UI sets a few style attributes of its own, which the docs' CSP (style-src 'self') refuses; they are
    // cosmetic. Anything else (a refused call or script) fails the test.
    expect(errors.filter((e) => !e.startsWith('Applying inline style violates'))).toEqual([])
    await page.close()
  })
})
