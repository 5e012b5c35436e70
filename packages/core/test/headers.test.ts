import type { IncomingHttpHeaders } from 'node:http'
import {
  ALWAYS_SENSITIVE_HEADERS,
  createGate,
  type DecisionBackend,
  type DecisionInput,
  type Logger,
  type RequestView,
  readCookies,
  sanitizeHeaders,
} from '@gatehouse/core'
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
    const clean = sanitizeHeaders({ 'X-Api-Key': 'secret-key', 'x-other': '1' }, new Set([...always, 'x-api-key']), limits)
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
    expect(sanitizeHeaders({ 'X-Custom': 'a', 'x-list': ['1', '2'] }, always, limits)).toEqual({ 'x-custom': 'a', 'x-list': '1, 2' })
  })

  it('caps the number of headers and the length of each value', () => {
    const many: IncomingHttpHeaders = {}
    for (let index = 0; index < 200; index++) many[`x-h${index}`] = 'v'
    expect(Object.keys(sanitizeHeaders(many, always, limits))).toHaveLength(64)

    const small = { maxHeaders: 2, maxValueLength: 5, maxCookies: 1 }
    const clean = sanitizeHeaders({ authorization: 'x', a: '0123456789', b: 'short', c: 'dropped' }, always, small)
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

  function recorder(cookies?: string[]): { backend: DecisionBackend; inputs: DecisionInput[] } {
    const inputs: DecisionInput[] = []
    const backend: DecisionBackend = {
      name: 'recorder',
      ...(cookies === undefined ? {} : { cookies }),
      async decide(input) {
        inputs.push(input)
        return { verdict: 'allow' }
      },
    }
    return { backend, inputs }
  }

  function view(headers: IncomingHttpHeaders): RequestView<null> {
    return {
      native: null,
      method: 'GET',
      url: '/account',
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
    const { backend, inputs } = recorder()
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
    const { backend, inputs } = recorder()
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
    const { backend, inputs } = recorder()
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
