/**
 * Two `guard()`s in one app and no SALLYPORT_SECRET: a real browser solves the challenge
 * once and gets through both gates, rather than being sent round the challenge for ever.
 */
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from '../conformance/harness.js'
import { launchChromium } from './chromium.js'

let browser: Browser
let site: Site
const savedSecret = process.env.SALLYPORT_SECRET

beforeAll(async () => {
  browser = await launchChromium()
  delete process.env.SALLYPORT_SECRET
  site = await startSite({ gate: {}, secondGate: {} })
})

afterAll(async () => {
  await browser?.close()
  await site?.close()
  if (savedSecret !== undefined) process.env.SALLYPORT_SECRET = savedSecret
})

describe(`a real browser and two gates without a secret (${framework})`, () => {
  it('solves one challenge, lands on the page it asked for, and passes both gates next time', async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    let solved = 0
    page.on('request', (sent) => {
      if (sent.url().endsWith('/.sallyport/verify')) solved++
    })
    const target = `${site.url}/products?page=2`
    await page.goto(target, { waitUntil: 'commit' })
    // Sent round the challenge, the browser would never load the page it asked for.
    const arrived = await page.waitForURL(target, { timeout: 10_000 }).then(
      () => true,
      () => false,
    )
    expect({ arrived, solved }).toEqual({ arrived: true, solved: 1 })
    const body = JSON.parse((await page.textContent('body')) ?? '{}') as { path?: string; decision?: { verdict?: string } }
    expect(body).toMatchObject({ path: '/products?page=2', decision: { verdict: 'allow' } })

    const again = await page.goto(`${site.url}/account`)
    expect(again?.status()).toBe(200)
    expect(again?.request().redirectedFrom()).toBeNull()
    expect(solved).toBe(1)
    await context.close()
  })
})
