/**
 * A person at a login form, in real Chromium, against bare defaults: past ten attempts the
 * checkpoint-flood rule challenges the form post; the browser lands on the challenge page,
 * its script solves the proof of work, the browser comes back to the form, and the next
 * submission signs in.
 */
import type { Browser, Page, Response } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from '../conformance/harness.js'
import { launchChromium } from './chromium.js'

/**
 * A person's browser, not a declared headless one: with Chromium's own `HeadlessChrome` user
 * agent the form page itself would be challenged, and that clearance would cover the logins.
 */
const PERSON = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36'

let browser: Browser
let site: Site

beforeAll(async () => {
  browser = await launchChromium()
  site = await startSite({ gate: {} })
})

afterAll(async () => {
  await browser?.close()
  await site?.close()
})

/** Fills in the form and submits it; resolves with the answer to the form's own POST. */
async function signIn(page: Page): Promise<Response> {
  await page.fill('input[name=email]', 'ada@example.com')
  await page.fill('input[name=password]', 'correct horse')
  const posted = page.waitForResponse((response) => response.request().method() === 'POST' && response.url() === `${site.url}/login`)
  await page.click('button[type=submit]')
  return posted
}

interface LoginAnswer {
  route?: string
  decision?: { verdict?: string; reason?: string | null; signals?: Record<string, unknown> }
}

async function answerOn(page: Page): Promise<LoginAnswer> {
  await page.waitForLoadState('domcontentloaded')
  return JSON.parse((await page.textContent('body')) ?? '{}') as LoginAnswer
}

describe(`a person at a login form past the limit, in Chromium (${framework})`, () => {
  it('is sent to the challenge, solves it, returns to the form and signs in', async () => {
    const context = await browser.newContext({ userAgent: PERSON })
    try {
      const page = await context.newPage()
      const seen: string[] = []
      page.on('framenavigated', (frame) => {
        if (frame === page.mainFrame()) seen.push(new URL(frame.url()).pathname)
      })

      for (let attempt = 1; attempt <= 10; attempt++) {
        await page.goto(`${site.url}/login`)
        const answer = await signIn(page)
        expect(answer.status()).toBe(200)
        expect(await answerOn(page)).toMatchObject({ route: 'login', decision: { verdict: 'allow' } })
      }

      // The form's page has a query the form's action lacks: the return is to the page (the Referer).
      const formPage = `${site.url}/login?next=%2Forders`
      await page.goto(formPage)
      const verified = page.waitForResponse((response) => response.url().endsWith('/.sallyport/verify'), { timeout: 15_000 })
      // Awaited below; a failure before then must fail the test, not leave an unhandled rejection.
      verified.catch(() => undefined)
      const challenged = await signIn(page)
      expect(challenged.status()).toBe(303)
      const location = new URL((await challenged.headerValue('location')) ?? 'missing:')
      expect(location.pathname).toBe('/.sallyport/challenge')
      expect(location.searchParams.get('redirect_url')).toBe(formPage)
      // The page's own script solves the proof of work and posts it; the answer sends the browser back.
      expect((await verified).status()).toBe(303)
      await page.waitForURL(formPage)
      await page.waitForSelector('form')
      expect(seen).toContain('/.sallyport/challenge')
      expect((await context.cookies()).some((cookie) => cookie.name === 'sallyport_clearance')).toBe(true)

      const again = await signIn(page)
      expect(again.status()).toBe(200)
      expect(await answerOn(page)).toMatchObject({
        route: 'login',
        decision: { verdict: 'allow', signals: { clearance: true } },
      })
    } finally {
      await context.close()
    }
  })
})
