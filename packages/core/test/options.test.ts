import {
  createGate,
  type DecisionBackend,
  type GateOptions,
  httpBackend,
  type Logger,
  localPolicies,
  SallyportError,
} from '@sallyport/core'
import { afterEach, describe, expect, it, vi } from 'vitest'

const silent: Logger = { warn() {}, error() {} }
const backend = (name = 'stub'): DecisionBackend => ({ name, decide: async () => ({ verdict: 'allow' }) })

function invalidOptionError(run: () => unknown): SallyportError {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught, 'expected a SallyportError to be thrown').toBeInstanceOf(SallyportError)
  const error = caught as SallyportError
  expect(error.code).toBe('SP_INVALID_OPTION')
  return error
}

/** Options as a user's untyped JavaScript could pass them. */
const untyped = (options: Record<string, unknown>) => options as GateOptions

describe('createGate option validation', () => {
  it('accepts no options, and every option set to a good value', () => {
    expect(() => createGate()).not.toThrow()
    expect(() =>
      createGate({
        backend: [backend('a'), backend('b')],
        trustProxy: ['loopback', '10.0.0.0/8'],
        clientIpHeader: 'cf-connecting-ip',
        timeoutMs: 250,
        retries: 2,
        onError: { timeout: 'allow', server: 'challenge', client: 'deny' },
        mode: 'monitor',
        skip: ['/health', /^\/public\//, () => false],
        staticPaths: ['/assets', '/static/'],
        challenge: { url: 'https://challenge.example/page', hook: () => 'continue' },
        deny: { url: 'http://blocked.example/' },
        onReview: () => {},
        onDecision: () => {},
        sensitiveHeaders: ['x-api-key'],
        redirectHosts: ['site.example', 'shop.example:8443', '[::1]:3000'],
        hookTimeoutMs: 500,
        logger: silent,
        warnings: { SP_WARN_XFF_UNTRUSTED: false },
      }),
    ).not.toThrow()
  })

  it.each<[string, string, unknown]>([
    ['an unknown key', 'timeout', 300],
    ['a misspelt key', 'trustproxy', true],
    ['timeoutMs of 0', 'timeoutMs', 0],
    ['a negative timeoutMs', 'timeoutMs', -5],
    ['a fractional timeoutMs', 'timeoutMs', 1.5],
    ['timeoutMs as a string', 'timeoutMs', '300'],
    ['timeoutMs NaN', 'timeoutMs', Number.NaN],
    ['timeoutMs Infinity', 'timeoutMs', Number.POSITIVE_INFINITY],
    ['a huge timeoutMs', 'timeoutMs', 600_000],
    ['a bad trustProxy CIDR', 'trustProxy', '10.0.0.0/33'],
    ['a bad trustProxy address in a list', 'trustProxy', ['10.0.0.1', '999.0.0.1']],
    ['an unknown trustProxy range name', 'trustProxy', 'loopbak'],
    ['a negative trustProxy hop count', 'trustProxy', -1],
    ['a fractional trustProxy hop count', 'trustProxy', 1.5],
    ['trustProxy as an object', 'trustProxy', { loopback: true }],
    ['an unknown onError verdict', 'onError', 'block'],
    ['an unknown onError failure class', 'onError', { timeot: 'deny' }],
    ['an unknown verdict in onError', 'onError', { timeout: 'nope' }],
    ['onError as a function', 'onError', () => 'allow'],
    ['a relative challenge.url', 'challenge', { url: '/challenge' }],
    ['a javascript: challenge.url', 'challenge', { url: 'javascript:alert(1)' }],
    ['a challenge.url that is not a URL', 'challenge', { url: 'not a url' }],
    ['an unknown challenge key', 'challenge', { page: 'https://challenge.example/' }],
    ['a challenge.hook that is not a function', 'challenge', { hook: 'continue' }],
    ['a non-http deny.url', 'deny', { url: 'ftp://blocked.example/' }],
    ['an onReview that is not a function', 'onReview', 'log'],
    ['an onDecision that is not a function', 'onDecision', { call: () => {} }],
    ['redirectHosts with a scheme', 'redirectHosts', ['https://site.example']],
    ['redirectHosts with a path', 'redirectHosts', ['site.example/path']],
    ['redirectHosts with user info', 'redirectHosts', ['user@site.example']],
    ['redirectHosts as a string', 'redirectHosts', 'site.example'],
    ['redirectHosts with a space', 'redirectHosts', ['site .example']],
    ['an empty backend list', 'backend', []],
    ['a backend without decide', 'backend', { name: 'x' }],
    ['a retries count too high', 'retries', 6],
    ['a negative retries count', 'retries', -1],
    ['an unknown mode', 'mode', 'observe'],
    ['a skip path without a leading slash', 'skip', 'health'],
    ['staticPaths as one string', 'staticPaths', '/assets'],
    ['a staticPaths entry without a leading slash', 'staticPaths', ['assets']],
    ['a staticPaths entry with a query', 'staticPaths', ['/assets?v=1']],
    ['a staticPaths entry with a dot segment', 'staticPaths', ['/assets/../admin']],
    ['a staticPaths entry with a space', 'staticPaths', ['/my assets']],
    ['a clientIpHeader that is not a header name', 'clientIpHeader', 'cf connecting ip'],
    ['sensitiveHeaders with a bad name', 'sensitiveHeaders', ['x api key']],
    ['a hookTimeoutMs of 0', 'hookTimeoutMs', 0],
    ['a logger without warn()', 'logger', { error() {} }],
    ['an unknown warning code', 'warnings', { XFF: false }],
  ])('throws SP_INVALID_OPTION naming the option for %s', (_label, option, value) => {
    const error = invalidOptionError(() => createGate(untyped({ logger: silent, [option]: value })))
    // A nested field is named precisely (`challenge.url`), a top-level one as itself.
    expect(error.option === option || error.option?.startsWith(`${option}.`)).toBe(true)
    expect(error.message).toContain(`\`${error.option}\``)
  })

  it('names the accepted values in the message', () => {
    const error = invalidOptionError(() => createGate(untyped({ timeoutMs: 0 })))
    expect(error.message).toMatch(/1 to 60000/)
  })

  it.each<[string, () => unknown, string]>([
    ['localPolicies', () => localPolicies, 'localPolicies'],
    ['httpBackend, inside the array', () => [backend('a'), httpBackend], 'httpBackend'],
  ])('says a backend factory passed uncalled (%s) must be called, naming it', (_label, value, name) => {
    const error = invalidOptionError(() => createGate(untyped({ backend: value(), logger: silent })))
    expect(error.option).toBe('backend')
    expect(error.message).toContain(`you passed the factory; call it: ${name}({...})`)
  })

  it('says an anonymous function passed as the backend must be called', () => {
    const error = invalidOptionError(() => createGate(untyped({ backend: [() => backend()], logger: silent })))
    expect(error.option).toBe('backend')
    expect(error.message).toMatch(/you passed a function; call it/)
  })

  it('refuses two backends with the same name', () => {
    const error = invalidOptionError(() => createGate({ backend: [backend('same'), backend('same')] }))
    expect(error.option).toBe('backend')
  })

  it.each<[string, unknown]>([
    ['null', null],
    ['a string', 'allow'],
    ['an array', []],
  ])('refuses options that are %s', (_label, value) => {
    invalidOptionError(() => createGate(value as GateOptions))
  })

  it('treats an option set to undefined as not set', () => {
    expect(() => createGate({ timeoutMs: undefined, backend: undefined } as unknown as GateOptions)).not.toThrow()
  })
})

describe('hosted page URLs are checked at construction', () => {
  afterEach(() => {
    vi.unstubAllEnvs()
  })
  const paged = (pages: Record<string, unknown>): DecisionBackend =>
    ({ name: 'paged', pages, decide: async () => ({ verdict: 'allow' }) }) as DecisionBackend

  it.each<[string, Record<string, unknown>]>([
    ['a javascript: challenge page', { challenge: 'javascript:alert(1)' }],
    ['a data: deny page', { deny: 'data:text/html,<script>alert(1)</script>' }],
    ['an ftp: deny page', { deny: 'ftp://blocked.example/' }],
    ['a scheme-relative challenge page', { challenge: '//evil.example/challenge' }],
    ['a path that leaves the site through a backslash', { challenge: '/\\evil.example/challenge' }],
    ['a page that is not a string', { deny: 42 }],
    ['a page that is not a URL', { challenge: 'not a url' }],
  ])('refuses a backend with %s, naming the backend', (_label, pages) => {
    const error = invalidOptionError(() => createGate({ backend: paged(pages), logger: silent }))
    expect(error.option).toBe('backend')
    expect(error.message).toContain('`paged`')
  })

  it('accepts http(s) pages and a path on the site itself', () => {
    expect(() =>
      createGate({ backend: paged({ challenge: 'https://verify.example/c', deny: 'http://blocked.example/' }), logger: silent }),
    ).not.toThrow()
    expect(() => createGate({ backend: paged({ challenge: '/.sallyport/challenge' }), logger: silent })).not.toThrow()
  })

  it('with NODE_ENV=production, refuses http pages and an http challenge.url or deny.url, not https or a path', () => {
    vi.stubEnv('NODE_ENV', 'production')
    expect(invalidOptionError(() => createGate({ backend: paged({ deny: 'http://blocked.example/' }), logger: silent })).option).toBe(
      'backend',
    )
    expect(
      invalidOptionError(() => createGate({ backend: backend(), challenge: { url: 'http://verify.example/' }, logger: silent })).option,
    ).toBe('challenge.url')
    expect(
      invalidOptionError(() => createGate({ backend: backend(), deny: { url: 'http://blocked.example/' }, logger: silent })).option,
    ).toBe('deny.url')
    expect(() =>
      createGate({
        backend: paged({ challenge: 'https://verify.example/c', deny: '/blocked' }),
        challenge: { url: 'https://verify.example/' },
        logger: silent,
      }),
    ).not.toThrow()
    // The local engine's challenge page is a path on the site itself.
    expect(() => createGate({ logger: silent })).not.toThrow()
  })
})

describe('gate.checkpoint validation', () => {
  const gate = createGate({ backend: backend(), logger: silent })

  it('accepts a full spec', () => {
    const checkpoint = gate.checkpoint({
      event: 'login',
      status: (request: unknown) => (request === null ? 'failed' : 'succeeded'),
      email: 'a@example.com',
      phone: () => '+15550100',
      deviceToken: () => undefined,
      transaction: { amount: '10.00' },
      metadata: { plan: 'pro' },
      onError: { timeout: 'deny' },
      challenge: () => 'continue',
    })
    expect(checkpoint.event).toBe('login')
    expect(checkpoint.onError).toEqual({ timeout: 'deny' })
  })

  it.each<[string, string, Record<string, unknown>]>([
    ['a missing event', 'checkpoint.event', {}],
    ['an empty event', 'checkpoint.event', { event: '' }],
    ['an event starting with a digit', 'checkpoint.event', { event: '1login' }],
    ['an event with a space', 'checkpoint.event', { event: 'log in' }],
    ['an event too long', 'checkpoint.event', { event: `e${'x'.repeat(64)}` }],
    ['an unknown status', 'checkpoint.status', { event: 'login', status: 'done' }],
    ['an email that is a number', 'checkpoint.email', { event: 'login', email: 5 }],
    ['an email too long', 'checkpoint.email', { event: 'login', email: `${'a'.repeat(600)}@example.com` }],
    ['a metadata value that is not a string', 'checkpoint.metadata', { event: 'login', metadata: { n: 1 } }],
    ['an unknown onError verdict', 'checkpoint.onError', { event: 'checkout', onError: 'block' }],
    ['a challenge that is not a function', 'checkpoint.challenge', { event: 'login', challenge: 'https://x.example' }],
  ])('throws SP_INVALID_OPTION naming the field for %s', (_label, option, spec) => {
    const error = invalidOptionError(() => gate.checkpoint(spec as never))
    expect(error.option).toBe(option)
    expect(error.message).toContain(option)
  })

  it('refuses an unknown field, naming it as createGate does for an unknown option', () => {
    const error = invalidOptionError(() => gate.checkpoint({ event: 'login', emial: 'a@example.com' } as never))
    expect(error.option).toMatch(/^checkpoint/)
    expect(error.message).toContain('emial')
  })

  it('refuses a spec that is not an object', () => {
    invalidOptionError(() => gate.checkpoint(null as never))
    invalidOptionError(() => gate.checkpoint('login' as never))
  })

  it('extracts signals: defaults, trimming, and throwing extractors counted as absent', () => {
    const checkpoint = gate.checkpoint({
      event: 'signup',
      email: (request: unknown) => (request as { body: { email: string } }).body.email,
      phone: () => {
        throw new Error('no body parser')
      },
      metadata: () => ({ plan: 'pro', count: 3 as unknown as string }),
    })
    expect(checkpoint.extract({ body: { email: '  a@example.com  ' } })).toEqual({
      event: 'signup',
      status: 'attempted',
      email: 'a@example.com',
      metadata: { plan: 'pro' },
    })
    expect(checkpoint.extract({})).toEqual({ event: 'signup', status: 'attempted', metadata: { plan: 'pro' } })
  })
})
