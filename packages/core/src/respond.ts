import type { IncomingHttpHeaders } from 'node:http'
import type { Action, Decision } from './types.js'

const NO_STORE = 'no-store'

function acceptHeader(headers: IncomingHttpHeaders): string {
  const accept = headers.accept
  return typeof accept === 'string' ? accept.toLowerCase() : ''
}

const HTML = /text\/html/i

/** A page load a browser makes: GET or HEAD that accepts HTML. Only these are redirected. */
export function isNavigation(method: string, headers: IncomingHttpHeaders): boolean {
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

/**
 * Builds the location of a challenge or block page with its query; `null` if the page URL
 * is unusable. A page given as a path (a self-hosted one) lives on `origin`.
 */
export function pageLocation(page: string, query: Record<string, string>, origin: string): string | null {
  let url: URL
  try {
    url = page.startsWith('/') && !page.startsWith('//') ? new URL(page, origin) : new URL(page)
  } catch {
    return null
  }
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
