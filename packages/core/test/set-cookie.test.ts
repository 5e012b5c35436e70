import { checkSetCookie } from '@gatehouse/core'
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
