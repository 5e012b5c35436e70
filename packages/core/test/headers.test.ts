import type { IncomingHttpHeaders } from 'node:http'
import {
  ALWAYS_SENSITIVE_HEADERS,
  createGate,
  type DecisionBackend,
  type DecisionInput,
  type GateOptions,
  type Logger,
  pathForBackends,
  type RequestView,
  readCookies,
  SallyportError,
  sanitizeHeaders,
} from '@sallyport/core'
import { describe, expect, it } from 'vitest'

const limits = { maxHeaders: 64, maxValueLength: 1024, maxCookies: 50 }
const always = new Set(ALWAYS_SENSITIVE_HEADERS)

/** Every spelling a client or an app could use for the headers that carry credentials. */
const CREDENTIALS: IncomingHttpHeaders = {
  authorization: 'Bearer secret-token',
  Cookie: 'session=secret-session',
  'PROXY-AUTHORIZATION': 'Basic c2VjcmV0',
  'Proxy-Authenticate': 'Basic realm="secret"',
  'set-cookie': ['a=secret-one', 'b=secret-two'],
}

/** A request as an adapter would describe it: a page load of `url` with `headers`. */
function view(headers: IncomingHttpHeaders, url = '/account'): RequestView<null> {
  return {
    native: null,
    method: 'GET',
    url,
    headers,
    remoteAddress: '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

describe('sanitizeHeaders', () => {
  it('never forwards credentials or cookies, whatever their case', () => {
    const clean = sanitizeHeaders({ ...CREDENTIALS, 'user-agent': 'curl/8', accept: 'text/html' }, always, limits)
    expect(clean).toEqual({ 'user-agent': 'curl/8', accept: 'text/html' })
    expect(JSON.stringify(clean)).not.toContain('secret')
  })

  it('adds a user list to the built-in one, never replacing it', () => {
    const clean = sanitizeHeaders({ ...CREDENTIALS, 'x-api-key': 'secret-key', 'user-agent': 'curl/8' }, new Set(['x-api-key']), limits)
    expect(clean).toEqual({ 'user-agent': 'curl/8' })
  })

  it('drops user-listed headers whatever their case in the request', () => {
    const clean = sanitizeHeaders({ 'X-Api-Key': 'secret-key', 'x-other': '1' }, new Set([...always, 'x-api-key']), limits, 'all')
    expect(clean).toEqual({ 'x-other': '1' })
  })

  it('drops a header the user lists even when the rules would keep it whole, and one listed later', () => {
    const sensitive = new Set(['referer'])
    const headers = { 'user-agent': 'curl/8', referer: 'https://shop.example/account?token=secret' }
    expect(sanitizeHeaders(headers, sensitive, limits)).toEqual({ 'user-agent': 'curl/8' })
    sensitive.add('user-agent')
    expect(sanitizeHeaders(headers, sensitive, limits)).toEqual({})
  })

  it('lowercases names and joins repeated values', () => {
    expect(sanitizeHeaders({ 'X-Custom': 'a', 'Accept-Language': ['en', 'fr'] }, always, limits, ['x-custom'])).toEqual({
      'x-custom': 'a',
      'accept-language': 'en, fr',
    })
  })

  it('caps the number of headers and the length of each value', () => {
    const many: IncomingHttpHeaders = {}
    for (let index = 0; index < 200; index++) many[`x-h${index}`] = 'v'
    expect(Object.keys(sanitizeHeaders(many, always, limits, 'all'))).toHaveLength(64)

    const small = { maxHeaders: 2, maxValueLength: 5, maxCookies: 1 }
    const clean = sanitizeHeaders({ authorization: 'x', a: '0123456789', b: 'short', c: 'dropped' }, always, small, 'all')
    expect(clean).toEqual({ a: '01234', b: 'short' })
  })

  it('does not modify the application’s header object', () => {
    const headers: IncomingHttpHeaders = { ...CREDENTIALS, 'X-Custom': 'x'.repeat(5000), 'x-list': ['1', '2'] }
    const before = structuredClone(headers)
    const clean = sanitizeHeaders(headers, always, limits)
    expect(headers).toEqual(before)
    clean['x-custom'] = 'changed'
    expect(headers['X-Custom']).toBe('x'.repeat(5000))
  })
})

describe('readCookies', () => {
  it('lists cookie names, in order', () => {
    expect(readCookies({ cookie: 'a=1; session=secret; trusted_id=tid_1' }, 50).names).toEqual(['a', 'session', 'trusted_id'])
  })

  it('reads the Cookie header whatever its case', () => {
    expect(readCookies({ Cookie: 'x=1' } as IncomingHttpHeaders, 50).names).toEqual(['x'])
  })

  it('returns values only when asked for by name', () => {
    const cookies = readCookies({ cookie: 'a=1; trusted_id=tid_1' }, 50)
    expect(cookies.value('trusted_id')).toBe('tid_1')
    expect(cookies.value('missing')).toBeUndefined()
  })

  it('caps the number of names', () => {
    const header = Array.from({ length: 100 }, (_, index) => `c${index}=v`).join('; ')
    expect(readCookies({ cookie: header }, 50).names).toHaveLength(50)
  })

  it('copes with no header and with junk', () => {
    expect(readCookies({}, 50).names).toEqual([])
    expect(readCookies({ cookie: '' }, 50).names).toEqual([])
    expect(readCookies({ cookie: 'no pairs here' }, 50).names).toEqual([])
  })
})

describe('what a backend sees through createGate', () => {
  const silent: Logger = { warn() {}, error() {} }

  function recorder(cookies?: string[], headers?: DecisionBackend['headers']): { backend: DecisionBackend; inputs: DecisionInput[] } {
    const inputs: DecisionInput[] = []
    const backend: DecisionBackend = {
      name: 'recorder',
      ...(cookies === undefined ? {} : { cookies }),
      ...(headers === undefined ? {} : { headers }),
      async decide(input) {
        inputs.push(input)
        return { verdict: 'allow' }
      },
    }
    return { backend, inputs }
  }

  it('sends sanitized headers and cookie names, never credentials or cookie values', async () => {
    const { backend, inputs } = recorder()
    const gate = createGate({ backend, logger: silent, sensitiveHeaders: ['X-Api-Key'] })
    const headers: IncomingHttpHeaders = {
      host: 'site.example',
      'user-agent': 'Mozilla/5.0',
      authorization: 'Bearer secret-token',
      cookie: 'session=secret-session; trusted_id=secret-tid',
      'proxy-authorization': 'Basic secret',
      'x-api-key': 'secret-key',
    }
    const before = structuredClone(headers)
    await gate.decide(view(headers))
    const input = inputs[0] as DecisionInput
    expect(input.headers).toEqual({ host: 'site.example', 'user-agent': 'Mozilla/5.0' })
    expect(input.cookieNames).toEqual(['session', 'trusted_id'])
    expect(input.cookie('session')).toBeUndefined()
    expect(input.cookie('trusted_id')).toBeUndefined()
    expect(JSON.stringify(input)).not.toContain('secret')
    expect(headers).toEqual(before)
  })

  it('drops credentials on every request, whatever their case, once it has seen their names', async () => {
    // The backend asks for a header the site lists as sensitive: the site wins.
    const { backend, inputs } = recorder(undefined, ['x-other', 'x-shop-secret'])
    const gate = createGate({ backend, logger: silent, sensitiveHeaders: ['x-shop-secret'] })
    const requests: IncomingHttpHeaders[] = [
      {
        authorization: 'Bearer secret-1',
        'x-shop-secret': 'secret-2',
        'x-api-key': 'secret-3',
        'user-agent': 'Mozilla/5.0',
        'x-other': '1',
      },
      {
        authorization: 'Bearer secret-1',
        'x-shop-secret': 'secret-2',
        'x-api-key': 'secret-3',
        'user-agent': 'Mozilla/5.0',
        'x-other': '1',
      },
      {
        Authorization: 'Bearer secret-1',
        'X-Shop-Secret': 'secret-2',
        'X-API-KEY': 'secret-3',
        'User-Agent': 'Mozilla/5.0',
        'X-Other': '1',
      },
      {
        AUTHORIZATION: 'Bearer secret-1',
        'X-Shop-Secret': 'secret-2',
        'x-api-key': 'secret-3',
        'User-Agent': 'Mozilla/5.0',
        'X-Other': '1',
      },
    ]
    for (const headers of requests) await gate.decide(view(headers))
    expect(inputs).toHaveLength(4)
    for (const input of inputs) {
      expect(input.headers).toEqual({ 'user-agent': 'Mozilla/5.0', 'x-other': '1' })
      expect(JSON.stringify(input)).not.toContain('secret')
    }
  })

  it('still judges every new header name after a flood of names it cannot all remember', async () => {
    const { backend, inputs } = recorder(undefined, 'all')
    const gate = createGate({ backend, logger: silent })
    // Three requests of 300 made-up names each: far more names than a gate keeps in mind.
    for (let request = 0; request < 3; request++) {
      const junk: IncomingHttpHeaders = {}
      for (let index = 0; index < 300; index++) junk[`x-junk-${request}-${index}`] = 'v'
      await gate.decide(view(junk))
    }
    const fresh: IncomingHttpHeaders = {
      'x-junk-9-1': 'v',
      'x-access-token': 'secret-token',
      'Proxy-Authorization': 'Basic secret',
      cookie: 'session=secret',
      'sec-ch-ua-platform': '"Linux"',
      'user-agent': 'Mozilla/5.0',
    }
    // Twice: what the gate makes of these names must hold for the next request too.
    await gate.decide(view(fresh))
    await gate.decide(view(fresh))
    for (const input of inputs.slice(-2)) {
      expect(input.headers).toEqual({ 'x-junk-9-1': 'v', 'sec-ch-ua-platform': '"Linux"', 'user-agent': 'Mozilla/5.0' })
      expect(JSON.stringify(input)).not.toContain('secret')
    }
  })

  it('applies the count and length caps the same way to a request it has seen before', async () => {
    const { backend, inputs } = recorder(undefined, 'all')
    const gate = createGate({ backend, logger: silent })
    const headers: IncomingHttpHeaders = {}
    for (let index = 0; index < 100; index++) headers[`x-h${index}`] = index === 0 ? 'x'.repeat(5000) : 'v'
    headers['user-agent'] = `Mozilla/5.0 ${'y'.repeat(3000)}`
    await gate.decide(view(headers))
    await gate.decide(view(headers))
    const [first, second] = inputs as [DecisionInput, DecisionInput]
    expect(second.headers).toEqual(first.headers)
    expect(Object.keys(first.headers)).toHaveLength(65)
    expect(first.headers['x-h0']).toHaveLength(1024)
    expect(first.headers['x-h63']).toBe('v')
    expect(first.headers['x-h64']).toBeUndefined()
    expect(first.headers['user-agent']).toHaveLength(3012)
  })

  it('hands a backend the values of the cookies it declared, and only those', async () => {
    const { backend, inputs } = recorder(['trusted_id'])
    const gate = createGate({ backend, logger: silent })
    await gate.decide(view({ cookie: 'session=secret-session; trusted_id=tid_1' }))
    const input = inputs[0] as DecisionInput
    expect(input.cookie('trusted_id')).toBe('tid_1')
    expect(input.cookie('session')).toBeUndefined()
  })
})

/** Credentials that proxies, identity-aware load balancers and API gateways put in headers of their own. */
const UNLISTED_CREDENTIALS: IncomingHttpHeaders = {
  'x-forwarded-access-token': 'secret-1',
  'x-auth-request-access-token': 'secret-2',
  'x-amzn-oidc-accesstoken': 'secret-3',
  'x-amzn-oidc-data': 'secret-4',
  'cf-access-jwt-assertion': 'secret-5',
  'x-goog-api-key': 'secret-6',
  'api-key': 'secret-7',
  'x-id-token': 'secret-8',
  'x-refresh-token': 'secret-9',
  'x-client-cert': 'secret-10',
  'x-forwarded-client-cert': 'secret-11',
  authentication: 'Bearer secret-12',
}

const BROWSER: IncomingHttpHeaders = {
  host: 'shop.example',
  'user-agent': 'Mozilla/5.0',
  accept: 'text/html',
  'accept-language': 'en-GB',
  'accept-encoding': 'gzip',
  'sec-ch-ua': '"Chromium";v="126"',
  'sec-ch-ua-platform': '"Linux"',
  'sec-ch-prefers-color-scheme': 'dark',
  'sec-fetch-site': 'same-origin',
  'sec-fetch-mode': 'navigate',
  'sec-gpc': '1',
  dnt: '1',
  origin: 'https://shop.example',
  'upgrade-insecure-requests': '1',
}

describe('sanitizeHeaders: an allow-list of what describes the client', () => {
  it('forwards only the client headers, whatever credentials a request carries under other names', () => {
    const clean = sanitizeHeaders(
      { ...UNLISTED_CREDENTIALS, ...CREDENTIALS, ...BROWSER, 'x-custom': '1', 'content-type': 'text/plain' },
      always,
      limits,
    )
    expect(clean).toEqual(BROWSER)
    expect(JSON.stringify(clean)).not.toContain('secret')
  })

  it('sends the Referer without its query or fragment, and cut to the length cap', () => {
    const referer = (value: string) => sanitizeHeaders({ referer: value }, always, limits).referer
    expect(referer('https://shop.example/reset?token=secret#step')).toBe('https://shop.example/reset')
    expect(referer('https://shop.example/page#frag?token=secret')).toBe('https://shop.example/page')
    expect(referer('https://shop.example/plain')).toBe('https://shop.example/plain')
    expect(referer(`https://shop.example/${'p'.repeat(5000)}?token=secret`)).toHaveLength(1024)
  })

  it('keeps the Referer however many headers come before it', () => {
    const headers: IncomingHttpHeaders = {}
    for (let index = 0; index < 100; index++) headers[`sec-ch-junk-${index}`] = 'v'
    headers.referer = 'https://shop.example/from?token=secret'
    const clean = sanitizeHeaders(headers, always, limits)
    expect(clean.referer).toBe('https://shop.example/from')
    // Unknown client-hint names are forwarded, but count against the cap.
    expect(Object.keys(clean)).toHaveLength(65)
  })

  it('adds the headers a backend names, in any case, and for "all" every header but the sensitive ones', () => {
    const headers = { ...UNLISTED_CREDENTIALS, ...CREDENTIALS, 'user-agent': 'curl/8', 'X-Device-Id': 'dev-1', 'x-api-key': 'secret-key' }
    const sensitive = new Set([...always, 'x-api-key'])
    expect(sanitizeHeaders(headers, sensitive, limits, ['X-DEVICE-ID'])).toEqual({ 'user-agent': 'curl/8', 'x-device-id': 'dev-1' })
    const everything = sanitizeHeaders(headers, sensitive, limits, 'all')
    expect(everything).toMatchObject({ 'user-agent': 'curl/8', 'x-device-id': 'dev-1', 'x-forwarded-access-token': 'secret-1' })
    expect(Object.keys(everything)).not.toContain('x-api-key')
    expect(Object.keys(everything)).not.toContain('authorization')
  })

  it('lets sensitiveHeaders remove a client header or a whole family member', () => {
    const sensitive = new Set([...always, 'accept-language', 'sec-ch-ua-platform', 'referer'])
    const clean = sanitizeHeaders(BROWSER, sensitive, limits)
    expect(clean['accept-language']).toBeUndefined()
    expect(clean['sec-ch-ua-platform']).toBeUndefined()
    expect(clean['sec-ch-ua']).toBe('"Chromium";v="126"')
    expect(sanitizeHeaders({ referer: 'https://a.example/' }, sensitive, limits)).toEqual({})
  })
})

describe('pathForBackends', () => {
  const none = new Set<string>()

  it('drops the query and the fragment', () => {
    expect(pathForBackends('/callback?code=secret&state=xyz', none)).toBe('/callback')
    expect(pathForBackends('/page#frag', none)).toBe('/page')
    expect(pathForBackends('/page?', none)).toBe('/page')
    expect(pathForBackends('/plain', none)).toBe('/plain')
  })

  it('keeps the parameters named, as sent and in their order, repeated ones too', () => {
    const named = new Set(['utm_source', 'page'])
    expect(pathForBackends('/p?code=secret&page=2&utm_source=a%20b&page=3#x', named)).toBe('/p?page=2&utm_source=a%20b&page=3')
    expect(pathForBackends('/p?code=secret', named)).toBe('/p')
    expect(pathForBackends('/p?page', named)).toBe('/p?page')
  })

  it('matches names as decoded, and never throws on broken encoding', () => {
    expect(pathForBackends('/p?utm%5Fsource=x&my+tag=y&code=z', new Set(['utm_source', 'my tag']))).toBe('/p?utm%5Fsource=x&my+tag=y')
    expect(pathForBackends('/p?%E0%A4%A=1&page=2', new Set(['page']))).toBe('/p?page=2')
  })
})

const PAGE: IncomingHttpHeaders = { host: 'site.example', accept: 'text/html' }

describe('what a backend sees of the URL through createGate', () => {
  const silent: Logger = { warn() {}, error() {} }

  it('the path without the query, but the parameters named in forwardQuery', async () => {
    const paths: string[] = []
    const backend: DecisionBackend = {
      name: 'recorder',
      async decide(input) {
        paths.push(input.path)
        return { verdict: 'allow' }
      },
    }
    await createGate({ backend, logger: silent }).decide(view(PAGE, '/callback?code=secret&utm_source=mail'))
    await createGate({ backend, logger: silent, forwardQuery: ['utm_source'] }).decide(view(PAGE, '/callback?code=secret&utm_source=mail'))
    expect(paths).toEqual(['/callback', '/callback?utm_source=mail'])
  })

  it('still sends a challenged visitor back to the whole URL they asked for', async () => {
    const backend: DecisionBackend = {
      name: 'challenger',
      pages: { challenge: 'https://challenge.vendor.example/page' },
      decide: async () => ({ verdict: 'challenge' }),
    }
    const { action } = await createGate({ backend, logger: silent }).decide(view(PAGE, '/search?q=shoes&page=2'))
    expect(action.type).toBe('redirect')
    const location = new URL((action as { location: string }).location)
    expect(location.searchParams.get('redirect_url')).toBe('http://site.example/search?q=shoes&page=2')
  })
})

describe('forwardQuery and DecisionBackend.headers are checked when the gate is built', () => {
  const silent: Logger = { warn() {}, error() {} }
  const stub = (headers: unknown): DecisionBackend =>
    ({ name: 'stub', headers, decide: async () => ({ verdict: 'allow' }) }) as unknown as DecisionBackend

  function refused(options: Record<string, unknown>): SallyportError {
    let caught: unknown
    try {
      createGate({ logger: silent, ...options } as GateOptions)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(SallyportError)
    expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
    return caught as SallyportError
  }

  it('accepts parameter names, header names and "all"', () => {
    expect(() => createGate({ logger: silent, forwardQuery: ['utm_source', 'page', 'ref[]'] })).not.toThrow()
    expect(() => createGate({ logger: silent, backend: stub(['X-Device-Id']) })).not.toThrow()
    expect(() => createGate({ logger: silent, backend: stub('all') })).not.toThrow()
  })

  it.each<[string, unknown]>([
    ['a string', 'utm_source'],
    ['an empty name', ['']],
    ['a name with "="', ['utm_source=x']],
    ['a query', ['?utm_source']],
    ['a number', [42]],
  ])('refuses forwardQuery as %s, naming the option', (_label, value) => {
    expect(refused({ forwardQuery: value }).message).toMatch(/`forwardQuery`.*query parameter names/)
  })

  it.each<[string, unknown, RegExp]>([
    ['a word other than "all"', 'everything', /'all' or an array of header names \(`stub`/],
    ['a name with a space', ['x device'], /`stub` names "x device"/],
    ['authorization', ['authorization'], /`stub` names `authorization`/],
    ['a default credential header', ['X-Api-Key'], /`stub` names `X-Api-Key`/],
    ['a cookie', ['Cookie'], /`stub` names `Cookie`/],
  ])('refuses a backend whose headers is %s, naming it', (_label, headers, message) => {
    expect(refused({ backend: stub(headers) }).message).toMatch(message)
  })
})
