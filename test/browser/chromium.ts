import { accessSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { chromium } from 'playwright-core'
import { expect } from 'vitest'
import type { BrowserContext, Page } from 'playwright-core'

/** Where screenshots of the pages go: git-ignored, kept after the run for people to look at. */
export const ARTIFACTS_DIR = path.join(import.meta.dirname, '..', 'artifacts')

/**
 * The system's Chromium (Debian's `chromium` package, which CI installs): `CHROMIUM_PATH` when set, else the first
 * `chromium` or `chromium-browser` on PATH. Playwright's own browser downloads are not used.
 */
export function findChromium (): string | undefined {
  const candidates = process.env.CHROMIUM_PATH
    ? [process.env.CHROMIUM_PATH]
    : (process.env.PATH ?? '').split(path.delimiter).filter(Boolean).flatMap((dir) => [path.join(dir, 'chromium'), path.join(dir, 'chromium-browser')])
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/**
 * `expect.poll` with the patience of a page on a busy machine (its default gives up after one second), still
 * bounded: what a test waits for either shows within 15 s or the test fails.
 */
export function eventually<T> (fn: () => T | Promise<T>) {
  return expect.poll(fn, { timeout: 15_000, interval: 50 })
}

/** Page checks for keyboard and eyesight (a11y-checks.js), as text for page.evaluate, which the page's CSP does not govern. */
export const A11Y_CHECKS = readFileSync(path.join(import.meta.dirname, 'a11y-checks.js'), 'utf8')
export interface A11yReport { unlabelled: string[], lowContrast: string[] }

export interface TestBrowser {
  context: BrowserContext
  /** A new tab (so a fresh sessionStorage) that records console errors and uncaught exceptions. */
  newPage: () => Promise<{ page: Page, errors: string[] }>
  /** Saves a full-page screenshot as `<name>.png` in ARTIFACTS_DIR. */
  screenshot: (page: Page, name: string) => Promise<string>
  close: () => Promise<void>
}

/** Headless Chromium on a fresh profile, kept off the network beyond what a page asks for. */
export async function launchChromium (executablePath: string): Promise<TestBrowser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'fgw-chromium-'))
  mkdirSync(ARTIFACTS_DIR, { recursive: true })
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync']
  })
  context.setDefaultTimeout(15_000)
  return {
    context,
    async newPage () {
      const page = await context.newPage()
      const errors: string[] = []
      page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()) })
      page.on('pageerror', (err) => errors.push(String(err)))
      return { page, errors }
    },
    async screenshot (page, name) {
      const file = path.join(ARTIFACTS_DIR, `${name}.png`)
      await page.screenshot({ path: file, fullPage: true })
      return file
    },
    async close () {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    }
  }
}

// Callbacks given to page.evaluate run in the page, but are type-checked here, where tsconfig has no DOM library
// (adding it would let browser globals pass unnoticed in the service's code). These are the few page shapes they use.
export interface PageImage { src: string, naturalWidth: number, complete: boolean, decode: () => Promise<void> }
export interface PageElement { id: string, className: string, value: string, dataset: Record<string, string | undefined> }
export interface PageDocument {
  activeElement: PageElement | null
  createElement: (tag: 'img') => PageImage
  body: { append: (node: PageImage) => void }
}
export interface PageStorage { getItem: (key: string) => string | null, length: number }

/**
 * Makes `page` see an SSE events route the service does not have yet: /openapi.json gains
 * `/v1/predictions/{id}/events`, and each stream opened there replays the prediction's real states as the gateway
 * gives them (`processing`, then the finished prediction read with `?wait=30`). Returns the streams opened, with the
 * Authorization header each carried.
 */
export async function fakeEventsRoute (page: Page, gatewayUrl: string): Promise<Array<{ id: string, authorization: string | undefined }>> {
  await page.route('**/openapi.json', async (route) => {
    const res = await route.fetch()
    const doc = await res.json() as { paths: Record<string, unknown> }
    doc.paths['/v1/predictions/{id}/events'] = { get: { operationId: 'streamPredictionEvents' } }
    await route.fulfill({ response: res, json: doc })
  })
  const streamed: Array<{ id: string, authorization: string | undefined }> = []
  await page.route('**/v1/predictions/*/events', async (route) => {
    const id = new URL(route.request().url()).pathname.split('/')[3]!
    const authorization = route.request().headers().authorization
    streamed.push({ id, authorization })
    const res = await route.fetch({ url: `${gatewayUrl}/v1/predictions/${id}?wait=30`, headers: authorization ? { authorization } : {} })
    const final = await res.json() as { status: string }
    const body = [{ id, status: 'processing' }, final].map((p) => `event: prediction\ndata: ${JSON.stringify(p)}\n\n`).join('')
    await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' }, body })
  })
  return streamed
}
