import { checkSetCookie, MAX_FORWARDED_COOKIES } from '@sallyport/core'
import { describe, expect, it } from 'vitest'

const allowed = new Set(['trusted_id'])
const host = 'www.example.com'

describe('checkSetCookie', () => {
  it('accepts an allow-listed cookie with ordinary attributes', () => {
    expect(checkSetCookie('trusted_id=abc123; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=31536000', allowed, host)).toEqual({
      ok: true,
      name: 'trusted_id',
    })
  })

  it('accepts an Expires date, whose comma is part of the value', () => {
    expect(checkSetCookie('trusted_id=abc; Expires=Wed, 21 Oct 2026 07:28:00 GMT; Path=/', allowed, host)).toEqual({
      ok: true,
      name: 'trusted_id',
    })
  })

  it.each([
    ['CRLF', 'trusted_id=abc\r\nSet-Cookie: admin=1'],
    ['LF', 'trusted_id=abc\nX-Injected: 1'],
    ['CR', 'trusted_id=abc\rX-Injected: 1'],
    ['NUL', 'trusted_id=abc\u0000'],
    ['DEL', 'trusted_id=abc\u007f'],
    ['CRLF in an attribute', 'trusted_id=abc; Path=/\r\n\r\n<html>'],
  ])('refuses control characters (%s)', (_label, value) => {
    expect(checkSetCookie(value, allowed, host)).toMatchObject({ ok: false, reason: 'control_characters' })
  })

  it('refuses a 5 KB cookie', () => {
    expect(checkSetCookie(`trusted_id=${'a'.repeat(5 * 1024)}`, allowed, host)).toMatchObject({ ok: false, reason: 'too_long' })
  })

  it('refuses a name the backend did not declare', () => {
    expect(checkSetCookie('session=stolen; Path=/', allowed, host)).toEqual({ ok: false, reason: 'name_not_allowed', name: 'session' })
    expect(checkSetCookie('trusted_id=abc', new Set(), host)).toMatchObject({ ok: false, reason: 'name_not_allowed' })
  })

  it('matches names exactly', () => {
    expect(checkSetCookie('Trusted_ID=abc', allowed, host)).toMatchObject({ ok: false, reason: 'name_not_allowed' })
    expect(checkSetCookie('trusted_id_x=abc', allowed, host)).toMatchObject({ ok: false, reason: 'name_not_allowed' })
  })

  it.each([
    ['another site', 'evil.com'],
    ['a look-alike suffix', 'ample.com'],
    ['a look-alike with the same ending', 'notexample.com'],
    ['a sibling', 'shop.example.com'],
    ['a child of the host', 'a.www.example.com'],
  ])('refuses a Domain on %s', (_label, domain) => {
    expect(checkSetCookie(`trusted_id=abc; Path=/; Domain=${domain}`, allowed, host)).toEqual({
      ok: false,
      reason: 'foreign_domain',
      name: 'trusted_id',
    })
  })

  it.each([['example.com'], ['.example.com'], ['EXAMPLE.COM'], ['www.example.com']])(
    'accepts Domain=%s for the host or its parent',
    (domain) => {
      expect(checkSetCookie(`trusted_id=abc; Domain=${domain}; Path=/`, allowed, host)).toEqual({ ok: true, name: 'trusted_id' })
    },
  )

  it.each([
    ['a bare name', 'test', 'shop.test'],
    ['a bare name with a leading dot', '.test', 'shop.test'],
    ['a top-level domain', 'com', 'www.example.com'],
    ['a single-label host itself', 'localhost', 'localhost:3000'],
    ['a multi-label public suffix', 'co.uk', 'www.shop.co.uk'],
    ['a multi-label public suffix in capitals', 'COM.AU', 'shop.com.au'],
    ['a ccTLD second level', 'ne.jp', 'www.shop.ne.jp'],
  ])('refuses a Domain that is %s', (_label, domain, requestHost) => {
    expect(checkSetCookie(`trusted_id=abc; Domain=${domain}; Path=/`, allowed, requestHost)).toEqual({
      ok: false,
      reason: 'public_suffix',
      name: 'trusted_id',
    })
  })

  it('accepts the registrable domain under a multi-label public suffix', () => {
    expect(checkSetCookie('trusted_id=abc; Domain=shop.co.uk', allowed, 'www.shop.co.uk')).toEqual({ ok: true, name: 'trusted_id' })
  })

  it.each([
    ['a parent of an IPv4 host', '0.0.1', '127.0.0.1'],
    ['another IPv4 address', '10.0.0.1', '127.0.0.1:8080'],
    ['an IPv4 address for a named host', '127.0.0.1', 'shop.test'],
    ['another IPv6 address', '[::2]', '[::1]:3000'],
  ])('refuses an IP-literal Domain on %s', (_label, domain, requestHost) => {
    expect(checkSetCookie(`trusted_id=abc; Domain=${domain}`, allowed, requestHost)).toMatchObject({ ok: false, name: 'trusted_id' })
  })

  it('accepts an IP-literal Domain that is the host itself', () => {
    expect(checkSetCookie('trusted_id=abc; Domain=127.0.0.1', allowed, '127.0.0.1:8080')).toEqual({ ok: true, name: 'trusted_id' })
  })

  it(`refuses a cookie once ${MAX_FORWARDED_COOKIES} were already forwarded for the decision`, () => {
    expect(MAX_FORWARDED_COOKIES).toBe(10)
    expect(checkSetCookie('trusted_id=abc', allowed, host, MAX_FORWARDED_COOKIES - 1)).toEqual({ ok: true, name: 'trusted_id' })
    expect(checkSetCookie('trusted_id=abc', allowed, host, MAX_FORWARDED_COOKIES)).toEqual({
      ok: false,
      reason: 'too_many',
      name: 'trusted_id',
    })
  })

  it("ignores the port of the request's host", () => {
    expect(checkSetCookie('trusted_id=abc; Domain=example.com', allowed, 'www.example.com:8443')).toEqual({ ok: true, name: 'trusted_id' })
  })

  it('refuses any Domain when the request host is unknown, but accepts a host-only cookie', () => {
    expect(checkSetCookie('trusted_id=abc; Domain=example.com', allowed, null)).toMatchObject({ ok: false, reason: 'foreign_domain' })
    expect(checkSetCookie('trusted_id=abc; Path=/', allowed, null)).toEqual({ ok: true, name: 'trusted_id' })
  })

  it.each([['=abc'], ['no-equals-sign'], ['trusted id=abc'], ['trusted_id;=abc'], ['']])('refuses malformed %j', (value) => {
    expect(checkSetCookie(value, allowed, host)).toMatchObject({ ok: false, reason: 'malformed' })
  })
})
