/**
 * Two `guard()`s in one app: the challenge page and its verify route are answered by the
 * first gate a request reaches, so the clearance it earns has to count at the second one
 * too, or a visitor is sent round the challenge for ever.
 */
import { CLEARANCE_COOKIE, localPolicies } from '@sallyport/core'
import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'
import { solveChallengePage } from './proof-of-work.js'

let site: Site | undefined
let savedSecret: string | undefined
beforeEach(() => {
  savedSecret = process.env.SALLYPORT_SECRET
  delete process.env.SALLYPORT_SECRET
})
afterEach(async () => {
  await site?.close()
  site = undefined
  if (savedSecret !== undefined) process.env.SALLYPORT_SECRET = savedSecret
})

/** A page load the default rules challenge: a headless browser that says so. */
const HEADLESS = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/141.0.0.0 Safari/537.36',
}

/** Follows the challenge the way the page's script would, and returns the clearance cookie. */
async function solveOnce(current: Site, path: string): Promise<string> {
  const challenged = await request(current.url).get(path).set(HEADLESS).expect(302)
  const pageUrl = new URL(String(challenged.headers.location))
  expect(pageUrl.pathname).toBe('/.sallyport/challenge')
  const page = await request(current.url)
    .get(pageUrl.pathname + pageUrl.search)
    .set(HEADLESS)
    .expect(200)
  const verified = await request(current.url)
    .post('/.sallyport/verify')
    .type('form')
    .set('user-agent', HEADLESS['user-agent'])
    .send({ payload: solveChallengePage(page.text), redirect_url: pageUrl.searchParams.get('redirect_url') ?? '' })
    .expect(303)
  expect(verified.headers.location).toBe(`${current.url}${path}`)
  const cookie = ([] as string[]).concat(verified.headers['set-cookie'] ?? []).find((value) => value.startsWith(`${CLEARANCE_COOKIE}=`))
  expect(cookie).toBeDefined()
  return String(cookie).split(';')[0] as string
}

describe(`two gates in one app (${framework})`, () => {
  it('without a secret, one solved challenge lets the visitor through both gates', async () => {
    site = await startSite({ gate: {}, secondGate: {} })
    const cookie = await solveOnce(site, '/products?page=2')
    const before = site.decisions.length
    const back = await request(site.url).get('/products?page=2').set(HEADLESS).set('cookie', cookie)
    expect(back.status).toBe(200)
    expect(back.body.path).toBe('/products?page=2')
    // Both gates judged the request, and both let it through on the clearance.
    expect(site.decisions.slice(before).map((decision) => [decision.verdict, decision.source])).toEqual([
      ['allow', 'backend'],
      ['allow', 'backend'],
    ])
    await request(site.url).get('/account').set(HEADLESS).set('cookie', cookie).expect(200)
    // Each gate still says its clearances use a random key.
    expect(site.logs.filter(([, code]) => code === 'SP_WARN_EPHEMERAL_SECRET')).toHaveLength(2)
  })

  it('without a secret, a gate made later in the process accepts the clearance of one already closed', async () => {
    site = await startSite({ gate: {} })
    const cookie = await solveOnce(site, '/products')
    await site.close()
    // One random key per process, not per gate: the new gate knows it.
    site = await startSite({ gate: {} })
    await request(site.url).get('/products').set(HEADLESS).set('cookie', cookie).expect(200)
  })

  it('with different secrets, the clearance one gate issued is accepted by the other', async () => {
    site = await startSite({
      gate: { backend: localPolicies({ secret: 'a'.repeat(32) }) },
      secondGate: { backend: localPolicies({ secret: 'b'.repeat(32) }) },
    })
    const cookie = await solveOnce(site, '/products')
    await request(site.url).get('/products').set(HEADLESS).set('cookie', cookie).expect(200)
    // A forged clearance is still worth nothing at either gate.
    const forged = cookie.replace(/.$/, (last) => (last === 'A' ? 'B' : 'A'))
    await request(site.url).get('/products').set(HEADLESS).set('cookie', forged).expect(302)
  })
})
