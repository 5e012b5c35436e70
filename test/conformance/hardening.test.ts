/** Attacks and misconfigurations found in review, each pinned by a test. */
import { type DecisionBackend, localPolicies, type Verdict } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, rawRequest, type Site, startSite } from './harness.js'
import { solveChallengePage } from './proof-of-work.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

const quietLocal = (options: Parameters<typeof localPolicies>[0] = {}) =>
  localPolicies({ logger: { warn() {}, error() {} }, secret: 's'.repeat(32), ...options })

describe(`hardening (${framework})`, () => {
  it('a # in the request line does not turn a page into a skipped static asset', async () => {
    const deny: DecisionBackend = { name: 'deny', decide: async () => ({ verdict: 'deny' }) }
    site = await startSite({ gate: { backend: deny, staticPaths: ['/'] } })
    for (const target of ['/admin#.css', '/admin#x.png', '/admin?x#.js']) {
      const response = await rawRequest(site.port, [`GET ${target} HTTP/1.1`, 'Host: shop.test', 'Accept: application/json'])
      expect(response.status).toBe(403)
    }
    expect(site.handled()).toBe(0)
  })

  it('padding a request with junk headers or a long user agent does not hide the user agent', async () => {
    site = await startSite({ gate: { backend: quietLocal({ denyUserAgents: ['badbot'] }) } })
    const padding = Array.from({ length: 80 }, (_, i) => `X-Pad-${i}: ${i}`)
    const padded = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test', ...padding, 'User-Agent: badbot/1.0'])
    expect(padded.status).toBe(403)
    const long = await rawRequest(site.port, [
      'GET / HTTP/1.1',
      'Host: shop.test',
      `User-Agent: Mozilla/5.0 ${'a'.repeat(3000)} badbot/1.0`,
    ])
    expect(long.status).toBe(403)
  })

  it('the cache never hands one client the verdict another earned with the same cookie', async () => {
    const byAgent: DecisionBackend = {
      name: 'by-agent',
      cookies: ['vid'],
      decide: async (input) => ({ verdict: (input.headers['user-agent']?.includes('bad') ? 'deny' : 'allow') as Verdict }),
    }
    site = await startSite({ gate: { backend: byAgent, cache: { ttlMs: 60_000 } } })
    await request(site.url).get('/').set('User-Agent', 'good/1.0').set('Cookie', 'vid=shared').expect(200)
    await request(site.url).get('/').set('User-Agent', 'bad/1.0').set('Cookie', 'vid=shared').expect(403)
    await request(site.url).get('/').set('User-Agent', 'good/1.0').set('Cookie', 'vid=shared').expect(200)
    expect(site.decisions.map((decision) => decision.source)).toEqual(['backend', 'backend', 'cache'])
  })

  it('a backend cookie Node could not send is dropped, and the request still succeeds', async () => {
    const odd: DecisionBackend = {
      name: 'odd',
      cookies: ['vid'],
      decide: async () => ({ verdict: 'allow', setCookies: ['vid=caf\u00e9\u2013x', 'vid=ok'] }),
    }
    site = await startSite({ gate: { backend: odd } })
    const response = await request(site.url).get('/').expect(200)
    expect(response.headers['set-cookie']).toEqual(expect.arrayContaining(['vid=ok']))
    expect(String(response.headers['set-cookie'])).not.toContain('caf')
  })

  it("warns once when the framework's own proxy setting trusts every client", async () => {
    site = await startSite({ frameworkTrustsAll: true, gate: { backend: quietLocal() } })
    await request(site.url).get('/').set('X-Forwarded-For', '1.1.1.1').expect(200)
    await request(site.url).get('/').expect(200)
    expect(site.logs.filter(([, code]) => code === 'SP_WARN_TRUST_ALL_PROXIES')).toHaveLength(1)
  })

  it('requests that a backend refuses (4xx) cannot be used to open its breaker', async () => {
    let calls = 0
    const picky: DecisionBackend = {
      name: 'picky',
      decide: async () => {
        calls++
        const { SallyportError } = await import('@sallyport/core')
        throw SallyportError.backend('client', 'refused this input', { status: 422 })
      },
    }
    site = await startSite({ gate: { backend: picky, breaker: { consecutiveFailures: 2 } } })
    for (let i = 0; i < 6; i++) await request(site.url).get('/').expect(200)
    expect(calls).toBe(6)
    expect(site.logs.map(([, code]) => code)).not.toContain('SP_BREAKER_OPEN')
  })
})

describe(`the challenge behind other body parsers (${framework})`, () => {
  it('verifies a solution even when a JSON body parser ran first', async () => {
    site = await startSite({ jsonParserFirst: true, gate: { backend: quietLocal({ difficulty: 2000 }) } })
    const agent = 'Mozilla/5.0 (X11; Linux x86_64) Sallyport-Test'
    const page = await request(site.url).get('/.sallyport/challenge').set('User-Agent', agent).expect(200)
    const payload = solveChallengePage(page.text)
    await request(site.url)
      .post('/.sallyport/verify')
      .type('form')
      .set('User-Agent', agent)
      .send({ payload, redirect_url: '/' })
      .expect(303)
  })
})
