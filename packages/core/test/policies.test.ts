import { type Checkpoint, createGate } from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'
import { CLEARANCE_COOKIE, clearanceBinding, issueClearance } from '../src/challenge/index.js'
import { localPolicies } from '../src/local-policies.js'
import { AUTOMATION_USER_AGENTS, defaultRules } from '../src/policies/defaults.js'
import type { Condition, Rule } from '../src/policies/types.js'
import { BROWSER_HEADERS, CHROME_UA, closeAll, ctx, engine, FIREFOX_UA, input, judge, SECRET, silent, view } from './policies-helpers.js'

afterEach(closeAll)

const login = (extra: Partial<Checkpoint> = {}): Checkpoint => ({ event: 'login', status: 'attempted', ...extra })
const api = { ...BROWSER_HEADERS, accept: 'application/json' }

describe('rule order', () => {
  it('runs higher priority first and lets the first match decide, its name the reason', async () => {
    const backend = engine({
      rules: [
        { name: 'low-deny', verdict: 'deny', priority: -5 },
        { name: 'admin-review', verdict: 'review', priority: 10, when: { path: '/admin*' } },
        { name: 'admin-challenge', verdict: 'challenge', priority: 10, when: { path: '/admin*' } },
        { name: 'home-allow', verdict: 'allow', when: { path: '/' } },
      ],
    })
    // Ties run in declaration order: review was declared before challenge.
    expect(await judge(backend, { path: '/admin/users' })).toEqual(['review', 'admin-review'])
    expect(await judge(backend, { path: '/' })).toEqual(['allow', 'home-allow'])
    expect(await judge(backend, { path: '/shop' })).toEqual(['deny', 'low-deny'])
  })

  it('allows with no reason when no rule matches, and an empty rule list allows everything', async () => {
    const backend = engine({ rules: [{ name: 'never', verdict: 'deny', when: { method: 'DELETE' } }] })
    expect(await judge(backend)).toEqual(['allow', null])
    expect(await judge(engine({ rules: [] }), { headers: { 'user-agent': 'curl/8.5.0' } })).toEqual(['allow', null])
  })

  it('puts allowIps, denyIps and denyUserAgents before every rule, in that order', async () => {
    const backend = engine({
      allowIps: ['10.1.0.0/16'],
      denyIps: ['10.0.0.0/8', '2001:db8::/32'],
      denyUserAgents: ['EvilBot', /^sqlmap\//],
      rules: [{ name: 'top', verdict: 'review', priority: 1e9 }],
    })
    expect(await judge(backend, { ip: '10.1.2.3' })).toEqual(['allow', 'allow-ip'])
    expect(await judge(backend, { ip: '10.2.2.3' })).toEqual(['deny', 'deny-ip'])
    expect(await judge(backend, { ip: '2001:db8::7' })).toEqual(['deny', 'deny-ip'])
    expect(await judge(backend, { headers: { 'user-agent': 'Mozilla/5.0 evilbot/2' } })).toEqual(['deny', 'deny-user-agent'])
    expect(await judge(backend, { headers: { 'user-agent': 'sqlmap/1.7' } })).toEqual(['deny', 'deny-user-agent'])
    expect(await judge(backend, { headers: { 'user-agent': 'a sqlmap/1.7' } })).toEqual(['review', 'top'])
  })
})

describe('conditions', () => {
  const one = (when: Condition) => engine({ rules: [{ name: 'hit', verdict: 'deny', when }] })
  const hits = async (when: Condition, init: Parameters<typeof judge>[1]) => (await judge(one(when), init))[1] === 'hit'

  it('ip: inline CIDR ranges, IPv6, IPv4-mapped IPv6 and no IP', async () => {
    const when = { ip: ['198.51.100.0/24', '2001:db8:abcd::/48', '192.0.2.1'] }
    expect(await hits(when, { ip: '198.51.100.255' })).toBe(true)
    expect(await hits(when, { ip: '198.51.101.0' })).toBe(false)
    expect(await hits(when, { ip: '::ffff:198.51.100.7' })).toBe(true)
    expect(await hits(when, { ip: '2001:db8:abcd:ffff::1' })).toBe(true)
    expect(await hits(when, { ip: '2001:db8:abce::1' })).toBe(false)
    expect(await hits(when, { ip: '192.0.2.1' })).toBe(true)
    expect(await hits(when, { ip: '192.0.2.2' })).toBe(false)
    expect(await hits(when, { ip: null })).toBe(false)
    expect(await hits(when, { ip: 'not an ip' })).toBe(false)
  })

  it('userAgent: case-insensitive substrings, RegExps and JSON regex objects', async () => {
    expect(await hits({ userAgent: 'scrapy' }, { headers: { 'user-agent': 'Scrapy/2.11' } })).toBe(true)
    expect(await hits({ userAgent: /^Bot\// }, { headers: { 'user-agent': 'bot/1' } })).toBe(false)
    expect(await hits({ userAgent: /^Bot\//gi }, { headers: { 'user-agent': 'bot/1' } })).toBe(true)
    // A global RegExp must answer the same way every time.
    const backend = one({ userAgent: /bot/g })
    for (let index = 0; index < 3; index++) expect(await judge(backend, { headers: { 'user-agent': 'a bot' } })).toEqual(['deny', 'hit'])
    expect(await hits({ userAgent: { regex: '^python-' } }, { headers: { 'user-agent': 'python-requests/2.31' } })).toBe(true)
    expect(await hits({ userAgent: { regex: '^PYTHON-' } }, { headers: { 'user-agent': 'python-requests/2.31' } })).toBe(false)
    expect(await hits({ userAgent: { regex: '^PYTHON-', flags: 'i' } }, { headers: { 'user-agent': 'python-requests/2.31' } })).toBe(true)
    expect(await hits({ userAgent: ['zzz', 'curl'] }, { headers: {} })).toBe(false)
  })

  it('browserHeaders: a browser user agent without Accept-Language or Accept', async () => {
    const missing = { browserHeaders: 'missing' } as const
    expect(await hits(missing, {})).toBe(false)
    const { 'accept-language': _language, ...noLanguage } = BROWSER_HEADERS
    expect(await hits(missing, { headers: noLanguage })).toBe(true)
    const { accept: _accept, ...noAccept } = BROWSER_HEADERS
    expect(await hits(missing, { headers: noAccept })).toBe(true)
    // Only a user agent that claims a browser is held to a browser's habits.
    expect(await hits(missing, { headers: { 'user-agent': 'curl/8.5.0' } })).toBe(false)
  })

  it('browserHeaders: sec-ch-ua disagreeing with the user agent', async () => {
    const inconsistent = { browserHeaders: 'inconsistent' } as const
    expect(await hits(inconsistent, {})).toBe(false)
    expect(await hits(inconsistent, { headers: { ...BROWSER_HEADERS, 'user-agent': FIREFOX_UA } })).toBe(true)
    expect(await hits(inconsistent, { headers: { ...BROWSER_HEADERS, 'user-agent': CHROME_UA.replace('124', '99') } })).toBe(true)
    expect(await hits(inconsistent, { headers: { ...BROWSER_HEADERS, 'sec-ch-ua': '"HeadlessChrome";v="124", "Chromium";v="124"' } })).toBe(
      true,
    )
    // Firefox and Safari send no client hints at all: nothing to disagree with.
    const firefox: Record<string, string> = { ...BROWSER_HEADERS, 'user-agent': FIREFOX_UA }
    delete firefox['sec-ch-ua']
    expect(await hits(inconsistent, { headers: firefox })).toBe(false)
  })

  it('header: present, absent, matching', async () => {
    expect(await hits({ header: { name: 'X-Requested-With' } }, { headers: { 'x-requested-with': 'XMLHttpRequest' } })).toBe(true)
    expect(await hits({ header: { name: 'x-requested-with' } }, {})).toBe(false)
    expect(await hits({ header: { name: 'referer', present: false } }, {})).toBe(true)
    expect(await hits({ header: { name: 'referer', present: false } }, { headers: { referer: '  ' } })).toBe(true)
    expect(await hits({ header: { name: 'accept-language', matches: 'en-gb' } }, {})).toBe(true)
    expect(await hits({ header: { name: 'accept-language', matches: /^fr/ } }, {})).toBe(false)
  })

  it('method and path: exact (case-insensitive, one trailing slash), prefix, regex; the query is ignored', async () => {
    expect(await hits({ method: ['post', 'PUT'] }, { method: 'POST' })).toBe(true)
    expect(await hits({ method: 'POST' }, { method: 'GET' })).toBe(false)
    expect(await hits({ path: '/login' }, { path: '/LOGIN/?next=/' })).toBe(true)
    expect(await hits({ path: '/login' }, { path: '/login/x' })).toBe(false)
    expect(await hits({ path: { exact: '/a' } }, { path: '/a?b' })).toBe(true)
    expect(await hits({ path: '/api/*' }, { path: '/API/v1/users' })).toBe(true)
    expect(await hits({ path: { prefix: '/api/' } }, { path: '/apix' })).toBe(false)
    expect(await hits({ path: /^\/u\/\d+$/ }, { path: '/u/42?tab=1' })).toBe(true)
    expect(await hits({ path: { regex: '^/u/\\d+$' } }, { path: '/u/me' })).toBe(false)
  })

  it('navigation: GET or HEAD accepting HTML, */* or nothing in particular', async () => {
    const nav = { navigation: true }
    expect(await hits(nav, {})).toBe(true)
    expect(await hits(nav, { method: 'HEAD' })).toBe(true)
    expect(await hits(nav, { headers: { accept: '*/*' } })).toBe(true)
    expect(await hits(nav, { headers: {} })).toBe(true)
    expect(await hits(nav, { headers: { accept: 'application/json' } })).toBe(false)
    expect(await hits(nav, { method: 'POST' })).toBe(false)
    expect(await hits({ navigation: false }, { headers: { accept: 'application/json' } })).toBe(true)
  })

  it('checkpoint: any, none, events, event and status', async () => {
    expect(await hits({ checkpoint: true }, { checkpoint: login() })).toBe(true)
    expect(await hits({ checkpoint: true }, {})).toBe(false)
    expect(await hits({ checkpoint: false }, {})).toBe(true)
    expect(await hits({ checkpoint: ['signup', 'login'] }, { checkpoint: login() })).toBe(true)
    expect(await hits({ checkpoint: 'signup' }, { checkpoint: login() })).toBe(false)
    expect(await hits({ checkpoint: { event: 'login', status: 'failed' } }, { checkpoint: login({ status: 'failed' }) })).toBe(true)
    expect(await hits({ checkpoint: { status: ['failed'] } }, { checkpoint: login() })).toBe(false)
  })

  it('emailDomain: the domain or any subdomain, any case', async () => {
    const when = { emailDomain: ['mailinator.com', '*.tempmail.dev'] }
    expect(await hits(when, { checkpoint: login({ email: 'Someone@Mailinator.COM' }) })).toBe(true)
    expect(await hits(when, { checkpoint: login({ email: 'x@eu.mailinator.com' }) })).toBe(true)
    expect(await hits(when, { checkpoint: login({ email: 'x@tempmail.dev' }) })).toBe(true)
    expect(await hits(when, { checkpoint: login({ email: 'x@notmailinator.com' }) })).toBe(false)
    expect(await hits(when, { checkpoint: login({ email: 'mailinator.com' }) })).toBe(false)
    expect(await hits(when, { checkpoint: login() })).toBe(false)
    expect(await hits(when, {})).toBe(false)
  })

  it('signal: presence, pattern and numeric bounds of checkpoint fields', async () => {
    const checkout = (transaction: Record<string, unknown>): Checkpoint => ({ event: 'checkout', status: 'attempted', transaction })
    expect(await hits({ signal: { field: 'transaction.amount', above: 1000 } }, { checkpoint: checkout({ amount: 1500 }) })).toBe(true)
    expect(await hits({ signal: { field: 'transaction.amount', above: 1000 } }, { checkpoint: checkout({ amount: '999.99' }) })).toBe(false)
    expect(await hits({ signal: { field: 'transaction.amount', below: 1 } }, { checkpoint: checkout({ amount: 'free' }) })).toBe(false)
    expect(
      await hits(
        { signal: { field: 'transaction.card.country', matches: /^(?:KP|IR)$/ } },
        { checkpoint: checkout({ card: { country: 'KP' } }) },
      ),
    ).toBe(true)
    expect(await hits({ signal: { field: 'deviceToken', present: false } }, { checkpoint: login() })).toBe(true)
    expect(await hits({ signal: { field: 'phone' } }, { checkpoint: login({ phone: '+447700900000' }) })).toBe(true)
    expect(
      await hits({ signal: { field: 'metadata.plan', matches: 'trial' } }, { checkpoint: login({ metadata: { plan: 'Trial' } }) }),
    ).toBe(true)
    // Nothing is read from an object's prototype.
    expect(await hits({ signal: { field: 'transaction.constructor' } }, { checkpoint: checkout({}) })).toBe(false)
  })

  it('all, any and not combine conditions; keys of one object are ANDed', async () => {
    const when: Condition = {
      method: 'POST',
      any: [{ path: '/login' }, { path: '/signup' }],
      not: { ip: ['10.0.0.0/8'] },
      all: [{ header: { name: 'content-type' } }, { not: { header: { name: 'content-type', matches: 'json' } } }],
    }
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    expect(await hits(when, { method: 'POST', path: '/signup', headers: form })).toBe(true)
    expect(await hits(when, { method: 'POST', path: '/signup', headers: { 'content-type': 'application/json' } })).toBe(false)
    expect(await hits(when, { method: 'POST', path: '/signup', headers: form, ip: '10.9.9.9' })).toBe(false)
    expect(await hits(when, { method: 'POST', path: '/cart', headers: form })).toBe(false)
    expect(await hits(when, { method: 'GET', path: '/login', headers: form })).toBe(false)
  })
})

describe('the default rules', () => {
  const defaults = () => engine()

  it('allow a plain browser on a page load, an API call and a login checkpoint', async () => {
    const backend = defaults()
    expect(await judge(backend)).toEqual(['allow', null])
    expect(await judge(backend, { headers: api, path: '/api/cart' })).toEqual(['allow', null])
    const firefox = { ...BROWSER_HEADERS, 'user-agent': FIREFOX_UA }
    expect(await judge(backend, { headers: firefox })).toEqual(['allow', null])
    expect(await judge(backend, { method: 'POST', path: '/login', checkpoint: login({ email: 'a@b.example' }) })).toEqual(['allow', null])
  })

  it.each([
    ['curl', 'curl/8.5.0', '*/*'],
    ['HeadlessChrome', CHROME_UA.replace('Chrome/', 'HeadlessChrome/'), BROWSER_HEADERS.accept],
    ['python-requests', 'python-requests/2.31.0', '*/*'],
    ['Go', 'Go-http-client/1.1', undefined],
    ['Scrapy', 'Scrapy/2.11.0 (+https://scrapy.org)', 'text/html,application/xhtml+xml'],
    ['Node fetch', 'node', '*/*'],
    ['Playwright', 'Mozilla/5.0 Playwright/1.44', 'text/html'],
  ])('challenge a page load from %s as automation-user-agent', async (_name, agent, accept) => {
    const headers: Record<string, string> = { 'user-agent': agent }
    if (accept !== undefined) headers.accept = accept
    expect(await judge(defaults(), { headers })).toEqual(['challenge', 'automation-user-agent'])
  })

  it('leave an API call from curl alone: it is not a page load', async () => {
    const backend = defaults()
    expect(await judge(backend, { headers: { 'user-agent': 'curl/8.5.0', accept: 'application/json' }, path: '/api/orders' })).toEqual([
      'allow',
      null,
    ])
    expect(await judge(backend, { method: 'POST', headers: { 'user-agent': 'okhttp/4.12.0' }, path: '/api/orders' })).toEqual([
      'allow',
      null,
    ])
  })

  it('challenge a page load claiming a browser without the headers every browser sends', async () => {
    const { 'accept-language': _language, ...headers } = BROWSER_HEADERS
    expect(await judge(defaults(), { headers })).toEqual(['challenge', 'browser-headers-missing'])
  })

  it('ask for the browser headers only of a user agent that claims a browser', async () => {
    const { 'accept-language': _language, ...withoutLanguage } = BROWSER_HEADERS
    expect(await judge(defaults(), { headers: { ...BROWSER_HEADERS, accept: '  ' } })).toEqual(['challenge', 'browser-headers-missing'])
    expect(await judge(defaults(), { headers: { ...withoutLanguage, 'user-agent': 'StatusMonitor/2.1' } })).toEqual(['allow', null])
    expect(await judge(defaults(), { headers: { accept: 'text/html' } })).toEqual(['allow', null])
    expect(await judge(defaults(), { headers: BROWSER_HEADERS })).toEqual(['allow', null])
  })

  it('never deny a plain browser, even one looking at many pages', async () => {
    const backend = defaults()
    for (let index = 0; index < 100; index++) expect((await judge(backend, { path: `/p/${index}` }))[0]).toBe('allow')
  })
})

describe('clearance from a solved challenge', () => {
  const ip = '203.0.113.9'
  const cleared = (agent = CHROME_UA, expiresAt = Date.now() + 60_000) => ({
    [CLEARANCE_COOKIE]: issueClearance(SECRET, clearanceBinding(ip, agent), expiresAt),
  })

  it('skips challenge rules but not deny rules', async () => {
    const backend = engine({
      rules: [
        { name: 'deny-admin', verdict: 'deny', priority: 5, when: { path: '/admin' } },
        { name: 'challenge-all', verdict: 'challenge' },
      ],
    })
    expect(await judge(backend)).toEqual(['challenge', 'challenge-all'])
    expect(await judge(backend, { cookies: cleared() })).toEqual(['allow', null])
    const reply = await backend.decide(input({ cookies: cleared() }), ctx())
    expect(reply.signals).toEqual({ clearance: true })
    expect(await judge(backend, { cookies: cleared(), path: '/admin' })).toEqual(['deny', 'deny-admin'])
  })

  it('does not count a forged, expired or borrowed clearance', async () => {
    const backend = engine({ rules: [{ name: 'challenge-all', verdict: 'challenge' }] })
    expect(
      await judge(backend, { cookies: { [CLEARANCE_COOKIE]: 'v1.9999999999.forgedforgedforgedforgedforgedforgedforged123' } }),
    ).toEqual(['challenge', 'challenge-all'])
    expect(await judge(backend, { cookies: cleared(CHROME_UA, Date.now() - 1000) })).toEqual(['challenge', 'challenge-all'])
    expect(await judge(backend, { cookies: cleared(FIREFOX_UA) })).toEqual(['challenge', 'challenge-all'])
    expect(await judge(backend, { cookies: cleared(), ip: '198.51.100.1' })).toEqual(['challenge', 'challenge-all'])
  })

  it('counts a clearance another engine of this process issued, while that engine is open', async () => {
    const rules: Rule[] = [{ name: 'challenge-all', verdict: 'challenge' }]
    const otherSecret = 'another-test-secret-long-enough-0123456789'
    const other = localPolicies({ secret: otherSecret, logger: silent, rules })
    const backend = engine({ rules })
    const theirs = { [CLEARANCE_COOKIE]: issueClearance(otherSecret, clearanceBinding(ip, CHROME_UA), Date.now() + 60_000) }
    expect(await judge(backend, { cookies: theirs })).toEqual(['allow', null])
    // Still bound to the visitor's network and browser.
    expect(await judge(backend, { cookies: theirs, ip: '198.51.100.1' })).toEqual(['challenge', 'challenge-all'])
    await other.close?.()
    expect(await judge(backend, { cookies: theirs })).toEqual(['challenge', 'challenge-all'])
  })

  it('lets a cleared automation client through the default challenge rules', async () => {
    const agent = 'curl/8.5.0'
    const cookies = { [CLEARANCE_COOKIE]: issueClearance(SECRET, clearanceBinding(ip, agent), Date.now() + 60_000) }
    expect(await judge(engine(), { headers: { 'user-agent': agent }, cookies })).toEqual(['allow', null])
  })
})

describe('the recipes in POLICIES.md', () => {
  it('load and behave as described', async () => {
    const rules: Rule[] = [
      ...defaultRules,
      {
        name: 'no-user-agent',
        verdict: 'challenge',
        priority: 45,
        when: { navigation: true, header: { name: 'user-agent', present: false } },
      },
      {
        name: 'browser-headers-inconsistent',
        verdict: 'challenge',
        priority: 40,
        when: { navigation: true, browserHeaders: 'inconsistent' },
      },
      { name: 'automation-signup', verdict: 'challenge', priority: 55, when: { checkpoint: 'signup', userAgent: AUTOMATION_USER_AGENTS } },
      {
        name: 'signup-from-hosting',
        verdict: 'challenge',
        priority: 60,
        when: { checkpoint: 'signup', any: [{ ip: { list: 'tor' } }, { ip: { list: 'datacenters' } }] },
      },
      {
        name: 'large-order',
        verdict: 'review',
        when: { checkpoint: 'checkout', signal: { field: 'transaction.amount', above: 2000 }, not: { signal: { field: 'deviceToken' } } },
      },
      {
        name: 'account-spray',
        verdict: 'challenge',
        priority: 150,
        when: { checkpoint: 'login', velocity: { key: 'email', limit: 5, windowMs: 10 * 60_000 } },
      },
      { name: 'office', verdict: 'allow', priority: 1000, when: { ip: { list: 'office' } } },
    ]
    const backend = engine({
      rules,
      lists: { office: ['192.0.2.0/24'], tor: ['198.51.100.0/24'], datacenters: ['203.0.113.0/24'] },
    })
    expect(await judge(backend, { headers: { accept: 'text/html' } })).toEqual(['challenge', 'no-user-agent'])
    expect(await judge(backend, { headers: { ...BROWSER_HEADERS, 'user-agent': FIREFOX_UA } })).toEqual([
      'challenge',
      'browser-headers-inconsistent',
    ])
    const signup: Checkpoint = { event: 'signup', status: 'attempted' }
    expect(await judge(backend, { method: 'POST', checkpoint: signup })).toEqual(['challenge', 'signup-from-hosting'])
    expect(await judge(backend, { method: 'POST', checkpoint: signup, ip: '192.0.2.1', headers: { 'user-agent': 'curl/8' } })).toEqual([
      'allow',
      'office',
    ])
    expect(await judge(backend, { method: 'POST', checkpoint: signup, ip: '8.8.8.8', headers: { 'user-agent': 'curl/8' } })).toEqual([
      'challenge',
      'automation-signup',
    ])
    const checkout: Checkpoint = { event: 'checkout', status: 'attempted', transaction: { amount: 2500 } }
    expect(await judge(backend, { method: 'POST', checkpoint: checkout })).toEqual(['review', 'large-order'])
    expect(await judge(backend, { method: 'POST', checkpoint: { ...checkout, deviceToken: 'dev-1' } })).toEqual(['allow', null])
    const spray = []
    for (let index = 0; index < 7; index++) {
      spray.push((await judge(backend, { method: 'POST', ip: `8.8.4.${index}`, checkpoint: login({ email: 'ceo@site.example' }) }))[1])
    }
    expect(spray).toEqual([null, null, null, null, null, 'account-spray', 'account-spray'])
  })
})

describe('as the gate sees it', () => {
  it('declares its cookie, challenge page and routes', () => {
    const backend = engine()
    expect(backend).toMatchObject({
      name: 'local',
      timeoutMs: 50,
      cookies: [CLEARANCE_COOKIE],
      pages: { challenge: '/.sallyport/challenge' },
    })
    expect(backend.routes?.prefix).toBe('/.sallyport/')
    expect(backend.warnings).toEqual([])
  })

  it('warns that clearances use an ephemeral secret when none is set', async () => {
    const previous = process.env.SALLYPORT_SECRET
    delete process.env.SALLYPORT_SECRET
    try {
      const backend = localPolicies({ logger: silent })
      expect(backend.warnings?.map((warning) => warning.code)).toEqual(['SP_WARN_EPHEMERAL_SECRET'])
      await backend.close?.()
    } finally {
      if (previous !== undefined) process.env.SALLYPORT_SECRET = previous
    }
  })

  it('decides through createGate: browser allowed, curl page load challenged with the reason', async () => {
    const gate = createGate({ backend: engine(), logger: silent })
    const browser = await gate.decide(view())
    expect(browser.decision).toMatchObject({ verdict: 'allow', reason: null, backend: 'local', source: 'backend' })
    const curl = await gate.decide(view({ headers: { host: 'site.example', 'user-agent': 'curl/8.5.0', accept: '*/*' } }))
    expect(curl.decision).toMatchObject({ verdict: 'challenge', reason: 'automation-user-agent', source: 'backend' })
    const agent = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36'
    const headless = await gate.decide(view({ headers: { ...BROWSER_HEADERS, 'user-agent': agent } }))
    expect(headless.decision).toMatchObject({ verdict: 'challenge', reason: 'automation-user-agent' })
    expect(headless.action).toMatchObject({ type: 'redirect' })
    if (headless.action.type === 'redirect') expect(new URL(headless.action.location).pathname).toBe('/.sallyport/challenge')
    await gate.close()
  })
})
