/**
 * Bypasses an adversarial review found: each test sends what the attacker sent and checks
 * what the site did with it, on every framework version the conformance suite covers.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import { type DecisionBackend, httpBackend, localPolicies, type Rule, SallyportError, type Verdict } from '@sallyport/core'
import { ipqs } from '@sallyport/ipqs'
import { fakeIpqs, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'

let site: Site | undefined
const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await site?.close()
  site = undefined
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
})

const loginFlood = (limit: number): Rule => ({
  name: 'login-flood',
  verdict: 'challenge',
  when: { checkpoint: 'login', velocity: { key: 'ip', limit, windowMs: 60_000 } },
})
const quietLocal = (options: Parameters<typeof localPolicies>[0] = {}) =>
  localPolicies({ logger: { warn() {}, error() {} }, secret: 's'.repeat(32), ...options })

/** Sends a complete `POST /login`, then resets the connection at once (TCP RST). */
function postThenReset(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      const body = JSON.stringify({ email: 'victim@example.com' })
      const head = [
        'POST /login HTTP/1.1',
        'Host: shop.test',
        'Content-Type: application/json',
        `Content-Length: ${Buffer.byteLength(body)}`,
        '',
        '',
      ].join('\r\n')
      socket.write(head + body, () => {
        socket.resetAndDestroy()
        resolve()
      })
    })
    socket.on('error', () => {})
  })
}

const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe(`a client IP that cannot be known is never "allow without asking" (${framework})`, () => {
  it('a client that resets its connection after a complete request is not passed to the route', async () => {
    site = await startSite({ gate: { backend: quietLocal({ rules: [loginFlood(10)] }) } })
    for (let attempt = 0; attempt < 20; attempt++) await postThenReset(site.port)
    await settle(100)
    expect(site.handled()).toBe(0)
    expect(site.decisions.length).toBeGreaterThan(0)
    expect(site.decisions.every((decision) => decision.reason === 'client_gone')).toBe(true)
    // The site still answers everyone else.
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
  })

  it('velocity counts clients whose forwarded IP is garbage under one shared key', async () => {
    site = await startSite({ gate: { backend: quietLocal({ rules: [loginFlood(3)] }), trustProxy: 'loopback' } })
    const statuses: number[] = []
    for (const forwarded of ['unknown', 'unknown', '_hidden', 'not-an-ip', 'unknown', 'garbage']) {
      const response = await request(site.url).post('/login').set('X-Forwarded-For', forwarded).send({ email: 'a@example.com' })
      statuses.push(response.status)
    }
    expect(statuses).toEqual([200, 200, 200, 403, 403, 403])
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'challenge', reason: 'login-flood' })
  })

  it('a vendor that needs an IP follows the failure policy, with a reason of its own', async () => {
    const fakeTa = await fakeTrustedAccounts()
    const fakeIp = await fakeIpqs()
    cleanups.push(
      () => fakeTa.close(),
      () => fakeIp.close(),
    )
    const vendors: DecisionBackend[] = [
      trustedAccounts({ secretKey: fakeTa.secretKey, publishableKey: 'pk_test_1', baseUrl: fakeTa.url }),
      ipqs({ key: fakeIp.key, baseUrl: fakeIp.url }),
    ]
    for (const vendor of vendors) {
      site = await startSite({ gate: { backend: vendor, trustProxy: 'loopback' }, checkpoint: { onError: 'deny' } })
      const denied = await request(site.url).post('/login').set('X-Forwarded-For', 'unknown').send({ email: 'a@example.com' })
      expect(denied.status).toBe(403)
      expect(site.handled()).toBe(0)
      expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason: 'no_client_ip', backend: vendor.name })
      // The site-wide gate keeps the default fail-open policy, and says why it let the request through.
      await request(site.url).get('/').set('X-Forwarded-For', 'unknown').set('Accept', 'application/json').expect(200)
      expect(site.decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'no_client_ip' })
      await site.close()
      site = undefined
    }
  })
})

describe(`a malformed backend reply never turns deny into allow (${framework})`, () => {
  const replying = (reply: unknown): DecisionBackend => ({ name: 'odd', cookies: ['vid'], decide: async () => reply as never })

  it('a bad field is an invalid reply that follows onError', async () => {
    const replies = [
      { verdict: 'deny', requestId: 12345 },
      { verdict: 'deny', setCookies: null },
      { verdict: 'deny', setCookies: 5 },
      { verdict: 'deny', setCookies: [5] },
      { verdict: 'deny', reason: { toString: 1 } },
      { verdict: 'deny', signals: 'x' },
      { verdict: 'deny', complete: 'no' },
    ]
    for (const reply of replies) {
      site = await startSite({ gate: { backend: replying(reply), onError: 'deny' } })
      const response = await request(site.url).get('/account').set('Accept', 'text/html')
      expect(response.status, JSON.stringify(reply)).toBe(403)
      expect(site.handled()).toBe(0)
      expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason: 'invalid' })
      await site.close()
      site = undefined
    }
  })

  it('a well-formed deny with a request id renders the block page', async () => {
    site = await startSite({ gate: { backend: replying({ verdict: 'deny', requestId: 'req_<1>' }) } })
    const response = await request(site.url).get('/account').set('Accept', 'text/html').expect(403)
    expect(response.text).toContain('req_&#60;1&#62;')
  })

  it('an internal failure at a fail-closed checkpoint stays closed', async () => {
    // A telemetry API that breaks mid-decision stands for any failure inside the middleware.
    const broken = {
      trace: {
        getTracerProvider: () => ({}),
        getTracer: () => ({
          startSpan: () => {
            throw new Error('broken tracer')
          },
        }),
      },
      metrics: {
        getMeterProvider: () => ({}),
        getMeter: () => ({
          createCounter: () => ({ add() {} }),
          createHistogram: () => ({ record() {} }),
          createUpDownCounter: () => ({ add() {} }),
        }),
      },
    }
    site = await startSite({
      gate: { backend: quietLocal({ rules: [] }), telemetry: { api: broken } },
      checkpoint: { onError: 'deny' },
    })
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(403)
    expect(site.handled()).toBe(0)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'internal_error' })
    // Where the policy is fail-open, the visitor is let through as before.
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
  })
})

/** A decision service on loopback that answers `verdict` after `delayMs`. */
async function slowService(delayMs: number, verdict: (body: { headers: Record<string, string> }) => Verdict = () => 'allow') {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      setTimeout(() => {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ verdict: verdict(body) }))
      }, delayMs)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanups.push(() => {
    server.closeAllConnections()
    return new Promise((resolve) => server.close(() => resolve()))
  })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/decide`
}

describe(`one client's burst does not open the breaker for everyone (${framework})`, () => {
  it('calls that time out waiting for a local connection are not held against the backend', async () => {
    const url = await slowService(100)
    site = await startSite({ gate: { backend: httpBackend({ url, name: 'risk' }), timeoutMs: 300 } })
    const burst = await Promise.all(
      Array.from({ length: 250 }, () =>
        request(site?.url as string)
          .get('/api/items')
          .set('Accept', 'application/json'),
      ),
    )
    expect(burst.every((response) => response.status === 200)).toBe(true)
    // Calls that waited for a connection fall back (pool_saturated, or timeout when the wait ate
    // the budget) without counting against the backend: the breaker never opens.
    const answered = site.decisions.filter((decision) => decision.source === 'backend')
    const fallbacks = site.decisions.filter((decision) => decision.source === 'fallback')
    expect(answered.length).toBeGreaterThan(0)
    expect(answered.length + fallbacks.length).toBe(250)
    expect(fallbacks.map((decision) => decision.reason).filter((reason) => reason !== 'pool_saturated' && reason !== 'timeout')).toEqual([])
    // The next visitor is judged by the backend, not by the fallback.
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'backend', backend: 'risk' })
  })

  it('a saturated pool is reported as such, and the breaker stays closed', async () => {
    const url = await slowService(100)
    const backend = httpBackend({ url, name: 'risk', connections: 2 })
    site = await startSite({ gate: { backend, timeoutMs: 250, onError: 'deny' } })
    const burst = await Promise.all(
      Array.from({ length: 30 }, () =>
        request(site?.url as string)
          .get('/api/items')
          .set('Accept', 'application/json'),
      ),
    )
    const saturated = site.decisions.filter((decision) => decision.reason === 'pool_saturated')
    // Two connections serve at most two rounds of two calls in 250 ms; the rest waited.
    expect(saturated.length).toBeGreaterThanOrEqual(20)
    expect(saturated.every((decision) => decision.source === 'fallback' && decision.verdict === 'deny')).toBe(true)
    // A call that waited and then got a connection too late for the backend to answer is a plain timeout.
    const fallbacks = site.decisions.filter((decision) => decision.source === 'fallback')
    expect(fallbacks.every((decision) => decision.reason === 'pool_saturated' || decision.reason === 'timeout')).toBe(true)
    expect(burst.filter((response) => response.status === 403)).toHaveLength(fallbacks.length)
    expect(site.logs.filter(([, code]) => code === 'SP_WARN_POOL_SATURATED')).toEqual([['warn', 'SP_WARN_POOL_SATURATED']])
    expect(site.logs.some(([, code]) => code === 'SP_BREAKER_OPEN')).toBe(false)
    await settle(300)
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'backend', backend: 'risk' })
  })
})

describe(`the decision cache reuses a verdict only where it applies (${framework})`, () => {
  it('an allow cached from an API call does not let a page load through', async () => {
    const pagesChallenged: DecisionBackend = {
      name: 'pages',
      decide: async (input) => ({ verdict: (input.headers.accept?.includes('text/html') ? 'challenge' : 'allow') as Verdict }),
    }
    site = await startSite({ gate: { backend: pagesChallenged, cache: { ttlMs: 60_000 } } })
    await request(site.url).get('/api/items').set('User-Agent', 'scraper/1').set('Accept', 'application/json').expect(200)
    await request(site.url).get('/products').set('User-Agent', 'scraper/1').set('Accept', 'text/html').expect(403)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'challenge', source: 'backend' })
  })

  it('local rules on the path and velocity are evaluated on every request', async () => {
    const rules: Rule[] = [{ name: 'admin-closed', verdict: 'deny', when: { path: '/admin*' } }, loginFlood(10)]
    site = await startSite({ gate: { backend: quietLocal({ rules }), cache: { ttlMs: 60_000, checkpoints: true } } })
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    await request(site.url).get('/admin/users').set('Accept', 'application/json').expect(403)
    const statuses: number[] = []
    for (let attempt = 0; attempt < 14; attempt++) {
      statuses.push((await request(site.url).post('/login').send({ email: 'a@example.com' })).status)
    }
    expect(statuses.filter((status) => status === 200)).toHaveLength(10)
    expect(statuses.slice(10)).toEqual([403, 403, 403, 403])
  })

  it('with checkpoints cached, a site-wide allow is not reused at login', async () => {
    const loginDenied: DecisionBackend = {
      name: 'vendor',
      decide: async (input) => ({ verdict: input.checkpoint?.event === 'login' ? 'deny' : 'allow' }),
    }
    site = await startSite({ gate: { backend: loginDenied, cache: { ttlMs: 60_000, checkpoints: true } } })
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(403)
  })

  it('a neighbour with the same IP and user agent cannot get a visitor denied', async () => {
    const trapped: DecisionBackend = {
      name: 'vendor',
      cookies: ['vid'],
      decide: async (input) => ({ verdict: input.path.startsWith('/trap') ? 'deny' : 'allow' }),
    }
    site = await startSite({ gate: { backend: trapped, cache: { ttlMs: 60_000 } } })
    const agent = 'Mozilla/5.0 (shared NAT)'
    await request(site.url).get('/trap').set('User-Agent', agent).set('Accept', 'application/json').expect(403)
    await request(site.url).get('/').set('User-Agent', agent).set('Accept', 'application/json').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'backend' })
  })
})

describe(`fail-closed checkpoints stay closed for every failure class (${framework})`, () => {
  for (const status of [400, 429]) {
    it(`a vendor ${status} at a checkpoint with onError 'deny' denies`, async () => {
      const refusing: DecisionBackend = {
        name: 'vendor',
        decide: async () => {
          throw SallyportError.backend('client', `refused with HTTP ${status}`, { status })
        },
      }
      site = await startSite({ gate: { backend: refusing }, checkpoint: { onError: 'deny' } })
      await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(403)
      expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason: 'client' })
    })
  }

  it('warns once when a partial onError map leaves a failure class open at a checkpoint', async () => {
    site = await startSite({
      gate: { backend: quietLocal() },
      checkpoint: { onError: { timeout: 'deny', network: 'deny', server: 'deny' } },
    })
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(200)
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(200)
    expect(site.logs.filter(([, code]) => code === 'SP_WARN_ON_ERROR_OPEN')).toEqual([['warn', 'SP_WARN_ON_ERROR_OPEN']])
  })
})
