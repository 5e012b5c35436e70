import { CLEARANCE_COOKIE, createChallengeService, type DecisionBackend, MemoryStore, type Store } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'
import { solveChallengePage } from './proof-of-work.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8'
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) Sallyport-Test'

/** A backend that challenges every navigation until the visitor holds a clearance. */
function challenging(clock: { now: number }, store: Store = new MemoryStore()): DecisionBackend {
  const service = createChallengeService({ store, secret: 's'.repeat(32), difficulty: 3000, now: () => clock.now })
  return {
    name: 'local',
    cookies: [CLEARANCE_COOKIE],
    pages: { challenge: service.pagePath },
    routes: service.routes,
    decide: async (input) =>
      service.isCleared(input) ? { verdict: 'allow', reason: 'cleared' } : { verdict: 'challenge', reason: 'needs-check' },
  }
}

const solve = solveChallengePage

async function passChallenge(current: Site, path: string, userAgent = BROWSER) {
  const first = await request(current.url).get(path).set('Accept', HTML).set('User-Agent', userAgent).expect(302)
  const pageUrl = new URL(String(first.headers.location))
  expect(pageUrl.origin).toBe(current.url)
  expect(pageUrl.pathname).toBe('/.sallyport/challenge')
  const page = await request(current.url)
    .get(pageUrl.pathname + pageUrl.search)
    .set('Accept', HTML)
    .set('User-Agent', userAgent)
    .expect(200)
  const payload = solve(page.text)
  const verified = await request(current.url)
    .post('/.sallyport/verify')
    .type('form')
    .set('User-Agent', userAgent)
    .send({ payload, redirect_url: pageUrl.searchParams.get('redirect_url') ?? '' })
  return { page, verified, payload }
}

function clearanceFrom(setCookie: string[] | string | undefined): string {
  const cookies = Array.isArray(setCookie) ? setCookie : setCookie === undefined ? [] : [setCookie]
  const cookie = cookies.find((value) => value.startsWith(`${CLEARANCE_COOKIE}=`))
  expect(cookie).toBeDefined()
  return String(cookie).split(';')[0] ?? ''
}

describe(`self-hosted challenge (${framework})`, () => {
  it('challenges, verifies the proof of work, sets the clearance and returns the visitor', async () => {
    const clock = { now: Date.now() }
    site = await startSite({ gate: { backend: challenging(clock) } })
    const { page, verified } = await passChallenge(site, '/products?page=2')
    expect(page.headers['content-security-policy']).toContain("default-src 'none'")
    expect(page.text).toContain('<noscript>')
    expect(page.text).toContain('needs JavaScript')
    expect(verified.status).toBe(303)
    expect(verified.headers.location).toBe(`${site.url}/products?page=2`)
    const setCookie = ([] as string[]).concat(verified.headers['set-cookie'] ?? [])
    expect(setCookie.find((value) => value.startsWith(CLEARANCE_COOKIE))).toMatch(/; Path=\/; Max-Age=1800; HttpOnly; SameSite=Lax$/)

    const cookie = clearanceFrom(verified.headers['set-cookie'])
    const next = await request(site.url)
      .get('/products?page=2')
      .set('Accept', HTML)
      .set('User-Agent', BROWSER)
      .set('Cookie', cookie)
      .expect(200)
    expect(next.body.decision).toMatchObject({ verdict: 'allow', reason: 'cleared' })
  })

  it('refuses a clearance from another browser, a forged one and an expired one', async () => {
    const clock = { now: Date.now() }
    site = await startSite({ gate: { backend: challenging(clock) } })
    const { verified } = await passChallenge(site, '/')
    const cookie = clearanceFrom(verified.headers['set-cookie'])

    await request(site.url).get('/').set('Accept', HTML).set('User-Agent', 'Other/1.0').set('Cookie', cookie).expect(302)
    const forged = cookie.replace(/.$/, (last) => (last === 'A' ? 'B' : 'A'))
    await request(site.url).get('/').set('Accept', HTML).set('User-Agent', BROWSER).set('Cookie', forged).expect(302)
    clock.now += 31 * 60_000
    await request(site.url).get('/').set('Accept', HTML).set('User-Agent', BROWSER).set('Cookie', cookie).expect(302)
  })

  it('accepts one solution once', async () => {
    const clock = { now: Date.now() }
    site = await startSite({ gate: { backend: challenging(clock) } })
    const { verified, payload } = await passChallenge(site, '/')
    expect(verified.status).toBe(303)
    const replay = await request(site.url)
      .post('/.sallyport/verify')
      .type('form')
      .set('User-Agent', BROWSER)
      .send({ payload, redirect_url: '/' })
    expect(replay.status).toBe(403)
    expect(replay.headers['set-cookie']).toBeUndefined()
  })

  it('while the store is down, a verified solution still clears its own visitor and no one else', async () => {
    const down: Store = {
      increment: async () => {
        throw new Error('store down')
      },
      get: async () => undefined,
      delete: async () => {},
    }
    const clock = { now: Date.now() }
    site = await startSite({ gate: { backend: challenging(clock, down) } })
    const { verified, payload } = await passChallenge(site, '/')
    expect(verified.status).toBe(303)
    const cookie = clearanceFrom(verified.headers['set-cookie'])
    await request(site.url).get('/').set('Accept', HTML).set('User-Agent', BROWSER).set('Cookie', cookie).expect(200)
    // Replayed from another browser, the solution and the clearance it earned are worth nothing.
    const elsewhere = await request(site.url)
      .post('/.sallyport/verify')
      .type('form')
      .set('User-Agent', 'Mozilla/5.0 (another browser)')
      .send({ payload, redirect_url: '/' })
    expect(elsewhere.status).toBe(403)
    await request(site.url)
      .get('/')
      .set('Accept', HTML)
      .set('User-Agent', 'Mozilla/5.0 (another browser)')
      .set('Cookie', cookie)
      .expect(302)
  })

  it('refuses a solution made for another browser, and garbage', async () => {
    const clock = { now: Date.now() }
    site = await startSite({ gate: { backend: challenging(clock) } })
    const page = await request(site.url).get('/.sallyport/challenge').set('User-Agent', 'Solver/1.0').expect(200)
    const payload = solve(page.text)
    await request(site.url).post('/.sallyport/verify').type('form').set('User-Agent', BROWSER).send({ payload }).expect(403)
    await request(site.url).post('/.sallyport/verify').type('form').send({ payload: '{"challenge":1}' }).expect(403)
    await request(site.url)
      .post('/.sallyport/verify')
      .type('form')
      .send({ payload: 'x'.repeat(20_000) })
      .expect(403)
    await request(site.url).post('/.sallyport/verify').type('json').send({ payload }).expect(403)
  })

  it.each([['//evil.com'], ['https://evil.com/'], ['/\\evil.com'], ['/%2F%2Fevil.com'], ['javascript:alert(1)']])(
    'never sends the visitor off-site (redirect_url %s)',
    async (target) => {
      const clock = { now: Date.now() }
      site = await startSite({ gate: { backend: challenging(clock) } })
      const page = await request(site.url)
        .get('/.sallyport/challenge')
        .query({ redirect_url: target })
        .set('User-Agent', BROWSER)
        .expect(200)
      expect(page.text).not.toContain('evil.com')
      const verified = await request(site.url)
        .post('/.sallyport/verify')
        .type('form')
        .set('User-Agent', BROWSER)
        .send({ payload: solve(page.text), redirect_url: target })
        .expect(303)
      expect(new URL(String(verified.headers.location)).origin).toBe(site.url)
    },
  )

  it('answers unknown paths under its prefix with 404, never reaching the app', async () => {
    site = await startSite({ gate: { backend: challenging({ now: Date.now() }) } })
    await request(site.url).get('/.sallyport/other').expect(404)
    expect(site.handled()).toBe(0)
  })
})
