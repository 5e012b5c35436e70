// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const UNSAFE_IN_URL = /[\u0000-\u001f\u007f\\\s]/

/** Hosts (lowercase, with port when not the default) a redirect may point at. */
export type RedirectHosts = ReadonlySet<string>

/**
 * The origin Sallyport may send a visitor back to: the request's own host when it is
 * allowed (any syntactically valid host when `redirectHosts` is empty), else the first
 * configured host. `null` when there is no safe origin to name.
 */
export function returnOrigin(protocol: 'http' | 'https', host: string | null, redirectHosts: readonly string[]): string | null {
  if (host !== null && (redirectHosts.length === 0 || redirectHosts.includes(host))) return `${protocol}://${host}`
  const configured = redirectHosts[0]
  return configured === undefined ? null : `${protocol}://${configured}`
}

/**
 * The absolute URL of the page the visitor asked for, on `origin`. The path is appended
 * to the origin as text, never resolved against it, so `//evil.com` or `/\evil.com` stay
 * paths on the site; control characters and whitespace make the path `/`.
 */
export function returnUrl(origin: string, path: string): string {
  const safePath = path.startsWith('/') && !UNSAFE_IN_URL.test(path) ? path : '/'
  const url = `${origin}${safePath}`
  try {
    // Compare parsed origins: a Host with its default port (`shop.test:443`) is the same origin.
    return new URL(url).origin === new URL(origin).origin ? url : `${origin}/`
  } catch {
    return `${origin}/`
  }
}

/**
 * Checks a return address that arrived from outside (a query parameter, a form field).
 * Relative paths resolve on `origin`; absolute URLs must be http(s) on `origin`'s host or
 * a host in `allowedHosts`. Anything ambiguous (`//host`, `/\host`, encoded tabs or
 * slashes that a later decode could turn into a scheme-relative URL) is refused: `null`.
 */
export function safeRedirectTarget(candidate: string, origin: string, allowedHosts: RedirectHosts): string | null {
  if (candidate.length === 0 || candidate.length > 2048) return null
  let decoded: string
  try {
    decoded = decodeURIComponent(candidate)
  } catch {
    return null
  }
  for (const text of [candidate, decoded]) {
    if (UNSAFE_IN_URL.test(text)) return null
    if (text.startsWith('//') || text.startsWith('/\\')) return null
  }
  let url: URL
  try {
    url = new URL(candidate, origin)
  } catch {
    return null
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null
  if (url.username !== '' || url.password !== '') return null
  if (url.origin === origin || allowedHosts.has(url.host)) return url.href
  return null
}
