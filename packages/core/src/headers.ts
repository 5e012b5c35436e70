import type { IncomingHttpHeaders } from 'node:http'
import { parse as parseCookie } from 'cookie'
import { invalidOption } from './errors.js'
import type { DecisionBackend } from './types.js'

/** Credentials and cookies: never sent to a backend, whatever the configuration. */
export const ALWAYS_SENSITIVE_HEADERS: readonly string[] = Object.freeze([
  'authorization',
  'cookie',
  'proxy-authorization',
  'proxy-authenticate',
  'set-cookie',
])

/**
 * Credentials under other names, common enough to drop by default (add yours with
 * `sensitiveHeaders`): API keys and CSRF tokens mean nothing to a risk backend.
 */
export const DEFAULT_SENSITIVE_HEADERS: readonly string[] = Object.freeze([
  'x-api-key',
  'x-auth-token',
  'x-access-token',
  'x-csrf-token',
  'x-xsrf-token',
  'x-amz-security-token',
])

/** Hop-by-hop headers describe one connection, not the request: no backend can use them. */
export const HOP_BY_HOP_HEADERS: readonly string[] = Object.freeze([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/**
 * The headers every backend receives: what describes the client and how it got here, never
 * what authenticates it. Anything else reaches only a backend that names it in
 * `DecisionBackend.headers`.
 */
export const CLIENT_HEADERS: readonly string[] = Object.freeze([
  // The software and what it accepts.
  'user-agent',
  'accept',
  'accept-language',
  'accept-encoding',
  'accept-charset',
  'x-requested-with',
  'upgrade-insecure-requests',
  // Where the request comes from and goes to (the Referer without its query or fragment).
  'host',
  'origin',
  'referer',
  // Privacy preferences.
  'dnt',
  'sec-gpc',
  // Prefetch and priority hints browsers set themselves.
  'sec-purpose',
  'purpose',
  'priority',
  // Client hints older than the `sec-ch-` prefix.
  'save-data',
  'device-memory',
  'dpr',
  'viewport-width',
  'downlink',
  'ect',
  'rtt',
])

/**
 * Families of client headers, forwarded whole: client hints (`sec-ch-ua`, `sec-ch-ua-platform`,
 * `sec-ch-prefers-color-scheme`, …) and fetch metadata (`sec-fetch-site`, …). Browsers set
 * them and page scripts cannot, so they describe the client and carry nothing of the user's.
 */
export const CLIENT_HEADER_PREFIXES: readonly string[] = Object.freeze(['sec-ch-', 'sec-fetch-'])

/**
 * What a backend reads of the headers beyond {@link CLIENT_HEADERS}: more names, or `'all'`,
 * every header but the sensitive ones (for a backend whose input never leaves the process).
 */
export type HeaderAccess = readonly string[] | 'all'

/** Names no backend may ask for: they are removed whatever a backend declares. */
export const BUILT_IN_SENSITIVE_HEADERS: ReadonlySet<string> = new Set([
  ...ALWAYS_SENSITIVE_HEADERS,
  ...DEFAULT_SENSITIVE_HEADERS,
  ...HOP_BY_HOP_HEADERS,
])

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * Checks what a backend declares it reads of the headers, at construction: header names or
 * `'all'`, and no name the gate always removes, which the backend could never receive.
 */
export function checkHeaderAccess(backend: Pick<DecisionBackend, 'name' | 'headers'>): void {
  const { headers } = backend
  if (headers === undefined || headers === 'all') return
  const accepted = "backends whose `headers` is 'all' or an array of header names"
  if (!Array.isArray(headers)) throw invalidOption('backend', `${accepted} (\`${backend.name}\`'s is not)`)
  for (const name of headers as readonly unknown[]) {
    if (typeof name !== 'string' || !TOKEN.test(name)) {
      throw invalidOption('backend', `${accepted} (\`${backend.name}\` names ${JSON.stringify(name)})`)
    }
    if (BUILT_IN_SENSITIVE_HEADERS.has(name.toLowerCase())) {
      throw invalidOption(
        'backend',
        `backends that ask for no header Sallyport always removes (\`${backend.name}\` names \`${name}\`, a credential or connection header no backend ever receives)`,
      )
    }
  }
}

/**
 * Never dropped by the count cap nor cut by the length cap (Node bounds all headers together,
 * 16 KB by default): the ones that tell a browser from a script.
 */
const KEPT_WHOLE = new Set([
  'user-agent',
  'accept',
  'accept-language',
  'accept-encoding',
  'host',
  'origin',
  'sec-ch-ua',
  'sec-ch-ua-mobile',
  'sec-ch-ua-platform',
  'sec-fetch-site',
  'sec-fetch-mode',
  'sec-fetch-dest',
  'sec-fetch-user',
])

export interface SanitizeLimits {
  /** Headers forwarded at most; the rest are dropped. */
  maxHeaders: number
  /** Characters kept of one header value, and of the Referer once its query is gone. */
  maxValueLength: number
  /** Cookie names forwarded at most. */
  maxCookies: number
}

export const DEFAULT_SANITIZE_LIMITS: SanitizeLimits = Object.freeze({
  maxHeaders: 64,
  maxValueLength: 1024,
  maxCookies: 50,
})

/**
 * `text` in lowercase ASCII. Header names from Node are lowercase already, and
 * `toLowerCase()` would copy each one anyway: on the request path that is an allocation per header.
 */
export function lowerAscii(text: string): string {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code >= 65 && code <= 90) return text.toLowerCase()
  }
  return text
}

/**
 * The sanitized headers' type: a record that inherits nothing (no `constructor`, no
 * `__proto__` setter, like `Object.create(null)`), yet keeps V8's fast properties.
 * `Object.create(null)` objects live in dictionary mode: several times the memory and
 * the time for the handful of headers a request has.
 */
const HeaderRecord = function HeaderRecord() {} as unknown as new () => Record<string, string>
HeaderRecord.prototype = Object.create(null)

/** How a header is copied: cut to the length cap and counted, kept whole, or the Referer. */
const CAPPED = 0
const WHOLE = 1
const REFERER = 2

/** Which views receive a header, and how it is copied. */
interface Route {
  readonly views: readonly number[]
  readonly kind: typeof CAPPED | typeof WHOLE | typeof REFERER
}

/** The Referer without its query and fragment, which carry the previous page's tokens, and capped. */
function refererWithoutQuery(referer: string, maxLength: number): string {
  let end = referer.indexOf('?')
  const hash = referer.indexOf('#')
  if (end < 0 || (hash >= 0 && hash < end)) end = hash
  if (end < 0) end = referer.length
  return referer.slice(0, Math.min(end, maxLength))
}

function kindOf(name: string): Route['kind'] {
  return name === 'referer' ? REFERER : KEPT_WHOLE.has(name) ? WHOLE : CAPPED
}

function isClientHeader(name: string): boolean {
  // An indexed loop: an array iterator per header shows in the request path's profile.
  for (let index = 0; index < CLIENT_HEADER_PREFIXES.length; index++) {
    if (name.startsWith(CLIENT_HEADER_PREFIXES[index] as string)) return true
  }
  return false
}

/**
 * The headers each backend may see, compiled once per gate: one view per distinct
 * {@link HeaderAccess}, so backends that read the same headers share one record, and one
 * pass over the request's headers fills every view.
 */
export class HeaderViews {
  /** The view each backend (by index) receives. */
  readonly viewOf: readonly number[]
  readonly #count: number
  readonly #routes = new Map<string, Route>()
  /** Views for a client-family name (`sec-ch-…`) not named anywhere: every view. */
  readonly #client: Route
  /** Views for any other name no one named: those with access to `'all'`. */
  readonly #other: Route
  readonly #limits: SanitizeLimits

  constructor(accesses: ReadonlyArray<HeaderAccess | undefined>, sensitive: ReadonlySet<string>, limits: SanitizeLimits) {
    const keys: string[] = []
    const sets: Array<ReadonlySet<string> | 'all'> = []
    const viewOf: number[] = []
    const viewFor = (access: ReadonlySet<string> | 'all'): number => {
      const key = access === 'all' ? '*' : [...access].sort().join(',')
      let index = keys.indexOf(key)
      if (index < 0) {
        index = keys.push(key) - 1
        sets.push(access)
      }
      return index
    }
    const named = (access: HeaderAccess | undefined): ReadonlySet<string> | 'all' =>
      access === 'all' ? 'all' : new Set((access ?? []).map((name) => name.toLowerCase()))
    for (const access of accesses) viewOf.push(viewFor(named(access)))
    this.viewOf = viewOf
    this.#count = sets.length
    this.#limits = limits

    const every = sets.map((_, index) => index)
    const allViews = every.filter((index) => sets[index] === 'all')
    this.#client = { views: every, kind: CAPPED }
    this.#other = { views: allViews, kind: CAPPED }
    const none: Route = { views: [], kind: CAPPED }
    for (const name of CLIENT_HEADERS) this.#routes.set(name, { views: every, kind: kindOf(name) })
    for (const name of KEPT_WHOLE) this.#routes.set(name, { views: every, kind: WHOLE })
    for (const set of sets) {
      if (set === 'all') continue
      for (const name of set) {
        if (this.#routes.has(name) || isClientHeader(name)) continue
        const views = every.filter((index) => sets[index] === 'all' || (sets[index] as ReadonlySet<string>).has(name))
        this.#routes.set(name, { views, kind: CAPPED })
      }
    }
    // Last, so a sensitive name wins over every list, the client headers included.
    for (const name of [...ALWAYS_SENSITIVE_HEADERS, ...sensitive]) this.#routes.set(lowerAscii(name), none)
  }

  /**
   * Copies the request headers into one record per view: lowercase names, repeated values
   * joined, counts and lengths capped. The application's own header object is never modified.
   */
  select(headers: IncomingHttpHeaders): Array<Record<string, string>> {
    const count = this.#count
    const { maxHeaders, maxValueLength } = this.#limits
    const views = new Array<Record<string, string>>(count)
    const kept = new Array<number>(count)
    for (let index = 0; index < count; index++) {
      views[index] = new HeaderRecord()
      kept[index] = 0
    }
    for (const key in headers) {
      const name = lowerAscii(key)
      const route = this.#routes.get(name) ?? (isClientHeader(name) ? this.#client : this.#other)
      const targets = route.views
      if (targets.length === 0) continue
      const value = headers[key]
      if (value === undefined) continue
      let text = typeof value === 'string' ? value : value.join(', ')
      // The headers rules judge a client by are kept whole and whatever their position, so
      // padding a request with junk headers or a long user agent cannot hide them.
      if (route.kind !== CAPPED) {
        if (route.kind === REFERER) text = refererWithoutQuery(text, maxValueLength)
        for (let index = 0; index < targets.length; index++) (views[targets[index] as number] as Record<string, string>)[name] = text
        continue
      }
      if (text.length > maxValueLength) text = text.slice(0, maxValueLength)
      for (let index = 0; index < targets.length; index++) {
        const view = targets[index] as number
        if ((kept[view] as number) >= maxHeaders) continue
        ;(views[view] as Record<string, string>)[name] = text
        kept[view] = (kept[view] as number) + 1
      }
    }
    return views
  }
}

/**
 * Copies the request headers into a plain object a backend may see: the {@link CLIENT_HEADERS}
 * and those `access` names (or, for `'all'`, every header), never credentials, cookies nor
 * `sensitive` ones; the Referer without its query; lowercase names, repeated values joined,
 * counts and lengths capped. The application's own header object is never modified.
 */
export function sanitizeHeaders(
  headers: IncomingHttpHeaders,
  sensitive: ReadonlySet<string>,
  limits: SanitizeLimits,
  access: HeaderAccess = [],
): Record<string, string> {
  return new HeaderViews([access], sensitive, limits).select(headers)[0] as Record<string, string>
}

/** A query parameter's name as decoded, or `null` when its encoding is broken. */
function parameterName(raw: string): string | null {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '))
  } catch {
    return null
  }
}

/**
 * The request URL as backends receive it: the path, and of the query only the parameters
 * named in `forwardQuery`, as sent and in their order. The query carries what a site never
 * meant for a vendor (OAuth codes, reset tokens, session ids in links); the fragment too.
 */
export function pathForBackends(url: string, forwardQuery: ReadonlySet<string>): string {
  const question = url.indexOf('?')
  const hash = url.indexOf('#')
  if (question < 0 && hash < 0) return url
  const pathEnd = question < 0 ? hash : hash < 0 || question < hash ? question : hash
  const path = url.slice(0, pathEnd)
  if (forwardQuery.size === 0 || pathEnd !== question) return path
  const kept: string[] = []
  for (const pair of url.slice(question + 1, hash < 0 ? url.length : hash).split('&')) {
    const equals = pair.indexOf('=')
    const name = parameterName(equals < 0 ? pair : pair.slice(0, equals))
    if (name !== null && forwardQuery.has(name)) kept.push(pair)
  }
  return kept.length === 0 ? path : `${path}?${kept.join('&')}`
}

/** The raw Cookie header, whatever its case or repetition. */
function cookieHeader(headers: IncomingHttpHeaders): string | undefined {
  const direct = headers.cookie
  if (direct !== undefined) return direct
  for (const key in headers) {
    // Most requests carry no cookie: compare lengths before folding case.
    if (key.length === 6 && lowerAscii(key) === 'cookie') {
      const value = headers[key]
      return Array.isArray(value) ? value.join('; ') : value
    }
  }
  return undefined
}

export interface RequestCookies {
  names: string[]
  /** Value of one cookie; only handed to backends for the names they declared. */
  value(name: string): string | undefined
}

const noCookie = (): undefined => undefined

/** Parses the Cookie header once: names for every backend, values on demand. */
export function readCookies(headers: IncomingHttpHeaders, maxCookies: number): RequestCookies {
  const header = cookieHeader(headers)
  if (header === undefined || header.length === 0) return { names: [], value: noCookie }
  const parsed = parseCookie(header)
  const names = Object.keys(parsed).slice(0, maxCookies)
  return { names, value: (name) => parsed[name] }
}
