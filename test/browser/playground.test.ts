import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import type { Page } from 'playwright-core'
import { startGateway } from '../helpers/gateway.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import { A11Y_CHECKS, eventually, fakeEventsRoute, findChromium, launchChromium } from './chromium.ts'
import type { A11yReport, PageDocument, PageElement, PageImage, TestBrowser } from './chromium.ts'

declare const document: PageDocument

const CHROMIUM = findChromium()
if (!CHROMIUM) process.stderr.write('test/browser: SKIPPED, no chromium binary (install Debian\'s chromium or set CHROMIUM_PATH)\n')

// flux-dev runs long enough (4 s) for a 2 s long-poll to see it processing; flux-schnell stays quick.
const DEV_SECONDS = 200

describe.skipIf(!CHROMIUM)('the playground in Chromium, with authentication off', { timeout: 60_000 }, () => {
  let gw: TestGateway
  let browser: TestBrowser
  let firstId: string

  beforeAll(async () => {
    gw = await startGateway({ emulator: { predictSeconds: { 'black-forest-labs/flux-dev': DEV_SECONDS } } })
    browser = await launchChromium(CHROMIUM!)
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await gw?.close()
  })

  const creates = () => gw.emulator.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/predictions'))

  async function openPlayground (): Promise<{ page: Page, errors: string[] }> {
    const tab = await browser.newPage()
    await tab.page.goto(`${gw.url}/`)
    await eventually(() => tab.page.locator('#model').isEnabled()).toBe(true)
    return tab
  }

  it('generates an image on the emulator, shows each status as it changes, and shows the image with a download link', async () => {
    const { page, errors } = await openPlayground()
    expect(await page.locator('#key-status').textContent()).toContain('Authentication is off')
    expect(await page.locator('#key-form').isHidden()).toBe(true)
    // Without keys every model may be used.
    expect(await page.locator('#model option').evaluateAll((os) => os.map((o) => (o as unknown as PageElement).value)))
      .toEqual(['flux-schnell', 'flux-dev', 'flux-1.1-pro', 'flux-kontext-pro'])

    await page.locator('#model').selectOption('flux-dev')
    await page.locator('#prompt').fill('a lighthouse on a cliff at dusk, oil painting')
    await page.locator('#size').selectOption('1024x768')
    await page.locator('#seed').fill('42')
    await page.locator('#num-outputs').fill('2')
    // The quote comes from POST /v1/quotes: 2 images × 2 credits.
    await eventually(() => page.locator('#quote').textContent()).toContain('4 credits for 2 images of FLUX.1 [dev]')
    await browser.screenshot(page, 'playground-1-ready')

    await page.locator('#generate').click()
    await page.locator('#progress-log li[data-status="processing"]').waitFor()
    await browser.screenshot(page, 'playground-2-progress')
    await page.locator('#images img').nth(1).waitFor()
    await page.locator('#progress-log li[data-status="succeeded"]').waitFor()
    await eventually(() => page.locator('#images img').evaluateAll((imgs) => imgs.every((img) => (img as unknown as PageImage).complete))).toBe(true)
    await browser.screenshot(page, 'playground-3-images')

    // Every status once, in order, and how they arrived: the service lists its events route, so by server-sent events.
    expect(await page.locator('#progress-log li').evaluateAll((lis) => lis.map((li) => (li as unknown as PageElement).dataset.status)))
      .toEqual(['sending', 'starting', 'processing', 'succeeded'])
    expect(await page.locator('#progress-via').textContent()).toContain('server-sent events')
    expect(await page.locator('#progress-bar').getAttribute('value')).toBe('100')

    // What reached Replicate is what the form said.
    const sent = creates().at(-1)!.body as { input: Record<string, unknown> }
    expect(sent.input).toMatchObject({ prompt: 'a lighthouse on a cliff at dusk, oil painting', seed: 42, num_outputs: 2, aspect_ratio: '4:3' })

    // The images really loaded (signed URLs, no header needed), and the download links point at them.
    const images = page.locator('#images img')
    expect(await images.count()).toBe(2)
    for (let i = 0; i < 2; i++) {
      expect(await images.nth(i).evaluate((img) => (img as unknown as PageImage).naturalWidth)).toBe(1152)
    }
    firstId = (await page.locator('#images').getAttribute('data-prediction'))!
    const link = page.locator('#images a.download').first()
    expect(await link.getAttribute('download')).toBe(`${firstId}-1.webp`)
    const href = (await link.getAttribute('href'))!
    expect(href).toMatch(new RegExp(`^${gw.url}/v1/predictions/${firstId}/images/0\\?exp=\\d+&sig=`))
    const image = await request(href)
    expect(image.statusCode).toBe(200)
    expect(image.headers['content-type']).toBe('image/webp')
    await image.body.dump()
    // The adjusted size is said once, naming both fields.
    expect(await page.locator('#warnings li').allTextContents()).toEqual([expect.stringMatching(/^width, height flux-dev makes 1152×896 for 1024×768/)])
    expect(errors).toEqual([])
    await page.close()
  })

  it('shows each problem+json answer with its message, next to the field when it names one', async () => {
    const { page } = await openPlayground()
    const before = creates().length
    await page.locator('#model').selectOption('flux-schnell')

    await page.locator('#prompt').fill('a n.u.d.e statue')
    await page.locator('#generate').click()
    const alert = page.locator('#problem[data-code="content_policy_violation"]')
    await alert.waitFor()
    expect(await alert.getAttribute('role')).toBe('alert')
    const text = (await alert.textContent())!
    expect(text).toContain('The content policy refused this')
    expect(text).toContain('The prompt was refused by the content policy.')
    expect(text).toContain('sexual content')
    expect(text).toContain('HTTP 422')
    // The alert takes the focus, so a screen reader or keyboard user lands on it; a refused request shows no progress.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('problem')
    expect(await page.locator('#progress-section').isHidden()).toBe(true)
    await browser.screenshot(page, 'playground-4-content-policy')

    await page.locator('#prompt').fill('  ')
    await page.locator('#seed').fill('-1')
    await page.locator('#generate').click()
    await page.locator('#problem[data-code="validation_error"]').waitFor()
    expect(await page.locator('#prompt').getAttribute('aria-invalid')).toBe('true')
    expect(await page.locator('#prompt-error').textContent()).toMatch(/^prompt /)
    expect(await page.locator('#seed').getAttribute('aria-invalid')).toBe('true')
    expect(await page.locator('#seed-error').isVisible()).toBe(true)
    await browser.screenshot(page, 'playground-5-validation')
    expect(creates()).toHaveLength(before)

    // A prediction that fails upstream is reported like a problem too, with its id.
    await page.locator('#prompt').fill('a fail-test poster')
    await page.locator('#seed').fill('')
    await page.locator('#generate').click()
    await page.locator('#problem[data-code="prediction_failed"]').waitFor()
    expect(await page.locator('#problem').textContent()).toContain('prediction')
    expect(await page.locator('#prompt').getAttribute('aria-invalid')).toBeNull()
    await page.close()
  })

  it('follows by server-sent events when the service documents an events route, and by long-polls when the stream fails', async () => {
    const { page, errors } = await browser.newPage()
    // This service has no events route yet: the page is shown one, replaying the prediction's real states.
    const streamed = await fakeEventsRoute(page, gw.url)
    const polls: string[] = []
    page.on('request', (r) => { if (r.url().includes('?wait=')) polls.push(r.url()) })
    await page.goto(`${gw.url}/`)
    await eventually(() => page.locator('#model').isEnabled()).toBe(true)
    await page.locator('#model').selectOption('flux-schnell')
    await page.locator('#prompt').fill('a harbour at night')

    const statuses = () => page.locator('#progress-log li').evaluateAll((lis) => lis.map((li) => (li as unknown as PageElement).dataset.status))
    await page.locator('#generate').click()
    await page.locator('#images img').waitFor()
    expect(await statuses()).toEqual(['sending', 'starting', 'processing', 'succeeded'])
    expect(await page.locator('#progress-via').textContent()).toContain('server-sent events')
    // Without a key the page uses EventSource, which sends no Authorization header.
    expect(streamed).toEqual([{ id: await page.locator('#images').getAttribute('data-prediction'), authorization: undefined }])
    expect(polls).toEqual([])
    await eventually(() => page.locator('#images img').evaluate((img) => (img as unknown as PageImage).naturalWidth)).toBeGreaterThan(0)

    // A stream that cannot be opened is no worse than none: long-polls take over.
    await page.unroute('**/v1/predictions/*/events')
    await page.route('**/v1/predictions/*/events', (route) => route.fulfill({ status: 503, contentType: 'application/problem+json', body: '{}' }))
    await page.locator('#prompt').fill('a harbour at dawn')
    await page.locator('#generate').click()
    await eventually(statuses).toEqual(['sending', 'starting', 'succeeded'])
    expect(await page.locator('#progress-via').textContent()).toContain('long-polling')
    expect(polls.length).toBeGreaterThan(0)
    expect(errors.filter((e) => !e.includes('status of 503'))).toEqual([])
    await page.close()
  })

  it('works from the keyboard alone, names every control, and keeps text contrast at WCAG AA in each state', async () => {
    const { page, errors } = await openPlayground()
    const check = () => page.evaluate(A11Y_CHECKS) as Promise<A11yReport>
    const focused = () => page.evaluate(() => ({ id: document.activeElement?.id, className: document.activeElement?.className }))
    expect(await check()).toEqual({ unlabelled: [], lowContrast: [] })

    // The first Tab reaches the skip link, which leads to the prompt; from there the form is in reading order.
    await page.keyboard.press('Tab')
    expect((await focused()).className).toBe('skip-link')
    await page.keyboard.press('Enter')
    expect((await focused()).id).toBe('prompt')
    await page.keyboard.type('a quiet harbour, drawn by keyboard')
    const order: Array<string | undefined> = []
    for (let i = 0; i < 5; i++) {
      await page.keyboard.press('Tab')
      order.push((await focused()).id)
    }
    expect(order).toEqual(['model', 'size', 'seed', 'num-outputs', 'generate'])
    await page.keyboard.press('Enter')
    await page.locator('#images img').waitFor()
    await page.locator('#progress-log li[data-status="succeeded"]').waitFor()
    expect(await check()).toEqual({ unlabelled: [], lowContrast: [] })

    await page.locator('#prompt').fill('a n.u.d.e statue')
    await page.locator('#prompt').press('Tab')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Tab')
    await page.keyboard.press('Enter')
    await page.locator('#problem[data-code="content_policy_violation"]').waitFor()
    expect(await check()).toEqual({ unlabelled: [], lowContrast: [] })
    expect(errors.filter((e) => !e.includes('status of 422'))).toEqual([])
    await page.close()
  })

  it('cancels a running prediction, and fits a phone-sized screen', async () => {
    const { page, errors } = await openPlayground()
    await page.setViewportSize({ width: 390, height: 844 })
    await page.locator('#model').selectOption('flux-dev')
    await page.locator('#prompt').fill('a red fox in the snow, watercolour')
    await page.locator('#generate').click()
    await page.locator('#progress-log li[data-status="processing"]').waitFor()
    await page.locator('#cancel').click()
    await page.locator('#progress-log li[data-status="canceled"]').waitFor()
    const id = (await page.locator('#history-list li').first().getAttribute('data-id'))!
    const upstreamId = await gw.upstreamId(id)
    expect(gw.emulator.requests.some((r) => r.method === 'POST' && r.path.endsWith(`/predictions/${upstreamId}/cancel`))).toBe(true)
    // It had started, so it keeps its price, and says so.
    expect(await page.locator('#progress-log li[data-status="canceled"]').textContent()).toContain('Canceled after it started (2 credits)')
    expect(await page.locator('#cancel').isHidden()).toBe(true)
    expect(await page.locator(`#history-list li[data-id="${id}"]`).getAttribute('data-status')).toBe('canceled')
    // Nothing sticks out sideways on a narrow screen.
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390)
    await browser.screenshot(page, 'playground-9-canceled-narrow')
    expect(errors).toEqual([])
    await page.close()
  })

  it('lists the history, newest first, and loads more pages as the list scrolls into view', async () => {
    // Enough predictions for two pages (the page asks for 12 at a time).
    for (let i = 0; i < 14; i++) {
      const res = await gw.call('POST', '/v1/text-to-image', { prompt: `numbered tile ${i}`, model: 'flux-schnell' })
      expect(res.status).toBe(200)
    }
    const all = await gw.call('GET', '/v1/predictions?limit=100')
    const ids = (all.body.data as Array<{ id: string }>).map((p) => p.id)
    expect(ids.length).toBeGreaterThan(12)
    expect(ids).toContain(firstId)

    const { page, errors } = await openPlayground()
    const cursors: string[] = []
    page.on('request', (r) => { if (r.url().includes('/v1/predictions?') && r.url().includes('cursor=')) cursors.push(r.url()) })
    const items = page.locator('#history-list li')
    await eventually(() => items.count()).toBe(12)
    expect(cursors).toEqual([])
    await page.locator('#history-more').scrollIntoViewIfNeeded()
    await eventually(() => items.count()).toBe(ids.length)
    expect(cursors).toHaveLength(1)
    expect(await items.evaluateAll((lis) => lis.map((li) => (li as unknown as PageElement).dataset.id))).toEqual(ids)
    expect(await page.locator('#history-status').textContent()).toBe(`All ${ids.length} predictions shown.`)
    await browser.screenshot(page, 'playground-6-history')

    // Picking the first generation from the history shows its images again.
    await page.locator(`#history-list li[data-id="${firstId}"] button`).click()
    await eventually(() => page.locator('#images').getAttribute('data-prediction')).toBe(firstId)
    await eventually(() => page.locator('#images img').first().evaluate((img) => (img as unknown as PageImage).naturalWidth)).toBe(1152)
    expect(errors).toEqual([])
    await page.close()
  })
})
