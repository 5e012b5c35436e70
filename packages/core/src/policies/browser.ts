/**
 * What real browsers always send, and what they never get wrong. Scripts that borrow a
 * browser's user agent rarely copy the rest: these tests catch the gap.
 */

/** A user agent that claims to be a desktop or mobile browser. */
const BROWSER_CLAIM = /^Mozilla\/5\.0 \(.*\b(?:Chrome|Chromium|Firefox|Safari|Edg|OPR|CriOS|FxiOS)\/\d/
const CHROMIUM_VERSION = /(?:Chrome|Chromium|CriOS)\/(\d+)/
const BRAND = /"([^"]{1,64})"\s*;\s*v\s*=\s*"(\d{1,5})/g
const HTML = /text\/html/i

function blank(value: string | undefined): boolean {
  return value === undefined || value.trim().length === 0
}

/**
 * A page load: GET or HEAD whose Accept includes `text/html`, is `*\/*`, or is absent —
 * what browsers send for pages, and what HTTP libraries send by default.
 */
export function isNavigation(method: string, headers: Readonly<Record<string, string>>): boolean {
  if (method !== 'GET' && method !== 'HEAD') {
    const verb = method.toUpperCase()
    if (verb !== 'GET' && verb !== 'HEAD') return false
  }
  const accept = headers.accept
  if (accept === undefined) return true
  // The common case first, without trimming (a copy) an Accept that names text/html.
  if (HTML.test(accept)) return true
  const trimmed = accept.trim()
  return trimmed.length === 0 || trimmed === '*/*'
}

/** The user agent claims a browser, yet Accept or Accept-Language (sent by every browser) is missing. */
export function missingBrowserHeaders(headers: Readonly<Record<string, string>>): boolean {
  // The cheap half first: a request with both headers, as every browser sends, needs no
  // look at its user agent.
  if (!blank(headers.accept) && !blank(headers['accept-language'])) return false
  const agent = headers['user-agent']
  return agent !== undefined && BROWSER_CLAIM.test(agent)
}

/**
 * `sec-ch-ua` (sent only by Chromium-based browsers) disagrees with the user agent: hints
 * from a browser whose user agent is not Chromium, a `HeadlessChrome` brand behind a
 * non-headless user agent, or a Chromium version other than the user agent's.
 */
export function inconsistentBrowserHeaders(headers: Readonly<Record<string, string>>): boolean {
  const hints = headers['sec-ch-ua']
  if (blank(hints)) return false
  const agent = headers['user-agent'] ?? ''
  const version = CHROMIUM_VERSION.exec(agent)
  if (version === null) return true
  let chromium: string | undefined
  let headless = false
  for (const [, brand, brandVersion] of (hints as string).matchAll(BRAND)) {
    if (brand === 'Chromium') chromium = brandVersion
    else if (brand === 'HeadlessChrome') headless = true
  }
  if (headless && !agent.includes('HeadlessChrome')) return true
  return chromium !== undefined && chromium !== version[1]
}
