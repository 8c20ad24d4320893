import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnGateway } from '../helpers/process.ts'
import type { GatewayProcess } from '../helpers/process.ts'
import { eventually, findChromium, launchChromium } from './chromium.ts'
import type { PageElement, PageImage, TestBrowser } from './chromium.ts'

const CHROMIUM = findChromium()
if (!CHROMIUM) process.stderr.write('test/browser: SKIPPED, no chromium binary (install Debian\'s chromium or set CHROMIUM_PATH)\n')

/**
 * The server as `npm start` runs it with nothing configured: outside production, no token (so the in-process emulator
 * in real time), no key (so authentication off), its state in ./data of a working directory of its own.
 */
describe.skipIf(!CHROMIUM)('the playground on the server as npm start runs it, with nothing configured', { timeout: 60_000 }, () => {
  let cwd: string
  let server: GatewayProcess
  let browser: TestBrowser

  beforeAll(async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'fgw-start-'))
    server = await spawnGateway({ NODE_ENV: 'development', READINESS_CACHE_MS: '5000' }, { cwd })
    browser = await launchChromium(CHROMIUM!)
  }, 60_000)
  afterAll(async () => {
    await browser?.close()
    await server?.stop()
    rmSync(cwd, { recursive: true, force: true })
  })

  it('generates an image end to end and lists it in the history', async () => {
    const { page, errors } = await browser.newPage()
    await page.goto(`${server.url}/`)
    await page.locator('#model:enabled').waitFor()
    expect(await page.locator('#key-status').textContent()).toContain('Authentication is off')
    await page.locator('#prompt').fill('a lighthouse on a cliff at dusk, oil painting')
    await page.locator('#generate').click()
    await page.locator('#progress-log li[data-status="succeeded"]').waitFor({ timeout: 30_000 })
    await eventually(() => page.locator('#images img').evaluateAll((imgs) => imgs.map((img) => (img as unknown as PageImage).naturalWidth))).toEqual([1024])
    const id = await page.locator('#images').getAttribute('data-prediction')
    expect(await page.locator('#history-list li').evaluateAll((lis) => lis.map((li) => (li as unknown as PageElement).dataset.id))).toEqual([id])
    await browser.screenshot(page, 'npm-start')
    expect(errors).toEqual([])
    await page.close()
  })
})
