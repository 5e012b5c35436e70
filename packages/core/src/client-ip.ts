import { isIPv4, isIPv6 } from 'node:net'
import ipaddr from 'ipaddr.js'
import proxyaddr from 'proxy-addr'
import { invalidOption } from './errors.js'
import type { TrustFunction } from './types.js'

/** What Express's `trust proxy` setting accepts. */
export type TrustProxy = boolean | number | string | readonly string[] | TrustFunction

const trustNone: TrustFunction = () => false
const trustAll: TrustFunction = () => true

/**
 * Compiles a `trustProxy` value once, at construction, exactly as Express compiles
 * its `trust proxy` setting. Invalid ranges throw a `SP_INVALID_OPTION` error.
 */
export function compileTrust(value: TrustProxy, option = 'trustProxy'): TrustFunction {
  if (typeof value === 'function') return value
  if (value === true) return trustAll
  if (value === false) return trustNone
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) {
      throw invalidOption(option, 'a boolean, a non-negative hop count, a range name, CIDR strings or a function')
    }
    return (_address, hop) => hop < value
  }
  try {
    if (typeof value !== 'string' && !Array.isArray(value)) throw new TypeError('not a string or an array')
    const list = typeof value === 'string' ? value.split(',').map((part) => part.trim()) : [...value]
    return proxyaddr.compile(list)
  } catch (error) {
    throw invalidOption(option, `'loopback', 'linklocal', 'uniquelocal', IP addresses or CIDR ranges (got ${JSON.stringify(value)})`, error)
  }
}

/** Longest textual form worth parsing: a bracketed IPv6 with an IPv4 tail, zone id and port. */
const MAX_ADDRESS_LENGTH = 80

/**
 * Turns one address as found on a socket or in a forwarding header into its canonical
 * form, or `null` when it is not an IP address. Ports and brackets are dropped, zone ids
 * are dropped, IPv4-mapped IPv6 becomes IPv4, and IPv4 must be four plain decimal parts
 * (`01.2.3.4` and `0x7f.1` are rejected rather than guessed at).
 */
export function normalizeIp(raw: string | undefined): string | null {
  if (raw === lastRaw) return lastNormalized
  const normalized = normalize(raw)
  lastRaw = raw
  lastNormalized = normalized
  return normalized
}

function normalize(raw: string | undefined): string | null {
  if (raw === undefined) return null
  let text = raw.trim()
  if (text.length === 0 || text.length > MAX_ADDRESS_LENGTH) return null
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    if (close < 0) return null
    const rest = text.slice(close + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null
    text = text.slice(1, close)
  } else if (text.indexOf(':') === text.lastIndexOf(':') && text.includes('.')) {
    // IPv4 with a port: "1.2.3.4:5678"
    const colon = text.indexOf(':')
    if (colon >= 0) {
      if (!/^\d{1,5}$/.test(text.slice(colon + 1))) return null
      text = text.slice(0, colon)
    }
  }
  const zone = text.indexOf('%')
  if (zone >= 0) text = text.slice(0, zone)
  if (isIPv4(text)) return text
  // A server listening on "::" (Node's default) sees every IPv4 client as "::ffff:a.b.c.d":
  // that form is folded here, where the IPv6 parser would take ~2.5 µs a request.
  if (text.startsWith('::ffff:') || text.startsWith('::FFFF:')) {
    const mapped = text.slice(7)
    if (isIPv4(mapped)) return mapped
  }
  if (!isIPv6(text)) return null
  const parsed = ipaddr.IPv6.parse(text)
  return parsed.isIPv4MappedAddress() ? parsed.toIPv4Address().toString() : parsed.toString()
}

/** The address normalized last, and its result: a keep-alive connection hands over the same one on every request. */
let lastRaw: string | undefined
let lastNormalized: string | null = null

export interface ClientIpHeaders {
  'x-forwarded-for'?: string | string[] | undefined
  [name: string]: string | string[] | undefined
}

export interface ResolvedPeer {
  /** The resolved client IP, or `null`. */
  ip: string | null
  /** Whether the socket peer itself is a trusted proxy. */
  peerTrusted: boolean
}

/** Right-most-first walk over every X-Forwarded-For line, at most `limit` entries. */
function* forwardedFromRight(value: string | string[], limit: number): Generator<string> {
  const lines = typeof value === 'string' ? [value] : value
  let yielded = 0
  for (let line = lines.length - 1; line >= 0; line--) {
    const parts = (lines[line] ?? '').split(',')
    for (let index = parts.length - 1; index >= 0; index--) {
      yield parts[index] ?? ''
      if (++yielded >= limit) return
    }
  }
}

/** No real chain of proxies is this long; walking further only serves an attacker. */
const MAX_FORWARDED_HOPS = 32

/**
 * Resolves the client IP with Express `trust proxy` semantics: start at the socket peer,
 * and while the current hop is trusted step one entry left in X-Forwarded-For. The walk
 * stops at the first untrusted hop. An entry that is not an IP address where a trusted
 * proxy should have written one makes the IP `null`: garbage is never forwarded.
 *
 * `clientIpHeader` (such as `cf-connecting-ip`) is believed only from a trusted peer.
 */
export function resolveClientIp(
  remoteAddress: string | undefined,
  headers: ClientIpHeaders,
  trust: TrustFunction,
  clientIpHeader: string | undefined,
): ResolvedPeer {
  const peer = normalizeIp(remoteAddress)
  if (peer === null || remoteAddress === undefined) return { ip: null, peerTrusted: false }
  const peerTrusted = trust(remoteAddress, 0)
  if (!peerTrusted) return { ip: peer, peerTrusted }

  if (clientIpHeader !== undefined) {
    const value = headers[clientIpHeader]
    if (value !== undefined) {
      const single = typeof value === 'string' ? value : value.length === 1 ? value[0] : undefined
      return { ip: normalizeIp(single), peerTrusted }
    }
  }

  const forwarded = headers['x-forwarded-for']
  if (forwarded === undefined) return { ip: peer, peerTrusted }
  let current = peer
  let hop = 1
  for (const entry of forwardedFromRight(forwarded, MAX_FORWARDED_HOPS)) {
    const address = normalizeIp(entry)
    if (address === null) return { ip: null, peerTrusted }
    current = address
    if (!trust(address, hop)) return { ip: current, peerTrusted }
    hop++
  }
  return { ip: current, peerTrusted }
}

/** The first value of a forwarding header such as `x-forwarded-proto`. */
function firstForwarded(value: string | string[] | undefined): string | undefined {
  const text = typeof value === 'string' ? value : value?.[0]
  if (text === undefined) return undefined
  const comma = text.indexOf(',')
  return (comma < 0 ? text : text.slice(0, comma)).trim()
}

/** `https` for TLS sockets, or what a trusted proxy says in X-Forwarded-Proto. */
export function resolveProtocol(encrypted: boolean, headers: ClientIpHeaders, peerTrusted: boolean): 'http' | 'https' {
  if (encrypted) return 'https'
  if (!peerTrusted) return 'http'
  const forwarded = firstForwarded(headers['x-forwarded-proto'])?.toLowerCase()
  return forwarded === 'https' ? 'https' : 'http'
}

const HOST_NAME = /^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?(?::\d{1,5})?$/
const HOST_IPV6 = /^\[[0-9a-f:.]+\](?::\d{1,5})?$/

/**
 * The host the client asked for (with port), from Host, or X-Forwarded-Host when the
 * peer is a trusted proxy. Anything that is not a syntactically valid host is `null`.
 */
export function resolveHost(headers: ClientIpHeaders, peerTrusted: boolean): string | null {
  const forwarded = peerTrusted ? firstForwarded(headers['x-forwarded-host']) : undefined
  const raw = forwarded || firstForwarded(headers.host)
  if (raw === undefined || raw.length === 0 || raw.length > 260) return null
  // Most requests to a site name the same host: the last one checked is remembered.
  if (raw === lastHostRaw) return lastHost
  const host = raw.toLowerCase()
  const valid = HOST_NAME.test(host) || HOST_IPV6.test(host) ? host : null
  lastHostRaw = raw
  lastHost = valid
  return valid
}

/** The Host value checked last, and what it resolved to. */
let lastHostRaw: string | undefined
let lastHost: string | null = null
