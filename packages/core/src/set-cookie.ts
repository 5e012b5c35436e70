import ipaddr from 'ipaddr.js'

/** Browsers keep at most about 4 KB of one cookie; anything longer is not a real cookie. */
export const MAX_SET_COOKIE_LENGTH = 4096

/**
 * Backend cookies one response carries at most, across every backend of a decision. A vendor
 * sets one or two; hundreds would crowd the site's own cookies out of the browser's jar.
 */
export const MAX_FORWARDED_COOKIES = 10

/**
 * Second-level labels that country registries hand out to the public (`co.uk`, `com.au`,
 * `ne.jp`, …): a compact stand-in for the common part of the public suffix list. Browsers
 * enforce the full list themselves.
 */
const PUBLIC_SECOND_LEVEL = /^(?:ac|co|com|edu|go|gov|ltd|me|mil|ne|net|nic|or|org|plc|sch)\.[a-z]{2}$/

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Anything but tab and printable ASCII: control characters are what header injection
// needs, and Node refuses to send anything above U+00FF (one bad cookie must not 500 the site).
const CONTROL = /[^\t\x20-\x7e]/

export type CookieRejection =
  | 'malformed'
  | 'too_long'
  | 'control_characters'
  | 'name_not_allowed'
  | 'foreign_domain'
  | 'public_suffix'
  | 'too_many'

export type CookieCheck = { ok: true; name: string } | { ok: false; reason: CookieRejection; name: string | null }

function hostName(host: string | null): string | null {
  if (host === null) return null
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.lastIndexOf(':')
  return (colon < 0 ? host : host.slice(0, colon)).replace(/\.$/, '')
}

function withoutBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

/** Why a cookie may not carry `Domain=domain` for a request to `host`, or `null` if it may. */
function domainProblem(domain: string, host: string | null): CookieRejection | null {
  if (host === null) return 'foreign_domain'
  // An IP address has no parent domain: only the address itself is a valid Domain.
  const bareHost = withoutBrackets(host)
  const bareDomain = withoutBrackets(domain)
  if (ipaddr.isValid(bareHost) || ipaddr.isValid(bareDomain)) return bareHost === bareDomain ? null : 'foreign_domain'
  // One label (`test`, `com`) is a top-level domain: a cookie for it reaches every site under it.
  if (!domain.includes('.') || PUBLIC_SECOND_LEVEL.test(domain)) return 'public_suffix'
  return host === domain || host.endsWith(`.${domain}`) ? null : 'foreign_domain'
}

/**
 * Checks one Set-Cookie value a backend wants to forward: a plain token name on the
 * backend's allow-list, no control characters (no header splitting), a bounded size, a
 * Domain attribute only for the request's own host or a parent of it that is not a public
 * suffix, and no more than {@link MAX_FORWARDED_COOKIES} per decision (`forwarded` is the
 * number already accepted for it).
 */
export function checkSetCookie(value: string, allowed: ReadonlySet<string>, requestHost: string | null, forwarded = 0): CookieCheck {
  if (value.length > MAX_SET_COOKIE_LENGTH) return { ok: false, reason: 'too_long', name: null }
  if (CONTROL.test(value)) return { ok: false, reason: 'control_characters', name: null }
  const equals = value.indexOf('=')
  const semicolon = value.indexOf(';')
  if (equals <= 0 || (semicolon >= 0 && semicolon < equals)) return { ok: false, reason: 'malformed', name: null }
  const name = value.slice(0, equals).trim()
  if (!TOKEN.test(name)) return { ok: false, reason: 'malformed', name: null }
  if (!allowed.has(name)) return { ok: false, reason: 'name_not_allowed', name }
  if (semicolon >= 0) {
    const host = hostName(requestHost)
    for (const attribute of value.slice(semicolon + 1).split(';')) {
      const eq = attribute.indexOf('=')
      if (eq < 0 || attribute.slice(0, eq).trim().toLowerCase() !== 'domain') continue
      const domain = attribute
        .slice(eq + 1)
        .trim()
        .toLowerCase()
        .replace(/^\./, '')
      const problem = domainProblem(domain, host)
      if (problem !== null) return { ok: false, reason: problem, name }
    }
  }
  if (forwarded >= MAX_FORWARDED_COOKIES) return { ok: false, reason: 'too_many', name }
  return { ok: true, name }
}
