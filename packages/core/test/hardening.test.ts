import { describe, expect, it } from 'vitest'
import { DEFAULT_SANITIZE_LIMITS, DEFAULT_SENSITIVE_HEADERS, sanitizeHeaders } from '../src/headers.js'
import { velocityNetwork } from '../src/policies/velocity.js'
import { returnUrl } from '../src/redirect.js'

describe('velocity counts networks, not single IPv6 addresses', () => {
  it.each([
    ['203.0.113.9', '203.0.113.9'],
    ['2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::7', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('%s → %s', (ip, network) => {
    expect(velocityNetwork(ip)).toBe(network)
  })

  it('two addresses of one /64 share a counter, another /64 does not', () => {
    expect(velocityNetwork('2001:db8:1:2::1')).toBe(velocityNetwork('2001:db8:1:2:ffff::9'))
    expect(velocityNetwork('2001:db8:1:3::1')).not.toBe(velocityNetwork('2001:db8:1:2::1'))
  })
})

describe('default sensitive headers', () => {
  it('API keys and CSRF tokens are dropped when the gate lists them by default', () => {
    const clean = sanitizeHeaders(
      { 'x-api-key': 'k', 'x-csrf-token': 't', 'user-agent': 'ua' },
      new Set(DEFAULT_SENSITIVE_HEADERS),
      DEFAULT_SANITIZE_LIMITS,
    )
    expect(Object.keys(clean)).toEqual(['user-agent'])
  })
})

describe('returnUrl', () => {
  it('keeps the path when the Host carries its default port', () => {
    expect(returnUrl('https://shop.test:443', '/cart?x=1')).toBe('https://shop.test:443/cart?x=1')
  })
})
