import type { Checkpoint, Rule } from '@sallyport/core'
import { defaultRules, strictRules } from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'
import { CLEARANCE_COOKIE, clearanceBinding, issueClearance } from '../src/challenge/index.js'
import { MemoryStore } from '../src/store.js'
import { BROWSER_HEADERS, CHROME_UA, closeAll, ctx, engine, FIREFOX_UA, input, judge, SECRET } from './policies-helpers.js'

afterEach(closeAll)

/** What a page's own `fetch()` sends from Chrome. */
const browserFetch = { ...BROWSER_HEADERS, accept: 'application/json', 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }
const login: Checkpoint = { event: 'login', status: 'attempted', email: 'a@site.example' }

/** An engine on a clock the test moves. */
function clocked() {
  const clock = { now: 1_700_000_000_000 }
  return { clock, backend: engine({ rules: strictRules, store: new MemoryStore({ now: () => clock.now }) }) }
}

describe('the strict rules: user agents', () => {
  it.each([
    ['python-requests asking a page for JSON', 'GET', 'python-requests/2.31.0', 'application/json'],
    ['curl asking for JSON', 'GET', 'curl/8.5.0', 'application/json'],
    ['an okhttp POST', 'POST', 'okhttp/4.12.0', undefined],
    ["Node's fetch posting", 'POST', 'node', '*/*'],
    ['axios', 'GET', 'axios/1.7.2', 'application/json, text/plain, */*'],
    ['a headless browser calling an API', 'GET', CHROME_UA.replace('Chrome/', 'HeadlessChrome/'), 'application/json'],
  ])('challenge %s as automation-user-agent-request, where the defaults allow it', async (_name, method, agent, accept) => {
    const headers: Record<string, string> = { 'user-agent': agent }
    if (accept !== undefined) headers.accept = accept
    const request = { method, headers, path: '/products' }
    expect(await judge(engine({ rules: strictRules }), request)).toEqual(['challenge', 'automation-user-agent-request'])
    expect(await judge(engine({ rules: defaultRules }), request)).toEqual(['allow', null])
  })

  it('judge page loads exactly as the defaults do', async () => {
    const strict = engine({ rules: strictRules })
    const curlPage = { headers: { 'user-agent': 'curl/8.5.0', accept: '*/*' } }
    expect(await judge(strict, curlPage)).toEqual(['challenge', 'automation-user-agent'])
    const { 'accept-language': _language, ...impostor } = BROWSER_HEADERS
    expect(await judge(strict, { headers: impostor })).toEqual(['challenge', 'browser-headers-missing'])
    expect(await judge(strict)).toEqual(['allow', null])
    expect(strictRules.slice(0, defaultRules.length)).toEqual(defaultRules)
  })

  it("leave a browser's own API calls, search engines and clients with a name of their own alone", async () => {
    const strict = engine({ rules: strictRules })
    expect(await judge(strict, { headers: browserFetch, path: '/api/products' })).toEqual(['allow', null])
    const firefoxPost = { ...browserFetch, 'user-agent': FIREFOX_UA, 'content-type': 'application/json' }
    expect(await judge(strict, { method: 'POST', headers: firefoxPost, path: '/api/cart' })).toEqual(['allow', null])
    const googlebot = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)'
    expect(await judge(strict, { headers: { 'user-agent': googlebot, accept: 'application/json' } })).toEqual(['allow', null])
    expect(await judge(strict, { method: 'POST', headers: { 'user-agent': 'ShopApp/3.2 (iOS 17.4)' } })).toEqual(['allow', null])
  })

  it('let an HTTP library through by allowIps, or by an allow rule above priority 50, and nowhere else', async () => {
    const scraper = { headers: { 'user-agent': 'python-requests/2.31.0', accept: 'application/json' }, path: '/api/orders' }
    const byIp = engine({ rules: strictRules, allowIps: ['198.51.100.0/24'] })
    expect(await judge(byIp, { ...scraper, ip: '198.51.100.7' })).toEqual(['allow', 'allow-ip'])
    expect(await judge(byIp, scraper)).toEqual(['challenge', 'automation-user-agent-request'])

    const webhooks = { name: 'webhooks', verdict: 'allow' as const, priority: 1000, when: { method: 'POST', path: '/webhooks/*' } }
    const byPath = engine({ rules: [...strictRules, webhooks] })
    expect(await judge(byPath, { ...scraper, method: 'POST', path: '/webhooks/payments' })).toEqual(['allow', 'webhooks'])
    expect(await judge(byPath, scraper)).toEqual(['challenge', 'automation-user-agent-request'])
  })
})

describe('the strict rules: request rate', () => {
  it('challenge the 601st request from one IP within a minute, pages and API calls alike, then forget after the minute', async () => {
    const { clock, backend } = clocked()
    for (let index = 1; index <= 600; index++) {
      const request = index % 2 === 0 ? { headers: browserFetch, path: `/api/items/${index}` } : { path: `/p/${index}` }
      const [verdict] = await judge(backend, request)
      if (verdict !== 'allow') throw new Error(`request ${index} was ${verdict}`)
    }
    expect(await judge(backend, { path: '/p/next' })).toEqual(['challenge', 'request-flood'])
    expect(await judge(backend, { headers: browserFetch, path: '/api/items/next' })).toEqual(['challenge', 'request-flood'])
    // Another IP has a count of its own.
    expect(await judge(backend, { ip: '198.51.100.1' })).toEqual(['allow', null])

    clock.now += 60_000
    expect(await judge(backend)).toEqual(['allow', null])
  })

  it('let a browser that solved the challenge carry on past the limit', async () => {
    const { backend } = clocked()
    const cookies = { [CLEARANCE_COOKIE]: issueClearance(SECRET, clearanceBinding('203.0.113.9', CHROME_UA), Date.now() + 60_000) }
    for (let index = 0; index < 600; index++) await judge(backend)
    expect(await judge(backend)).toEqual(['challenge', 'request-flood'])
    const reply = await backend.decide(input({ cookies, headers: browserFetch }), ctx())
    expect(reply).toEqual({ verdict: 'allow', reason: null, signals: { clearance: true } })
  })

  it('leave checkpoint attempts to the checkpoint limits: they do not count toward the 600', async () => {
    const { backend } = clocked()
    for (let index = 0; index < 595; index++) await judge(backend)
    for (let index = 0; index < 10; index++) {
      expect(await judge(backend, { method: 'POST', path: '/login', checkpoint: login })).toEqual(['allow', null])
    }
    for (let index = 0; index < 5; index++) expect(await judge(backend)).toEqual(['allow', null])
    expect(await judge(backend)).toEqual(['challenge', 'request-flood'])
  })

  it('take a limit of your own as POLICIES.md shows, by replacing the rule', async () => {
    const rules: Rule[] = [
      ...strictRules.filter((rule) => rule.name !== 'request-flood'),
      {
        name: 'request-flood',
        verdict: 'challenge',
        priority: 30,
        when: { checkpoint: false, velocity: { key: 'ip', limit: 1200, windowMs: 60_000 } },
      },
    ]
    const backend = engine({ rules })
    for (let index = 0; index < 1200; index++) await judge(backend)
    expect(await judge(backend)).toEqual(['challenge', 'request-flood'])
    expect(await judge(backend, { headers: { 'user-agent': 'curl/8.5.0', accept: 'application/json' }, ip: '198.51.100.1' })).toEqual([
      'challenge',
      'automation-user-agent-request',
    ])
  })
})
