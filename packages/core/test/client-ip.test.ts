import {
  compileTrust,
  normalizeIp,
  resolveClientIp,
  resolveHost,
  SallyportError,
  type TrustFunction,
  type TrustProxy,
} from '@sallyport/core'
import { describe, expect, it } from 'vitest'

function expectInvalidOption(run: () => unknown, option: string): void {
  let caught: unknown
  try {
    run()
  } catch (error) {
    caught = error
  }
  expect(caught).toBeInstanceOf(SallyportError)
  expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
  expect((caught as SallyportError).option).toBe(option)
  expect((caught as SallyportError).message).toContain(option)
}

describe('normalizeIp', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4'],
    ['  203.0.113.9  ', '203.0.113.9'],
    ['1.2.3.4:80', '1.2.3.4'],
    ['255.255.255.255', '255.255.255.255'],
  ])('keeps IPv4 %j as %j', (raw, expected) => {
    expect(normalizeIp(raw)).toBe(expected)
  })

  it.each([
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::1', '::1'],
    ['[::1]:443', '::1'],
    ['[2001:db8::5]', '2001:db8::5'],
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%25eth0]:8080', 'fe80::1'],
  ])('writes IPv6 %j in canonical form %j', (raw, expected) => {
    expect(normalizeIp(raw)).toBe(expected)
  })

  it.each([
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::FfFf:1.2.3.4', '1.2.3.4'],
    ['::FFFF:7f00:1', '127.0.0.1'],
    ['[::ffff:10.0.0.7]:443', '10.0.0.7'],
    ['0:0:0:0:0:ffff:1.2.3.4', '1.2.3.4'],
  ])('folds IPv4-mapped IPv6 %j to %j', (raw, expected) => {
    expect(normalizeIp(raw)).toBe(expected)
  })

  it.each(['::ffff:01.2.3.4', '::ffff:256.1.1.1', '::ffff:1.2.3', '::ffff:', '::ffff:1.2.3.4.5'])(
    'refuses the mapped form with a bad IPv4 part %j',
    (raw) => {
      expect(normalizeIp(raw)).toBeNull()
    },
  )

  it('answers the same address the same way when asked again, and a new one anew', () => {
    for (let round = 0; round < 2; round++) {
      expect(normalizeIp('2001:DB8:0:0:0:0:0:5')).toBe('2001:db8::5')
      expect(normalizeIp('2001:DB8:0:0:0:0:0:5')).toBe('2001:db8::5')
      expect(normalizeIp('2001:db8::6')).toBe('2001:db8::6')
      expect(normalizeIp('not-an-ip')).toBeNull()
    }
  })

  const garbage = [
    'unknown',
    '<script>',
    '<script>alert(1)</script>',
    '',
    '   ',
    '01.2.3.4',
    '0x7f.1',
    '0x7f.0.0.1',
    '127.1',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.2.3.4:http',
    'localhost',
    '::1::2',
    '[::1',
    '[::1]junk',
    '1.2.3.4, 5.6.7.8',
    'x'.repeat(8192),
    `1.2.3.4${' '.repeat(8192)}x`,
    '\u0000'.repeat(8192),
  ]
  it.each(garbage.map((raw) => [raw.length > 40 ? `${JSON.stringify(raw.slice(0, 8))}… (${raw.length} chars)` : JSON.stringify(raw), raw]))(
    'turns garbage %s into null',
    (_label, raw) => {
      expect(normalizeIp(raw)).toBeNull()
    },
  )

  it('returns null for a missing address', () => {
    expect(normalizeIp(undefined)).toBeNull()
  })
})

describe('compileTrust', () => {
  it('false trusts nobody and true trusts everybody', () => {
    expect(compileTrust(false)('127.0.0.1', 0)).toBe(false)
    expect(compileTrust(true)('203.0.113.1', 7)).toBe(true)
  })

  it('a hop count trusts that many hops from the socket', () => {
    const trust = compileTrust(2)
    expect([0, 1, 2, 3].map((hop) => trust('203.0.113.1', hop))).toEqual([true, true, false, false])
    expect(compileTrust(0)('127.0.0.1', 0)).toBe(false)
  })

  it('named ranges, CIDR lists and comma-separated strings compile like Express', () => {
    const loopback = compileTrust('loopback')
    expect(loopback('127.0.0.1', 0)).toBe(true)
    expect(loopback('::1', 0)).toBe(true)
    expect(loopback('::ffff:127.0.0.1', 0)).toBe(true)
    expect(loopback('10.0.0.1', 0)).toBe(false)

    const list = compileTrust(['10.0.0.0/8', '192.168.1.1', 'fd00::/8'])
    expect(list('10.200.3.4', 0)).toBe(true)
    expect(list('192.168.1.1', 0)).toBe(true)
    expect(list('192.168.1.2', 0)).toBe(false)
    expect(list('fd12::1', 0)).toBe(true)
    expect(list('11.0.0.1', 0)).toBe(false)

    const text = compileTrust('loopback, 10.0.0.0/8')
    expect(text('127.0.0.1', 0)).toBe(true)
    expect(text('10.1.1.1', 0)).toBe(true)
    expect(text('172.16.0.1', 0)).toBe(false)
  })

  it('returns a trust function unchanged', () => {
    const fn: TrustFunction = (address) => address === '10.0.0.1'
    expect(compileTrust(fn)).toBe(fn)
  })

  it.each<[string, TrustProxy]>([
    ['a negative hop count', -1],
    ['a fractional hop count', 1.5],
    ['NaN', Number.NaN],
    ['an unknown range name', 'nonsense'],
    ['a prefix that is too long', '10.0.0.0/33'],
    ['an IPv4 address out of range', '300.1.1.1'],
    ['an empty string', ''],
    ['a list with one bad entry', ['10.0.0.0/8', 'not-an-ip']],
  ])('throws SP_INVALID_OPTION for %s', (_label, value) => {
    expectInvalidOption(() => compileTrust(value), 'trustProxy')
  })

  it.each<[string, unknown]>([
    ['null', null],
    ['an object', {}],
    ['undefined', undefined],
  ])('throws SP_INVALID_OPTION (not a TypeError) for %s', (_label, value) => {
    expectInvalidOption(() => compileTrust(value as TrustProxy), 'trustProxy')
  })
})

describe('resolveClientIp', () => {
  const resolve = (
    trust: TrustProxy,
    remoteAddress: string | undefined,
    forwarded?: string | string[],
    extra: Record<string, string> = {},
  ) =>
    resolveClientIp(
      remoteAddress,
      { ...extra, ...(forwarded === undefined ? {} : { 'x-forwarded-for': forwarded }) },
      compileTrust(trust),
      undefined,
    )

  it('trustProxy false: the socket peer is the client, X-Forwarded-For is ignored', () => {
    expect(resolve(false, '10.0.0.1', '203.0.113.9')).toEqual({ ip: '10.0.0.1', peerTrusted: false })
  })

  it('trustProxy true: the left-most entry is the client', () => {
    expect(resolve(true, '10.0.0.1', '203.0.113.9, 10.0.0.2')).toEqual({ ip: '203.0.113.9', peerTrusted: true })
  })

  it('a trusted peer without X-Forwarded-For is itself the client', () => {
    expect(resolve(true, '10.0.0.1')).toEqual({ ip: '10.0.0.1', peerTrusted: true })
  })

  it('a hop count walks exactly that many hops from the right', () => {
    const chain = '198.51.100.1, 198.51.100.2, 198.51.100.3'
    expect(resolve(0, '10.0.0.1', chain).ip).toBe('10.0.0.1')
    expect(resolve(1, '10.0.0.1', chain).ip).toBe('198.51.100.3')
    expect(resolve(2, '10.0.0.1', chain).ip).toBe('198.51.100.2')
    expect(resolve(3, '10.0.0.1', chain).ip).toBe('198.51.100.1')
    expect(resolve(10, '10.0.0.1', chain).ip).toBe('198.51.100.1')
  })

  it("'loopback' believes a local proxy, and nobody else", () => {
    expect(resolve('loopback', '127.0.0.1', '203.0.113.9').ip).toBe('203.0.113.9')
    expect(resolve('loopback', '::ffff:127.0.0.1', '203.0.113.9').ip).toBe('203.0.113.9')
    expect(resolve('loopback', '::1', '2001:db8::9').ip).toBe('2001:db8::9')
    expect(resolve('loopback', '10.0.0.1', '203.0.113.9')).toEqual({ ip: '10.0.0.1', peerTrusted: false })
  })

  it('stops at the first untrusted hop: entries a client wrote itself are never believed', () => {
    // The client sent "X-Forwarded-For: 6.6.6.6"; the proxy appended the real address.
    expect(resolve('loopback', '127.0.0.1', '6.6.6.6, 203.0.113.9').ip).toBe('203.0.113.9')
    const cidrs = ['10.0.0.0/8', '192.168.1.1']
    expect(resolve(cidrs, '10.1.2.3', '6.6.6.6, 198.51.100.4, 192.168.1.1, 10.9.9.9').ip).toBe('198.51.100.4')
    expect(resolve(cidrs, '10.1.2.3', '198.51.100.4, 192.168.1.1').ip).toBe('198.51.100.4')
  })

  it('the trust function sees each address, normalized, with its hop index', () => {
    const calls: Array<[string, number]> = []
    const trust: TrustFunction = (address, hop) => {
      calls.push([address, hop])
      return address.startsWith('10.')
    }
    const result = resolveClientIp('10.0.0.1', { 'x-forwarded-for': '203.0.113.9, [::ffff:10.0.0.3]:443, 10.0.0.2:8080' }, trust, undefined)
    expect(result.ip).toBe('203.0.113.9')
    expect(calls).toEqual([
      ['10.0.0.1', 0],
      ['10.0.0.2', 1],
      ['10.0.0.3', 2],
      ['203.0.113.9', 3],
    ])
  })

  it('walks several X-Forwarded-For lines as one chain, last line right-most', () => {
    const lines = ['198.51.100.1, 198.51.100.2', '198.51.100.3']
    expect(resolve(1, '10.0.0.1', lines).ip).toBe('198.51.100.3')
    expect(resolve(2, '10.0.0.1', lines).ip).toBe('198.51.100.2')
    expect(resolve(true, '10.0.0.1', lines).ip).toBe('198.51.100.1')
  })

  it('normalizes what it returns', () => {
    expect(resolve(true, '10.0.0.1', '::ffff:203.0.113.5').ip).toBe('203.0.113.5')
    expect(resolve(true, '10.0.0.1', '[2001:DB8::5]:443').ip).toBe('2001:db8::5')
    expect(resolve(false, '::ffff:10.0.0.1').ip).toBe('10.0.0.1')
  })

  it.each([
    ['unknown', 'unknown'],
    ['<script>', '<script>'],
    ['one bad entry mid-chain', '198.51.100.1, unknown, 198.51.100.2'],
    ['a leading-zero IPv4', '01.2.3.4'],
    ['8 KB of junk', 'x'.repeat(8192)],
  ])('garbage where a trusted proxy should have written an address makes the IP null: %s', (_label, forwarded) => {
    expect(resolve(true, '10.0.0.1', forwarded)).toEqual({ ip: null, peerTrusted: true })
  })

  it('garbage left of the first untrusted hop is never reached', () => {
    expect(resolve(1, '10.0.0.1', '<script>, 198.51.100.7').ip).toBe('198.51.100.7')
  })

  it('an unusable socket address gives no IP at all', () => {
    expect(resolve(true, undefined, '203.0.113.9')).toEqual({ ip: null, peerTrusted: false })
    expect(resolve(true, 'garbage', '203.0.113.9')).toEqual({ ip: null, peerTrusted: false })
  })

  it('an absurdly long chain is walked only a bounded number of hops', () => {
    let calls = 0
    const trust: TrustFunction = () => {
      calls++
      return true
    }
    const forwarded = Array.from({ length: 5000 }, (_, index) => `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`).join(
      ', ',
    )
    const result = resolveClientIp('127.0.0.1', { 'x-forwarded-for': forwarded }, trust, undefined)
    expect(result.ip).not.toBeNull()
    expect(calls).toBeLessThanOrEqual(64)
  })

  describe('clientIpHeader', () => {
    const header = 'cf-connecting-ip'

    it('is believed from a trusted peer, ahead of X-Forwarded-For', () => {
      const headers = { 'cf-connecting-ip': '203.0.113.50', 'x-forwarded-for': '198.51.100.1' }
      expect(resolveClientIp('10.0.0.1', headers, compileTrust('10.0.0.0/8'), header)).toEqual({ ip: '203.0.113.50', peerTrusted: true })
    })

    it('is ignored from an untrusted peer: anyone can send the header', () => {
      const headers = { 'cf-connecting-ip': '203.0.113.50' }
      expect(resolveClientIp('198.51.100.66', headers, compileTrust('10.0.0.0/8'), header)).toEqual({
        ip: '198.51.100.66',
        peerTrusted: false,
      })
    })

    it('is normalized, and garbage in it gives null', () => {
      const trust = compileTrust('loopback')
      expect(resolveClientIp('127.0.0.1', { 'cf-connecting-ip': '::ffff:203.0.113.50' }, trust, header).ip).toBe('203.0.113.50')
      expect(resolveClientIp('127.0.0.1', { 'cf-connecting-ip': 'unknown' }, trust, header).ip).toBeNull()
    })

    it('falls back to X-Forwarded-For when the trusted peer did not send it', () => {
      expect(resolveClientIp('127.0.0.1', { 'x-forwarded-for': '203.0.113.9' }, compileTrust('loopback'), header).ip).toBe('203.0.113.9')
    })
  })
})

describe('resolveHost', () => {
  it('lowercases a valid host and refuses anything else, the same way on every call', () => {
    for (let round = 0; round < 2; round++) {
      expect(resolveHost({ host: 'Shop.Example:8443' }, false)).toBe('shop.example:8443')
      expect(resolveHost({ host: 'Shop.Example:8443' }, false)).toBe('shop.example:8443')
      expect(resolveHost({ host: 'bad host' }, false)).toBeNull()
      expect(resolveHost({ host: 'bad host' }, false)).toBeNull()
      expect(resolveHost({ host: '[2001:DB8::1]:443' }, false)).toBe('[2001:db8::1]:443')
      expect(resolveHost({ host: 'evil.example\r\nx: y' }, false)).toBeNull()
      expect(resolveHost({}, false)).toBeNull()
    }
  })

  it('reads X-Forwarded-Host only from a trusted proxy', () => {
    const headers = { host: 'internal:8080', 'x-forwarded-host': 'Shop.Example, other.example' }
    expect(resolveHost(headers, true)).toBe('shop.example')
    expect(resolveHost(headers, false)).toBe('internal:8080')
    expect(resolveHost(headers, true)).toBe('shop.example')
  })
})
