import type { IncomingHttpHeaders } from 'node:http'
import { parse as parseCookie } from 'cookie'

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

const ALWAYS_SENSITIVE = new Set(ALWAYS_SENSITIVE_HEADERS)

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
  'referer',
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
  /** Characters kept of one header value. */
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

/**
 * Copies the request headers into a plain object a backend may see: lowercase names,
 * credentials and cookies always removed, and `sensitive` ones too, repeated values joined, counts and lengths capped.
 * The application's own header object is never modified.
 */
export function sanitizeHeaders(
  headers: IncomingHttpHeaders,
  sensitive: ReadonlySet<string>,
  limits: SanitizeLimits,
): Record<string, string> {
  const clean = new HeaderRecord()
  let count = 0
  for (const key in headers) {
    const name = lowerAscii(key)
    if (sensitive.has(name) || ALWAYS_SENSITIVE.has(name)) continue
    const value = headers[key]
    if (value === undefined) continue
    const text = typeof value === 'string' ? value : value.join(', ')
    // The headers rules judge a client by are kept whole and whatever their position, so
    // padding a request with junk headers or a long user agent cannot hide them.
    if (KEPT_WHOLE.has(name)) {
      clean[name] = text
      continue
    }
    if (count >= limits.maxHeaders) continue
    clean[name] = text.length > limits.maxValueLength ? text.slice(0, limits.maxValueLength) : text
    count++
  }
  return clean
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
