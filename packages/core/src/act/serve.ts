import { resolveHost, resolveProtocol } from '../client-ip.js'
import type { Logger } from '../logger.js'
import { returnOrigin } from '../redirect.js'
import { redirect } from '../respond.js'
import type { Action, BackendRoutes, RequestView, ServedRequest, ServedResponse } from '../types.js'

/** What answering a backend's own route needs besides the request. */
export interface ServeContext {
  /** The backend whose route it is, for the log line if it fails. */
  backend: string
  /** The request's path, without its query. */
  path: string
  ip: string | null
  /** The request came through a trusted proxy: its forwarded host and protocol hold. */
  peerTrusted: boolean
  redirectHosts: readonly string[]
  logger: Logger
}

/**
 * A request to a route a backend serves itself (the self-hosted challenge page and its
 * answer): what it gets instead of a decision. A route that fails answers 503, never throws.
 */
export async function serveRoute<Native>(
  view: RequestView<Native>,
  routes: BackendRoutes,
  { backend, path, ip, peerTrusted, redirectHosts, logger }: ServeContext,
): Promise<{ action: Action; setCookies: string[] }> {
  const protocol = resolveProtocol(view.encrypted, view.headers, peerTrusted)
  const query = view.url.indexOf('?')
  const fragment = view.url.indexOf('#')
  const request: ServedRequest = {
    method: view.method,
    path,
    query: new URLSearchParams(query < 0 ? '' : view.url.slice(query + 1, fragment > query ? fragment : undefined)),
    headers: view.headers,
    ip,
    origin: returnOrigin(protocol, resolveHost(view.headers, peerTrusted), redirectHosts),
    secure: protocol === 'https',
    redirectHosts: new Set(redirectHosts),
    async readForm(limit) {
      const type = view.headers['content-type'] ?? ''
      if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) return null
      // A body parser for another type (Express 4's json()) leaves `{}` and the stream
      // unread: only a parsed body that holds string fields is taken as the form.
      const parsed = view.body
      if (typeof parsed === 'object' && parsed !== null) {
        const fields = Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string')
        if (fields.length > 0) return new URLSearchParams(fields)
      }
      const raw = await view.readBody(limit)
      return raw === null ? null : new URLSearchParams(raw)
    },
  }
  let served: ServedResponse
  try {
    served = await routes.handle(request)
  } catch (error) {
    logger.error({ code: 'SP_ROUTE_FAILED', backend, err: error }, `${backend} failed to answer ${path}.`)
    served = {
      status: 503,
      headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
      body: 'Service unavailable',
    }
  }
  const action: Action =
    'redirect' in served
      ? redirect(served.redirect, served.status)
      : { type: 'respond', status: served.status, headers: served.headers, body: served.body }
  return { action, setCookies: served.setCookies ?? [] }
}
