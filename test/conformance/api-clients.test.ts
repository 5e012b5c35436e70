/**
 * What the default rules leave to API clients, and what `strictRules` judges instead: a
 * scraper asking a page for JSON gets the page from the defaults and a 403 from the strict
 * rules, while a browser's page loads and its own JSON calls pass both.
 */
import { CLEARANCE_COOKIE, localPolicies, strictRules } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'
import { solveChallengePage } from './proof-of-work.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36'
/** What Chrome sends for a page load. */
const PAGE_LOAD = {
  'user-agent': CHROME,
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
}
/** What Chrome sends for the page's own `fetch('/api/…')`. */
const PAGE_FETCH = {
  'user-agent': CHROME,
  accept: 'application/json',
  'accept-language': 'en-GB,en;q=0.9',
  'sec-fetch-mode': 'cors',
  'sec-fetch-dest': 'empty',
}
/** A scraper that asks the login page for JSON, on its library's own user agent. */
const SCRAPER = { 'user-agent': 'python-requests/2.31.0', accept: 'application/json' }

function strictSite(): Promise<Site> {
  const backend = localPolicies({ rules: strictRules, secret: 's'.repeat(32), logger: { warn() {}, error() {} } })
  return startSite({ gate: { backend } })
}

describe(`API clients (${framework})`, () => {
  it("with the default rules, a scraper's JSON request to a page gets the page: only page loads are judged by user agent", async () => {
    site = await startSite({ gate: {} })
    const scraped = await request(site.url)
      .get('/login')
      .set(SCRAPER)
      .expect(200)
      .expect('content-type', /text\/html/)
    expect(scraped.text).toContain('<form method="post" action="/login">')
    expect(site.decisions[0]).toMatchObject({ verdict: 'allow', reason: null })
    // The same client asking for HTML is a page load, and is challenged.
    await request(site.url)
      .get('/login')
      .set({ ...SCRAPER, accept: 'text/html' })
      .expect(302)
  })

  it("with strictRules, the same request is refused (403 challenge_required) and the page never runs; a browser's page load and JSON calls pass", async () => {
    site = await strictSite()
    const refused = await request(site.url)
      .get('/login')
      .set(SCRAPER)
      .expect(403)
      .expect('content-type', /application\/json/)
    expect(refused.body).toEqual({ error: 'challenge_required', reason: 'automation-user-agent-request' })
    await request(site.url).post('/api/orders').set({ 'user-agent': 'okhttp/4.12.0' }).send({ id: 1 }).expect(403)
    expect(site.handled()).toBe(0)

    const page = await request(site.url)
      .get('/login')
      .set(PAGE_LOAD)
      .expect(200)
      .expect('content-type', /text\/html/)
    expect(page.text).toContain('<form')
    const products = await request(site.url).get('/api/products').set(PAGE_FETCH).expect(200)
    expect(products.body).toMatchObject({ path: '/api/products', decision: { verdict: 'allow', reason: null } })
    await request(site.url).post('/api/cart').set(PAGE_FETCH).send({ sku: 'tea' }).expect(200)
    expect(site.handled()).toBe(3)
  })

  it('with strictRules, past 600 requests a minute from one IP a browser solves one challenge and carries on; API calls get 403 until then', async () => {
    site = await strictSite()
    const url = site.url
    // 600 requests: pages and the JSON calls they make, in bursts as a browser sends them.
    for (let burst = 0; burst < 20; burst++) {
      await Promise.all(
        Array.from({ length: 30 }, (_, index) =>
          index === 0
            ? request(url).get(`/p/${burst}`).set(PAGE_LOAD).expect(200)
            : request(url).get(`/api/items/${burst}-${index}`).set(PAGE_FETCH).expect(200),
        ),
      )
    }
    const flooded = await request(url).get('/api/items/next').set(PAGE_FETCH).expect(403)
    expect(flooded.body).toEqual({ error: 'challenge_required', reason: 'request-flood' })
    const challenged = await request(url).get('/p/next').set(PAGE_LOAD).expect(302)
    const pageUrl = new URL(String(challenged.headers.location))
    expect(pageUrl.pathname).toBe('/.sallyport/challenge')

    const challengePage = await request(url)
      .get(pageUrl.pathname + pageUrl.search)
      .set(PAGE_LOAD)
      .expect(200)
    const verified = await request(url)
      .post('/.sallyport/verify')
      .type('form')
      .set('user-agent', CHROME)
      .send({ payload: solveChallengePage(challengePage.text), redirect_url: pageUrl.searchParams.get('redirect_url') ?? '' })
      .expect(303)
    const setCookie = ([] as string[]).concat(verified.headers['set-cookie'] ?? [])
    const clearance = setCookie.find((value) => value.startsWith(`${CLEARANCE_COOKIE}=`))?.split(';')[0] ?? ''
    expect(clearance).not.toBe('')

    await request(url)
      .get('/p/next')
      .set({ ...PAGE_LOAD, cookie: clearance })
      .expect(200)
    const passed = await request(url)
      .get('/api/items/next')
      .set({ ...PAGE_FETCH, cookie: clearance })
      .expect(200)
    expect(passed.body).toMatchObject({ decision: { verdict: 'allow', signals: { clearance: true } } })
    // The count is per IP: another browser behind the same address has to solve one too.
    const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'
    await request(url)
      .get('/p/next')
      .set({ ...PAGE_LOAD, 'user-agent': firefox })
      .expect(302)
  })
})
