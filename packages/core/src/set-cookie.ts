/** Browsers keep at most about 4 KB of one cookie; anything longer is not a real cookie. */
export const MAX_SET_COOKIE_LENGTH = 4096

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Anything but tab and printable ASCII: control characters are what header injection
// needs, and Node refuses to send anything above U+00FF (one bad cookie must not 500 the site).
const CONTROL = /[^\t\x20-\x7e]/

export type CookieRejection = 'malformed' | 'too_long' | 'control_characters' | 'name_not_allowed' | 'foreign_domain'

export type CookieCheck = { ok: true; name: string } | { ok: false; reason: CookieRejection; name: string | null }

function hostName(host: string | null): string | null {
  if (host === null) return null
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1)
  const colon = host.lastIndexOf(':')
  return (colon < 0 ? host : host.slice(0, colon)).replace(/\.$/, '')
}

/**
 * Checks one Set-Cookie value a backend wants to forward: a plain token name on the
 * backend's allow-list, no control characters (no header splitting), a bounded size, and
 * no Domain attribute outside the request's own host.
 */
export function checkSetCookie(value: string, allowed: ReadonlySet<string>, requestHost: string | null): CookieCheck {
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
      if (host === null || !(host === domain || host.endsWith(`.${domain}`))) {
        return { ok: false, reason: 'foreign_domain', name }
      }
    }
  }
  return { ok: true, name }
}
