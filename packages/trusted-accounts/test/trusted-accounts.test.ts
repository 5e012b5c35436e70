import type { IncomingHttpHeaders } from 'node:http'
import { createGate, type Gate, type GateOptions, type Logger, type RequestView, SallyportError } from '@sallyport/core'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { type TrustedAccountsOptions, trustedAccounts } from '@sallyport/trusted-accounts'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const PUBLISHABLE_KEY = 'pk_test_123'
const silent: Logger = { warn() {}, error() {} }

let fake: FakeTrustedAccounts
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  fake = await fakeTrustedAccounts()
})

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
  await fake.close()
})

function gateFor(options: Partial<TrustedAccountsOptions> = {}, gateOptions: GateOptions<null> = {}): Gate<null> {
  const backend = trustedAccounts({ secretKey: fake.secretKey, publishableKey: PUBLISHABLE_KEY, baseUrl: fake.url, ...options })
  const gate = createGate<null>({ backend, logger: silent, ...gateOptions })
  cleanups.push(() => gate.close())
  return gate
}

const page = { host: 'shop.example', accept: 'text/html,application/xhtml+xml', 'user-agent': 'Mozilla/5.0' }

function view(init: { method?: string; url?: string; headers?: IncomingHttpHeaders; remoteAddress?: string } = {}): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'GET',
    url: init.url ?? '/products?sort=price',
    headers: init.headers ?? page,
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

describe('the check-request call', () => {
  it('sends ip, requestedPath, sanitized lowercase headers, cookie names and trustedId', async () => {
    const gate = gateFor()
    const { decision } = await gate.decide(
      view({
        headers: {
          host: 'shop.example',
          'user-agent': 'Mozilla/5.0',
          'accept-language': 'en-GB',
          authorization: 'Bearer app-user-token',
          cookie: 'trusted_id=tid_abc.123; session=secret-session',
          'proxy-authorization': 'Basic secret',
          'proxy-authenticate': 'Basic realm="secret"',
        },
      }),
    )
    expect(decision.source).toBe('backend')
    expect(fake.checks()).toEqual([
      {
        ip: '203.0.113.9',
        requestedPath: '/products',
        headers: { host: 'shop.example', 'user-agent': 'Mozilla/5.0', 'accept-language': 'en-GB' },
        cookies: ['trusted_id', 'session'],
        trustedId: 'tid_abc.123',
      },
    ])
    expect(fake.requests[0]?.rawBody).not.toContain('secret')
    expect(fake.requests[0]?.rawBody).not.toContain('app-user-token')
  })

  it('authenticates with the secret key as a Bearer token', async () => {
    await gateFor().decide(view())
    expect(fake.requests[0]?.headers.authorization).toBe(`Bearer ${fake.secretKey}`)
    expect(fake.requests[0]?.path).toBe('/api/v1/check-request')
  })

  it('sends the real client IP behind a trusted proxy, never the proxy', async () => {
    await gateFor({}, { trustProxy: 'loopback' }).decide(
      view({ remoteAddress: '127.0.0.1', headers: { ...page, 'x-forwarded-for': '6.6.6.6, 198.51.100.4' } }),
    )
    expect(fake.checks()[0]?.ip).toBe('198.51.100.4')
  })

  it.each([
    ['markup', 'trusted_id=%3Cscript%3Ealert(1)%3C%2Fscript%3E'],
    ['spaces', 'trusted_id="a b"'],
    ['an over-long value', `trusted_id=${'a'.repeat(300)}`],
    ['an empty value', 'trusted_id='],
  ])('does not send trustedId when the cookie holds %s', async (_label, cookie) => {
    await gateFor().decide(view({ headers: { ...page, cookie } }))
    const [check] = fake.checks()
    expect(check).toBeDefined()
    expect(check).not.toHaveProperty('trustedId')
  })

  it('makes no call, and follows the failure policy, when there is no usable client IP', async () => {
    const { decision } = await gateFor({}, { trustProxy: true }).decide(view({ headers: { ...page, 'x-forwarded-for': 'unknown' } }))
    expect(fake.requests).toHaveLength(0)
    expect(decision).toMatchObject({ verdict: 'allow', reason: 'no_client_ip', source: 'fallback' })
    const closed = await gateFor({}, { trustProxy: true, onError: { client: 'deny' } }).decide(
      view({ headers: { ...page, 'x-forwarded-for': 'unknown' } }),
    )
    expect(closed.decision).toMatchObject({ verdict: 'deny', reason: 'no_client_ip', source: 'fallback' })
  })
})

describe('decisions', () => {
  it.each([
    ['allow', 'allow', null],
    ['challenge', 'challenge', 'trusted-accounts:challenge'],
    ['block', 'deny', 'trusted-accounts:block'],
  ] as const)('maps %s to %s', async (answer, verdict, reason) => {
    fake.reply({ decision: answer, extra: { requestId: 'ta_req_1' } })
    const { decision } = await gateFor().decide(view({ headers: { ...page, accept: 'application/json' } }))
    expect(decision).toMatchObject({ verdict, reason, source: 'backend', backend: 'trusted-accounts', requestId: 'ta_req_1' })
  })

  it('a wrong secret key is refused with 401 and falls back with reason "client"', async () => {
    const { decision } = await gateFor({ secretKey: 'ta_wrong_key' }).decide(view())
    expect(fake.requests).toHaveLength(1)
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'client' })
  })

  it('the fallback verdict follows onError', async () => {
    const { decision } = await gateFor({ secretKey: 'ta_wrong_key' }, { onError: { client: 'challenge' } }).decide(
      view({ headers: { ...page, accept: 'application/json' } }),
    )
    expect(decision).toMatchObject({ verdict: 'challenge', source: 'fallback', reason: 'client' })
  })

  it.each([
    ['a body that is not JSON', { fault: 'bad-json' as const }, 'invalid'],
    ['an unknown decision word', { extra: { decision: 'deny' } }, 'invalid'],
    ['a 503, even after the retry', { fault: { status: 503 } }, 'server'],
    ['a 10 MB body', { fault: 'huge-body' as const }, 'invalid'],
    ['a reset connection', { fault: 'reset' as const }, 'network'],
  ])('%s falls back with reason %s', async (_label, reply, reason) => {
    fake.reply(reply)
    const { decision } = await gateFor().decide(view())
    expect(decision).toMatchObject({ source: 'fallback', reason })
  })

  it.each([
    ['a numeric requestId', { requestId: 12345 }],
    ['a null requestId', { requestId: null }],
    ['a trustedId that is not a valid id', { trustedId: 'not a valid id!' }],
  ])('a block stays a block when an undocumented reply field has an unexpected shape: %s', async (_label, extra) => {
    fake.reply({ decision: 'block', extra })
    const { decision } = await gateFor().decide(view({ headers: { ...page, accept: 'application/json' } }))
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })
})

describe('Set-Cookie', () => {
  const cookie = 'trusted_id=tid_new; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Lax'

  it('passes the trusted_id cookie through to the visitor, and drops others', async () => {
    fake.reply({ decision: 'allow', setCookies: [cookie, 'tracking=1; Path=/'] })
    const { decision } = await gateFor().decide(view())
    expect(decision.setCookies).toEqual([cookie])
    expect(decision.signals.trustedId).toBe('tid_new')
  })

  it('drops a trusted_id cookie scoped to another domain', async () => {
    fake.reply({ decision: 'allow', setCookies: ['trusted_id=tid_new; Domain=evil.example; Path=/'] })
    const { decision } = await gateFor().decide(view())
    expect(decision.setCookies).toEqual([])
  })
})

describe('hosted pages', () => {
  const query = (location: string) => Object.fromEntries(new URL(location).searchParams)

  it('sends a challenged page load to the hosted challenge with trusted_id, publishable_key and redirect_url', async () => {
    fake.reply({ decision: 'challenge' })
    const { action } = await gateFor().decide(view({ headers: { ...page, cookie: 'trusted_id=tid_abc' } }))
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    const location = new URL(action.location)
    expect(location.origin + location.pathname).toBe('https://challenge.trustedaccounts.org/challenge.html')
    expect(query(action.location)).toEqual({
      trusted_id: 'tid_abc',
      publishable_key: PUBLISHABLE_KEY,
      redirect_url: 'http://shop.example/products?sort=price',
    })
  })

  it('prefers the trusted_id the API just set over the old cookie', async () => {
    fake.reply({ decision: 'challenge', setCookies: ['trusted_id=tid_fresh; Path=/'] })
    const { action } = await gateFor().decide(view({ headers: { ...page, cookie: 'trusted_id=tid_old' } }))
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    expect(query(action.location).trusted_id).toBe('tid_fresh')
  })

  it('never copies a junk trusted_id cookie into the page query', async () => {
    fake.reply({ decision: 'challenge' })
    const { action } = await gateFor().decide(view({ headers: { ...page, cookie: 'trusted_id=%22%3E%3Cscript%3E' } }))
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    expect(query(action.location).trusted_id).toBe('')
  })

  it('sends a blocked page load to the hosted block page', async () => {
    fake.reply({ decision: 'block' })
    const { decision, action } = await gateFor().decide(view())
    expect(decision.verdict).toBe('deny')
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    expect(action.location.startsWith('https://blocked.trustedaccounts.org/blocked.html?')).toBe(true)
    expect(query(action.location).publishable_key).toBe(PUBLISHABLE_KEY)
  })

  it('uses the configured page URLs', async () => {
    fake.reply({ decision: 'challenge' })
    const { action } = await gateFor({ challengeUrl: 'https://verify.shop.example/check' }).decide(view())
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    expect(action.location.startsWith('https://verify.shop.example/check?')).toBe(true)
  })

  it('answers API calls with a 403 instead of a redirect', async () => {
    fake.reply({ decision: 'block' })
    const { action } = await gateFor().decide(view({ method: 'POST', headers: { host: 'shop.example', accept: 'application/json' } }))
    expect(action).toMatchObject({ type: 'respond', status: 403 })
  })
})

describe('timeouts', () => {
  it('recommends 400 ms, as Trusted Accounts advises, unless told otherwise', () => {
    const base = { secretKey: 's', publishableKey: 'p' }
    expect(trustedAccounts(base).timeoutMs).toBe(400)
    expect(trustedAccounts({ ...base, timeoutMs: 150 }).timeoutMs).toBe(150)
  })

  it('a gate without timeoutMs waits up to 400 ms, longer than the generic 300 ms', async () => {
    fake.reply({ decision: 'block', delayMs: 330 })
    const { decision } = await gateFor().decide(view({ headers: { ...page, accept: 'application/json' } }))
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })

  it('a hung API ends in a "timeout" fallback at about 400 ms, failing open', async () => {
    fake.reply({ fault: 'hang' })
    const started = performance.now()
    const { decision, action } = await gateFor().decide(view())
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout' })
    expect(action).toEqual({ type: 'next' })
    expect(elapsed).toBeGreaterThanOrEqual(395)
    expect(elapsed).toBeLessThan(400 + 50)
  })
})

describe('option validation', () => {
  const good = { secretKey: 'sk', publishableKey: 'pk' }

  it.each<[string, string, Record<string, unknown>]>([
    ['a missing secretKey', 'secretKey', { publishableKey: 'pk' }],
    ['an empty secretKey', 'secretKey', { ...good, secretKey: '' }],
    ['a missing publishableKey', 'publishableKey', { secretKey: 'sk' }],
    ['a baseUrl that is not a URL', 'baseUrl', { ...good, baseUrl: 'api.trustedaccounts.org' }],
    ['a non-http baseUrl', 'baseUrl', { ...good, baseUrl: 'ftp://api.example/' }],
    ['a javascript: challengeUrl', 'challengeUrl', { ...good, challengeUrl: 'javascript:alert(1)' }],
    ['a relative blockedUrl', 'blockedUrl', { ...good, blockedUrl: '/blocked' }],
    ['a timeoutMs of 0', 'timeoutMs', { ...good, timeoutMs: 0 }],
    ['a timeoutMs as a string', 'timeoutMs', { ...good, timeoutMs: '400' }],
    ['a maxResponseSize of 0', 'maxResponseSize', { ...good, maxResponseSize: 0 }],
    ['a connections of 0', 'connections', { ...good, connections: 0 }],
    ['a connections above 4096', 'connections', { ...good, connections: 4097 }],
    ['a fractional connections', 'connections', { ...good, connections: 1.5 }],
  ])('throws SP_INVALID_OPTION naming the option for %s', (_label, option, options) => {
    let caught: unknown
    try {
      trustedAccounts(options as unknown as TrustedAccountsOptions)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SallyportError)
    expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
    expect((caught as SallyportError).option).toBe(option)
    expect((caught as SallyportError).message).toContain(option)
  })

  it('accepts connections from 1 to 4096', () => {
    for (const connections of [1, 4096]) expect(trustedAccounts({ ...good, connections }).name).toBe('trusted-accounts')
  })

  it('refuses an unknown key, naming it', () => {
    let caught: unknown
    try {
      trustedAccounts({ ...good, secret: 'sk' } as unknown as TrustedAccountsOptions)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SallyportError)
    expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
    expect((caught as SallyportError).message).toContain('secret')
  })

  it('refuses no options at all', () => {
    expect(() => trustedAccounts(undefined as unknown as TrustedAccountsOptions)).toThrow(SallyportError)
  })

  it.each<[string, string, Record<string, unknown>, string]>([
    ['secretKey is unset', 'secretKey', { publishableKey: 'pk' }, 'TRUSTED_ACCOUNTS_SECRET_KEY'],
    ['secretKey is empty', 'secretKey', { secretKey: '', publishableKey: 'pk' }, 'TRUSTED_ACCOUNTS_SECRET_KEY'],
    ['publishableKey is unset', 'publishableKey', { secretKey: 'sk' }, 'TRUSTED_ACCOUNTS_PUBLISHABLE_KEY'],
  ])('names the environment variable the README reads when %s, not a bare type error', (_label, option, options, variable) => {
    let caught: unknown
    try {
      trustedAccounts(options as unknown as TrustedAccountsOptions)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SallyportError)
    expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
    expect((caught as SallyportError).message).toContain(`set ${variable} or pass ${option}`)
    expect((caught as SallyportError).message).not.toMatch(/Invalid input|received undefined/)
  })

  it('says the factory must be called when guard() gets trustedAccounts itself', () => {
    let caught: unknown
    try {
      createGate({ backend: trustedAccounts as unknown as GateOptions['backend'], logger: silent })
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SallyportError)
    expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
    expect((caught as SallyportError).message).toContain('you passed the factory; call it: trustedAccounts({...})')
  })
})

describe('checkpoints', () => {
  const keys = { secretKey: 'sk_test', publishableKey: 'pk_test' }
  function recording(): Logger & { codes: string[] } {
    const codes: string[] = []
    return { codes, warn: (object) => void codes.push(String(object.code)), error: () => {} }
  }

  it('warns once, at the declaration, that a checkpoint on Trusted Accounts alone reaches no backend', async () => {
    const logger = recording()
    const gate = createGate({ logger, backend: trustedAccounts(keys) })
    gate.checkpoint({ event: 'login', email: () => 'a@example.com' })
    gate.checkpoint({ event: 'signup' })
    expect(logger.codes.filter((code) => code === 'SP_WARN_CHECKPOINT_UNREAD')).toHaveLength(1)
    await gate.close()
  })

  it('says nothing when a backend beside it reads checkpoints', async () => {
    const logger = recording()
    const gate = createGate({ logger, backend: [trustedAccounts(keys), { name: 'rules', decide: () => ({ verdict: 'allow' }) }] })
    gate.checkpoint({ event: 'login', email: () => 'a@example.com' })
    expect(logger.codes).not.toContain('SP_WARN_CHECKPOINT_UNREAD')
    await gate.close()
  })
})
