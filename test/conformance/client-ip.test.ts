import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, rawRequest, type Site, type SiteOptions, startSite } from './harness.js'

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

async function siteWith(options: Omit<SiteOptions, 'gate'> & { gate?: SiteOptions['gate'] } = {}): Promise<Site> {
  site = await startSite({
    ...options,
    gate: { backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url }), ...options.gate },
  })
  return site
}

/** The IP the backend was told, for one request. */
async function ipSeen(current: Site, forwardedFor?: string | string[]): Promise<string | undefined> {
  const call = request(current.url).get('/')
  // Two header lines when given an array.
  if (forwardedFor !== undefined) call.set('X-Forwarded-For', forwardedFor as string)
  const response = await call
  expect(response.status).toBe(200)
  return fake.checks().at(-1)?.ip
}

describe(`client IP (${framework})`, () => {
  it('ignores a spoofed X-Forwarded-For when no proxy is trusted', async () => {
    const current = await siteWith()
    expect(await ipSeen(current, '6.6.6.6')).toBe('127.0.0.1')
    expect(await ipSeen(current, '6.6.6.6')).toBe('127.0.0.1')
    // A private peer sending X-Forwarded-For looks like an untrusted proxy: warned once, with a code.
    expect(current.logs.filter(([, code]) => code === 'SP_WARN_XFF_UNTRUSTED')).toEqual([['warn', 'SP_WARN_XFF_UNTRUSTED']])
  })

  it('takes the entry a trusted one-hop proxy appended, not the one the client wrote', async () => {
    const current = await siteWith({ gate: { trustProxy: 1 } })
    expect(await ipSeen(current, '6.6.6.6, 2.2.2.2')).toBe('2.2.2.2')
  })

  it('walks every X-Forwarded-For line from the right', async () => {
    const current = await siteWith({ gate: { trustProxy: ['loopback', '2.2.2.2'] } })
    expect(await ipSeen(current, ['6.6.6.6', '2.2.2.2'])).toBe('6.6.6.6')
  })

  it("inherits the framework's own trust-proxy setting but walks it from the right", async () => {
    const current = await siteWith({ frameworkHops: 1 })
    expect(await ipSeen(current, '6.6.6.6, 2.2.2.2')).toBe('2.2.2.2')
  })

  it('strips ports and brackets from forwarded addresses', async () => {
    const current = await siteWith({ gate: { trustProxy: 'loopback' } })
    expect(await ipSeen(current, '[2001:DB8::1]:443')).toBe('2001:db8::1')
    expect(await ipSeen(current, '1.2.3.4:8080')).toBe('1.2.3.4')
  })

  it.each([['unknown'], ['<script>alert(1)</script>'], ['01.2.3.4'], ['x'.repeat(8 * 1024)]])(
    'never forwards a garbage address (%#) and says so in the decision',
    async (garbage) => {
      const current = await siteWith({ gate: { trustProxy: 'loopback' } })
      const response = await request(current.url).get('/').set('X-Forwarded-For', garbage)
      expect(response.status).toBe(200)
      expect(fake.checks()).toHaveLength(0)
      expect(current.decisions.at(-1)).toMatchObject({ verdict: 'allow', reason: 'no_client_ip', source: 'fallback' })
    },
  )

  it('believes a CDN client-IP header only from a trusted peer', async () => {
    const trusted = await siteWith({ gate: { trustProxy: 'loopback', clientIpHeader: 'cf-connecting-ip' } })
    await request(trusted.url).get('/').set('CF-Connecting-IP', '9.9.9.9')
    expect(fake.checks().at(-1)?.ip).toBe('9.9.9.9')
    await trusted.close()

    site = await siteWith({ gate: { clientIpHeader: 'cf-connecting-ip' } })
    await request(site.url).get('/').set('CF-Connecting-IP', '9.9.9.9')
    expect(fake.checks().at(-1)?.ip).toBe('127.0.0.1')
  })

  it('matches an IPv4-mapped IPv6 peer against a trusted IPv4 range', async () => {
    const current = await siteWith({ host: '::ffff:127.0.0.1', gate: { trustProxy: '127.0.0.0/8' } })
    const response = await rawRequest(current.port, ['GET / HTTP/1.1', 'Host: shop.test', 'X-Forwarded-For: 2.2.2.2'])
    expect(response.status).toBe(200)
    expect(fake.checks().at(-1)?.ip).toBe('2.2.2.2')
    expect(await ipSeen(current)).toBe('127.0.0.1')
  })
})
