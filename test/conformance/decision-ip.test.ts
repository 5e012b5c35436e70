import { localPolicies } from '@sallyport/core'
import type { GuardRequest } from '@sallyport/express'
import type { GuardContext } from '@sallyport/koa'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, type Native, type Site, type SiteOptions, startSite } from './harness.js'

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

const quietLocal = () => localPolicies({ logger: { warn() {}, error() {} }, secret: 's'.repeat(32), rules: [] })
const vendor = () => trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url })

/** The framework's own idea of the client IP: Express `req.ip`, Koa `ctx.ip`. */
const frameworkIp = (native: Native): string | undefined => (native as (GuardRequest | GuardContext) & { ip?: string }).ip

async function siteWith(options: SiteOptions = {}): Promise<{ site: Site; frameworkIps: Array<string | undefined> }> {
  const frameworkIps: Array<string | undefined> = []
  site = await startSite({
    ...options,
    gate: { backend: quietLocal(), ...options.gate, onDecision: (_decision, native) => frameworkIps.push(frameworkIp(native)) },
  })
  return { site, frameworkIps }
}

describe(`decision.ip says which client was judged (${framework})`, () => {
  it('is the socket peer for a direct client', async () => {
    const { site } = await siteWith()
    const response = await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'backend', ip: '127.0.0.1' })
    // What the route reads (req.sallyport / ctx.state.sallyport) carries it too.
    expect(response.body.decision.ip).toBe('127.0.0.1')
  })

  it("is the forwarded client behind a trusted proxy, and agrees with the framework's req.ip when its trust setting is the one in force", async () => {
    const { site, frameworkIps } = await siteWith({ frameworkHops: 1 })
    await request(site.url).get('/').set('Accept', 'application/json').set('X-Forwarded-For', '6.6.6.6, 203.0.113.7').expect(200)
    expect(site.decisions.at(-1)?.ip).toBe('203.0.113.7')
    expect(frameworkIps.at(-1)).toBe('203.0.113.7')
  })

  it('is the forwarded client behind a proxy trusted by trustProxy', async () => {
    const { site } = await siteWith({ gate: { trustProxy: 'loopback' } })
    await request(site.url).get('/').set('Accept', 'application/json').set('X-Forwarded-For', '198.51.100.23').expect(200)
    expect(site.decisions.at(-1)?.ip).toBe('198.51.100.23')
  })

  it.each([['unknown'], ['<script>alert(1)</script>'], ['01.2.3.4']])(
    'is null when a trusted proxy wrote garbage (%s) into X-Forwarded-For',
    async (garbage) => {
      const { site } = await siteWith({ gate: { trustProxy: 'loopback' } })
      await request(site.url).get('/').set('Accept', 'application/json').set('X-Forwarded-For', garbage).expect(200)
      expect(site.decisions.at(-1)).toMatchObject({ source: 'backend', ip: null })
    },
  )

  it('is on skipped requests and on the routes the middleware serves', async () => {
    const { site } = await siteWith({ gate: { skip: '/health', trustProxy: 'loopback' } })
    await request(site.url).get('/health').set('X-Forwarded-For', '203.0.113.8').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'skip', ip: '203.0.113.8' })
    await request(site.url).get('/.sallyport/challenge').set('Accept', 'text/html')
    expect(site.decisions.at(-1)).toMatchObject({ reason: 'sallyport_route', ip: '127.0.0.1' })
  })

  it('is on fallbacks and cached verdicts from a vendor', async () => {
    const { site } = await siteWith({ gate: { backend: vendor(), retries: 0, cache: { ttlMs: 10_000 } } })
    fake.reply({ decision: 'allow' })
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    await request(site.url).get('/').set('Accept', 'application/json').expect(200)
    expect(site.decisions.map((decision) => [decision.source, decision.ip])).toEqual([
      ['backend', '127.0.0.1'],
      ['cache', '127.0.0.1'],
    ])
    fake.reply({ fault: { status: 500 } })
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'fallback', reason: 'server', ip: '127.0.0.1' })
  })
})
