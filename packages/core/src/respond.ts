import type { IncomingHttpHeaders } from 'node:http'
import type { Action, Decision } from './types.js'

const NO_STORE = 'no-store'

function acceptHeader(headers: IncomingHttpHeaders): string {
  const accept = headers.accept
  return typeof accept === 'string' ? accept.toLowerCase() : ''
}

const HTML = /text\/html/i

/**
 * A page load a browser makes: GET or HEAD whose Accept names HTML. Only these are sent to a
 * challenge or block page. (The rules' `navigation` test is wider: it also counts an absent
 * or `*\/*` Accept, what HTTP libraries send.)
 */
export function isHtmlPageLoad(method: string, headers: IncomingHttpHeaders): boolean {
  const accept = headers.accept
  return (method === 'GET' || method === 'HEAD') && typeof accept === 'string' && HTML.test(accept)
}

/** Prefers HTML when the client lists text/html before (or without) application/json. */
function prefersHtml(headers: IncomingHttpHeaders): boolean {
  const accept = acceptHeader(headers)
  const html = accept.indexOf('text/html')
  if (html < 0) return false
  const json = accept.indexOf('application/json')
  return json < 0 || html < json
}

/** The encodings an HTML form can post in. */
const FORM_TYPES = /^\s*(?:application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\s*(?:;|$)/i

/**
 * A form a person submitted in a browser: a POST that prefers HTML, made as a navigation.
 * Fetch metadata says so outright (`Sec-Fetch-Mode: navigate`; a script's fetch or XHR
 * sends `cors`, `same-origin` or `no-cors`). Without it (an older browser), a form
 * encoding and no `X-Requested-With` tell a form from a script.
 */
export function isFormSubmission(method: string, headers: IncomingHttpHeaders): boolean {
  if (method !== 'POST' || !prefersHtml(headers)) return false
  const mode = headers['sec-fetch-mode']
  if (typeof mode === 'string') return mode.toLowerCase() === 'navigate'
  if (headers['x-requested-with'] !== undefined) return false
  const type = headers['content-type']
  return typeof type === 'string' && FORM_TYPES.test(type)
}

/** Plain HTTP pages are refused in production: a visitor's redirect must not be readable or rewritable on the way. */
export function pagesNeedHttps(): boolean {
  return process.env.NODE_ENV === 'production'
}

/**
 * A challenge or block page a visitor may be sent to, parsed; `null` for anything else. An
 * absolute page must be https (or http outside production): `javascript:`, `data:` and other
 * schemes never reach `Location`. A page given as a path (a self-hosted one) must stay on
 * `origin`: `/\evil.example` would resolve to another host.
 */
export function followablePage(page: unknown, origin: string, httpsOnly: boolean): URL | null {
  if (typeof page !== 'string') return null
  try {
    if (page.startsWith('/') && !page.startsWith('//')) {
      const url = new URL(page, origin)
      return url.origin === new URL(origin).origin ? url : null
    }
    const url = new URL(page)
    return url.protocol === 'https:' || (url.protocol === 'http:' && !httpsOnly) ? url : null
  } catch {
    return null
  }
}

/** What the accepted page URLs are, for an error message. */
export const PAGE_URLS_ACCEPTED = 'an http(s) URL (https when NODE_ENV=production) or a path on the site'

/**
 * Checks the pages a backend declares when the gate is built, so a bad one fails at start-up
 * rather than at the first challenge. Returns the name of the first bad page (`'challenge'`), or `null`.
 */
export function badStaticPage(pages: unknown): 'challenge' | 'deny' | null {
  if (typeof pages !== 'object' || pages === null) return null
  for (const kind of ['challenge', 'deny'] as const) {
    const page = (pages as Record<string, unknown>)[kind]
    if (page !== undefined && followablePage(page, 'http://site.invalid', pagesNeedHttps()) === null) return kind
  }
  return null
}

/**
 * Builds the location of a challenge or block page with its query; `null` if the page URL
 * is not one a visitor may be sent to ({@link followablePage}). Checked on every use: a
 * backend may hand out its pages per request.
 */
export function pageLocation(page: unknown, query: Record<string, string>, origin: string, httpsOnly = pagesNeedHttps()): string | null {
  const url = followablePage(page, origin, httpsOnly)
  if (url === null) return null
  for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value)
  return url.href
}

export function redirect(location: string, status: 302 | 303 = 302): Action {
  return { type: 'redirect', location, status, headers: { 'cache-control': NO_STORE } }
}

export function challengeRequired(decision: Decision): Action {
  return {
    type: 'respond',
    status: 403,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': NO_STORE },
    body: JSON.stringify({ error: 'challenge_required', reason: decision.reason }),
  }
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
}

/** A 403 in the format the client asked for; the request id helps support find the decision. */
export function forbidden(decision: Decision, headers: IncomingHttpHeaders): Action {
  if (prefersHtml(headers)) {
    const reference = decision.requestId === null ? '' : `<p>Reference: <code>${escapeHtml(decision.requestId)}</code></p>`
    return {
      type: 'respond',
      status: 403,
      headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': NO_STORE },
      body: `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Access denied</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:15vh auto;padding:0 1rem;color:#222}h1{font-size:1.5rem}</style></head><body><main><h1>Access denied</h1><p>This request was blocked to protect the site. If you think this is a mistake, contact the site's owner.</p>${reference}</main></body></html>`,
    }
  }
  return {
    type: 'respond',
    status: 403,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': NO_STORE },
    body: JSON.stringify({ error: 'forbidden', requestId: decision.requestId }),
  }
}
