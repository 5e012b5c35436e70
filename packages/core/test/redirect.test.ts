import { returnOrigin, returnUrl, safeRedirectTarget } from '@sallyport/core'
import { describe, expect, it } from 'vitest'

const origin = 'https://site.example'

/** Payloads that try to turn "the page you asked for" into someone else's page. */
const OPEN_REDIRECTS: Array<[string, string]> = [
  ['scheme-relative', '//evil.com'],
  ['scheme-relative with path', '//evil.com/login'],
  ['backslash', '/\\evil.com'],
  ['double backslash', '\\\\evil.com'],
  ['encoded tab', '/%09/evil.com'],
  ['encoded slashes', '/%2F%2Fevil.com'],
  ['encoded slashes, no leading slash', '%2F%2Fevil.com'],
  ['encoded backslash', '/%5Cevil.com'],
  ['absolute URL', 'https://evil.com'],
  ['absolute URL, other scheme case', 'HTTPS://EVIL.COM/'],
  ['look-alike host', 'https://site.example.evil.com/'],
  ['javascript: URL', 'javascript:alert(1)'],
  ['data: URL', 'data:text/html,<script>alert(1)</script>'],
  ['leading tab', '\t//evil.com'],
  ['leading space', ' //evil.com'],
  ['newline', '/\n/evil.com'],
  ['CRLF header injection', '/x\r\nLocation: https://evil.com'],
  ['user info', 'https://user@site.example'],
  ['user info with password', 'https://user:pass@site.example/'],
  ['scheme change to http', 'http:evil.com'],
]

describe('returnUrl', () => {
  it('keeps an ordinary path and query on the origin', () => {
    expect(returnUrl(origin, '/cart?item=42&q=a%20b')).toBe('https://site.example/cart?item=42&q=a%20b')
    expect(returnUrl('http://localhost:3000', '/')).toBe('http://localhost:3000/')
  })

  it.each(OPEN_REDIRECTS)('never leaves the origin: %s', (_label, path) => {
    const url = returnUrl(origin, path)
    expect(url.startsWith(`${origin}/`)).toBe(true)
    const parsed = new URL(url)
    expect(parsed.origin).toBe(origin)
    expect(parsed.username).toBe('')
    expect(url).not.toMatch(/[\r\n\t\\]/)
  })

  it.each([
    ['https://evil.com'],
    ['javascript:alert(1)'],
    ['\t//evil.com'],
    ['/\\evil.com'],
    ['https://user@site.example'],
    ['relative/path'],
    [''],
  ])('replaces %j, which is not a clean absolute path, with the site root', (path) => {
    expect(returnUrl(origin, path)).toBe(`${origin}/`)
  })
})

describe('safeRedirectTarget', () => {
  const allowed = new Set(['shop.example', 'accounts.example:8443'])

  it.each(OPEN_REDIRECTS)('refuses %s', (_label, candidate) => {
    expect(safeRedirectTarget(candidate, origin, allowed)).toBeNull()
  })

  it('resolves relative paths on the origin', () => {
    expect(safeRedirectTarget('/cart?item=42#top', origin, allowed)).toBe('https://site.example/cart?item=42#top')
    expect(safeRedirectTarget('/', origin, new Set())).toBe('https://site.example/')
  })

  it('accepts absolute URLs on the origin itself', () => {
    expect(safeRedirectTarget('https://site.example/account', origin, new Set())).toBe('https://site.example/account')
  })

  it('accepts absolute URLs on an allowed host, port included', () => {
    expect(safeRedirectTarget('https://shop.example/basket', origin, allowed)).toBe('https://shop.example/basket')
    expect(safeRedirectTarget('https://accounts.example:8443/me', origin, allowed)).toBe('https://accounts.example:8443/me')
  })

  it('refuses a host that is not allowed, or an allowed name on another port', () => {
    expect(safeRedirectTarget('https://other.example/', origin, allowed)).toBeNull()
    expect(safeRedirectTarget('https://accounts.example/me', origin, allowed)).toBeNull()
    expect(safeRedirectTarget('https://shop.example/basket', origin, new Set())).toBeNull()
  })

  it('refuses a downgrade of the origin to plain http', () => {
    expect(safeRedirectTarget('http://site.example/account', origin, new Set())).toBeNull()
  })

  it('refuses user info on an allowed host', () => {
    expect(safeRedirectTarget('https://attacker@shop.example/', origin, allowed)).toBeNull()
  })

  it('refuses empty, oversized and undecodable candidates', () => {
    expect(safeRedirectTarget('', origin, allowed)).toBeNull()
    expect(safeRedirectTarget(`/${'a'.repeat(4096)}`, origin, allowed)).toBeNull()
    expect(safeRedirectTarget('/%E0%A4%A', origin, allowed)).toBeNull()
  })
})

describe('returnOrigin', () => {
  it("uses the request's own host when no redirectHosts are set", () => {
    expect(returnOrigin('https', 'site.example', [])).toBe('https://site.example')
    expect(returnOrigin('http', 'localhost:3000', [])).toBe('http://localhost:3000')
  })

  it('uses the request host only when it is one of redirectHosts, else the first of them', () => {
    expect(returnOrigin('https', 'shop.example', ['site.example', 'shop.example'])).toBe('https://shop.example')
    expect(returnOrigin('https', 'evil.com', ['site.example', 'shop.example'])).toBe('https://site.example')
  })

  it('names no origin without a host to trust', () => {
    expect(returnOrigin('https', null, [])).toBeNull()
    expect(returnOrigin('https', null, ['site.example'])).toBe('https://site.example')
  })
})
