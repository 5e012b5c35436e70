import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type DecisionBackend, httpBackend, type Verdict } from '@sallyport/core'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, hookRespond, rawRequest, type Site, startSite } from './harness.js'

let fake: FakeTrustedAccounts
let site: Site | undefined

beforeAll(async () => {
  fake = await fakeTrustedAccounts()
})
afterAll(() => fake.close())
afterEach(async () => {
  await site?.close()
  site = undefined
  fake.reset()
})

const backend = () => trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url })
const fixed = (verdict: Verdict, reason = `rule:${verdict}`): DecisionBackend => ({
  name: 'fixed',
  decide: async () => ({ verdict, reason }),
})
const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8'

function redirectUrlOf(location: string | undefined): URL {
  const target = new URL(location ?? 'missing:')
  return new URL(target.searchParams.get('redirect_url') ?? 'missing:')
}

describe(`verdicts become responses (${framework})`, () => {
  it('allow: the route runs and sees the decision', async () => {
    site = await startSite({ gate: { backend: backend() } })
    const response = await request(site.url).get('/products').expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', wouldBe: 'allow', source: 'backend', backend: 'trusted-accounts' })
    expect(site.decisions).toHaveLength(1)
  })

  it('challenge: an HTML navigation goes to the hosted page with trusted_id, publishable_key and redirect_url', async () => {
    site = await startSite({ gate: { backend: backend() } })
    fake.reply({ decision: 'challenge', setCookies: ['trusted_id=tid_new; Path=/'] })
    const response = await request(site.url).get('/products?page=2').set('Accept', HTML).expect(302)
    const location = new URL(String(response.headers.location))
    expect(location.origin + location.pathname).toBe('https://challenge.trustedaccounts.org/challenge.html')
    expect(location.searchParams.get('trusted_id')).toBe('tid_new')
    expect(location.searchParams.get('publishable_key')).toBe('pk_test')
    expect(location.searchParams.get('redirect_url')).toBe(`${site.url}/products?page=2`)
    expect(response.headers['set-cookie']).toContain('trusted_id=tid_new; Path=/')
    expect(response.headers['cache-control']).toBe('no-store')
    expect(site.handled()).toBe(0)
  })

  it('challenge: an API call gets 403 challenge_required with the reason', async () => {
    site = await startSite({ gate: { backend: backend() } })
    fake.reply({ decision: 'challenge' })
    const response = await request(site.url).get('/api/products').set('Accept', 'application/json').expect(403)
    expect(response.body).toEqual({ error: 'challenge_required', reason: 'trusted-accounts:challenge' })
  })

  it('challenge: a configured page wins over the hosted one', async () => {
    site = await startSite({ gate: { backend: backend(), challenge: { url: 'https://verify.shop.test/check' } } })
    fake.reply({ decision: 'challenge' })
    const response = await request(site.url).get('/').set('Accept', HTML).expect(302)
    expect(response.headers.location).toMatch(/^https:\/\/verify\.shop\.test\/check\?/)
  })

  it('challenge: a step-up hook answers instead', async () => {
    site = await startSite({
      gate: {
        backend: fixed('challenge'),
        challenge: { hook: (decision, native) => hookRespond(native, 401, { stepUp: decision.reason }) },
      },
    })
    const response = await request(site.url).get('/').set('Accept', HTML).expect(401)
    expect(response.body).toEqual({ stepUp: 'rule:challenge' })
  })

  it("challenge: a hook returning 'continue' lets the request through", async () => {
    site = await startSite({ gate: { backend: fixed('challenge'), challenge: { hook: () => 'continue' } } })
    await request(site.url).get('/').expect(200)
    expect(site.handled()).toBe(1)
  })

  it('deny: JSON by default, an HTML page for browsers, the block page for navigations with a hosted page', async () => {
    site = await startSite({ gate: { backend: fixed('deny', 'deny_ip') } })
    const json = await request(site.url).get('/api/products').expect(403)
    expect(json.body).toEqual({ error: 'forbidden', requestId: null })
    const html = await request(site.url).get('/').set('Accept', HTML).expect(403)
    expect(html.headers['content-type']).toMatch(/^text\/html/)
    expect(html.text).toContain('Access denied')
    await site.close()

    site = await startSite({ gate: { backend: backend() } })
    fake.reply({ decision: 'block' })
    const blocked = await request(site.url).get('/').set('Accept', HTML).expect(302)
    expect(blocked.headers.location).toMatch(/^https:\/\/blocked\.trustedaccounts\.org\/blocked\.html\?/)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', wouldBe: 'deny' })
  })

  it('deny: a configured block page is used for navigations', async () => {
    site = await startSite({ gate: { backend: fixed('deny'), deny: { url: 'https://shop.test/blocked' } } })
    const response = await request(site.url).get('/').set('Accept', HTML).expect(302)
    expect(response.headers.location).toMatch(/^https:\/\/shop\.test\/blocked\?redirect_url=/)
  })

  it('deny and challenge hold even when an earlier middleware prepared a default response', async () => {
    site = await startSite({ presetResponse: true, gate: { backend: fixed('deny') } })
    await request(site.url).get('/api').set('Accept', 'application/json').expect(403)
    await site.close()
    site = await startSite({ presetResponse: true, gate: { backend: fixed('challenge') } })
    const response = await request(site.url).get('/api').set('Accept', 'application/json').expect(403)
    expect(response.body.error).toBe('challenge_required')
  })

  it('review: onReview runs, then the route runs with the decision', async () => {
    const reviewed: string[] = []
    site = await startSite({
      gate: { backend: fixed('review', 'manual'), onReview: (decision) => void reviewed.push(String(decision.reason)) },
    })
    const response = await request(site.url).get('/').expect(200)
    expect(reviewed).toEqual(['manual'])
    expect(response.body.decision).toMatchObject({ verdict: 'review', reason: 'manual' })
  })

  it('monitor mode enforces allow and keeps what would have happened', async () => {
    site = await startSite({ gate: { backend: backend(), mode: 'monitor' } })
    fake.reply({ decision: 'block' })
    const response = await request(site.url).get('/').set('Accept', HTML).expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', wouldBe: 'deny', source: 'backend' })
  })

  it('static assets under staticPaths, OPTIONS and skip rules make no backend call', async () => {
    site = await startSite({ gate: { backend: backend(), skip: ['/health', /^\/metrics$/], staticPaths: ['/assets'] } })
    await request(site.url).get('/assets/app.css').expect(200)
    await request(site.url).options('/').expect(200)
    await request(site.url).get('/health/live').expect(200)
    await request(site.url).get('/metrics').expect(200)
    expect(fake.requests).toHaveLength(0)
    expect(site.decisions.map((decision) => decision.source)).toEqual(['skip', 'skip', 'skip', 'skip'])
    await request(site.url).get('/healthy').expect(200)
    expect(fake.requests).toHaveLength(1)
  })
})

describe(`redirect_url never leaves the site (${framework})`, () => {
  it.each([['//evil.com'], ['/\\evil.com'], ['/%09/evil.com'], ['/%2F%2Fevil.com'], ['//evil.com/%2e%2e'], ['/\\/evil.com']])(
    'path %s',
    async (path) => {
      site = await startSite({ gate: { backend: fixed('challenge'), challenge: { url: 'https://verify.shop.test/' } } })
      const response = await rawRequest(site.port, [`GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${site.port}`, `Accept: ${HTML}`])
      expect(response.status).toBe(302)
      const [location] = response.header('location')
      expect(new URL(location ?? '').host).toBe('verify.shop.test')
      const back = redirectUrlOf(location)
      expect(back.host).toBe(`127.0.0.1:${site.port}`)
      expect(back.protocol).toBe('http:')
    },
  )

  it('ignores X-Forwarded-Host from an untrusted peer and a Host outside redirectHosts', async () => {
    site = await startSite({
      gate: { backend: fixed('challenge'), challenge: { url: 'https://verify.shop.test/' }, redirectHosts: ['shop.test'] },
    })
    const spoofed = await rawRequest(site.port, ['GET /cart HTTP/1.1', 'Host: evil.com', 'X-Forwarded-Host: evil.com', `Accept: ${HTML}`])
    expect(redirectUrlOf(spoofed.header('location')[0]).href).toBe('http://shop.test/cart')
  })

  it('uses X-Forwarded-Host and -Proto from a trusted proxy', async () => {
    site = await startSite({
      gate: { backend: fixed('challenge'), challenge: { url: 'https://verify.shop.test/' }, trustProxy: 'loopback' },
    })
    const response = await rawRequest(site.port, [
      'GET /cart HTTP/1.1',
      'Host: internal:8080',
      'X-Forwarded-Host: shop.test',
      'X-Forwarded-Proto: https',
      `Accept: ${HTML}`,
    ])
    expect(redirectUrlOf(response.header('location')[0]).href).toBe('https://shop.test/cart')
  })
})

describe(`checkpoints (${framework})`, () => {
  let recorder: Server
  let received: unknown[] = []
  let verdict: Verdict = 'allow'
  let recorderUrl = ''

  beforeAll(async () => {
    recorder = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (chunk: Buffer) => chunks.push(chunk))
      req.on('end', () => {
        received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')))
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ verdict, reason: `risk:${verdict}` }))
      })
    })
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve))
    recorderUrl = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/decide`
  })
  afterAll(() => new Promise<void>((resolve) => recorder.close(() => resolve())))
  afterEach(() => {
    received = []
    verdict = 'allow'
  })

  it('sends the event, status and signals read from the parsed body', async () => {
    site = await startSite({ gate: { backend: httpBackend({ url: recorderUrl }), skip: ['/login'] } })
    const response = await request(site.url).post('/login').send({ email: 'ada@example.com', password: 'hunter2' }).expect(200)
    expect(received).toHaveLength(1)
    expect(received[0]).toMatchObject({ path: '/login', checkpoint: { event: 'login', status: 'attempted', email: 'ada@example.com' } })
    expect(JSON.stringify(received[0])).not.toContain('hunter2')
    expect(response.body).toMatchObject({ route: 'login', decision: { verdict: 'allow', source: 'backend' } })
  })

  it('a challenged login gets 403 challenge_required (not a redirect: it is not a navigation)', async () => {
    site = await startSite({ gate: { backend: httpBackend({ url: recorderUrl }), skip: ['/login'] } })
    verdict = 'challenge'
    const response = await request(site.url).post('/login').set('Accept', HTML).send({ email: 'ada@example.com' }).expect(403)
    expect(response.body).toEqual({ error: 'challenge_required', reason: 'risk:challenge' })
    expect(site.handled()).toBe(0)
  })

  it('fails closed at a checkpoint that asks for it while the site fails open', async () => {
    site = await startSite({
      gate: { backend: httpBackend({ url: 'http://127.0.0.1:9/decide' }), retries: 0 },
      checkpoint: { onError: 'deny' },
    })
    await request(site.url).get('/').expect(200)
    const response = await request(site.url).post('/login').send({ email: 'ada@example.com' }).expect(403)
    expect(response.body).toEqual({ error: 'forbidden', requestId: null })
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason: 'network' })
  })
})
