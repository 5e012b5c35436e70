/**
 * A real browser against the embedded default: headless Chromium is challenged (it declares
 * itself as HeadlessChrome), solves the proof of work, comes back with the clearance and is
 * let through on its next visit. A browser without JavaScript stays challenged.
 */
import { mkdirSync } from 'node:fs'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from '../conformance/harness.js'
import { launchChromium } from './chromium.js'

const SHOTS = new URL('../../test-results/', import.meta.url)

let browser: Browser
let site: Site

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true })
  browser = await launchChromium()
  // Bare defaults: the local policy engine and its self-hosted challenge.
  site = await startSite({ gate: {} })
})

afterAll(async () => {
  await browser?.close()
  await site?.close()
})

describe(`a real browser and the self-hosted challenge (${framework})`, () => {
  it('is challenged, solves it, lands on the original page with the clearance, and passes next time', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    const seen: string[] = []
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) seen.push(new URL(frame.url()).pathname)
    })
    let solveMs: number | undefined
    page.on('request', (sent) => {
      if (!sent.url().endsWith('/.sallyport/verify')) return
      const payload = new URLSearchParams(sent.postData() ?? '').get('payload')
      solveMs = (JSON.parse(payload ?? '{}') as { solution?: { time?: number } }).solution?.time
    })
    const started = performance.now()
    await page.goto(`${site.url}/products?page=2`, { waitUntil: 'domcontentloaded' })
    await page.waitForURL(`${site.url}/products?page=2`, { timeout: 15_000 })
    const solvedInMs = performance.now() - started
    expect(seen).toContain('/.sallyport/challenge')
    const body = JSON.parse((await page.textContent('body')) ?? '{}') as { path?: string; decision?: { verdict?: string } }
    expect(body.path).toBe('/products?page=2')
    expect(body.decision?.verdict).toBe('allow')
    const cookies = await context.cookies()
    const clearance = cookies.find((cookie) => cookie.name === 'sallyport_clearance')
    expect(clearance).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' })

    const again = await page.goto(`${site.url}/account`)
    expect(again?.status()).toBe(200)
    expect(again?.request().redirectedFrom()).toBeNull()
    expect(solveMs).toBeTypeOf('number')
    console.info(
      `[browser] ${framework}: proof of work solved in ${solveMs} ms; challenged page to original page in ${Math.round(solvedInMs)} ms`,
    )
    await context.close()
  })

  it('shows a readable page while it checks, and stays challenged without JavaScript', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false })
    const page = await context.newPage()
    await page.goto(`${site.url}/products`)
    expect(new URL(page.url()).pathname).toBe('/.sallyport/challenge')
    await expect.poll(() => page.locator('noscript, .noscript').first().textContent()).toContain('needs JavaScript')
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Just a moment')
    await page.screenshot({ path: new URL(`challenge-nojs-${framework}.png`, SHOTS).pathname, fullPage: true })
    await page.goto(`${site.url}/products`)
    expect(new URL(page.url()).pathname).toBe('/.sallyport/challenge')
    expect((await context.cookies()).some((cookie) => cookie.name === 'sallyport_clearance')).toBe(false)
    await context.close()

    // With JavaScript, hold the answer back so the page can be seen mid-check.
    const shown = await browser.newContext()
    const live = await shown.newPage()
    // A 204 answer to the form post leaves the page where it is.
    await live.route('**/.sallyport/verify', (route) => route.fulfill({ status: 204 }))
    await live.goto(`${site.url}/products`, { waitUntil: 'commit' })
    await live.waitForSelector('#status[data-state=done]')
    await live.screenshot({ path: new URL(`challenge-${framework}.png`, SHOTS).pathname, fullPage: true })
    await shown.close()
  })
})
