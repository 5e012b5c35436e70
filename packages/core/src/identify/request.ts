import ipaddr from 'ipaddr.js'
import type { CompiledCheckpoint } from '../checkpoint.js'
import { warnIfBodyUnparsed } from '../checkpoint.js'
import { resolveClientIp, resolveHost, resolveProtocol } from '../client-ip.js'
import { HeaderViews, pathForBackends, type RequestCookies, readCookies, type SanitizeLimits } from '../headers.js'
import type { Warnings } from '../logger.js'
import type { Checkpoint, DecisionBackend, DecisionInput, RequestView, TrustFunction } from '../types.js'

/**
 * Stage 1, identify: who is asking and what the backends may see of it. The client IP through
 * the trusted proxies, the host and protocol, the cookie names, the headers each backend may
 * read, and the checkpoint's data: one {@link BackendInput} per backend.
 */

const trustNone: TrustFunction = () => false

/**
 * What one backend sees of a request. A class, so each backend's input is one object with a
 * shared `cookie` method rather than a literal and a closure per request.
 */
export class BackendInput implements DecisionInput {
  readonly ip: string | null
  readonly method: string
  readonly path: string
  readonly host: string | null
  readonly headers: Record<string, string>
  readonly cookieNames: string[]
  readonly checkpoint: Checkpoint | null
  readonly #cookies: RequestCookies
  readonly #readable: ReadonlySet<string> | undefined
  constructor(
    ip: string | null,
    method: string,
    path: string,
    host: string | null,
    headers: Record<string, string>,
    cookies: RequestCookies,
    checkpoint: Checkpoint | null,
    readable: ReadonlySet<string> | undefined,
  ) {
    this.ip = ip
    this.method = method
    this.path = path
    this.host = host
    this.headers = headers
    this.cookieNames = cookies.names
    this.checkpoint = checkpoint
    this.#cookies = cookies
    this.#readable = readable
  }
  /** The value of a cookie this backend declared it reads; `undefined` for any other. */
  cookie(name: string): string | undefined {
    return this.#readable?.has(name) === true ? this.#cookies.value(name) : undefined
  }
}

/** A request, identified. */
export interface Identified {
  /** The client IP every backend is given; `null` when none could be trusted. */
  readonly ip: string | null
  readonly host: string | null
  readonly protocol: 'http' | 'https'
  /** One per backend, in the order of the gate's backends. */
  readonly inputs: BackendInput[]
  /** The checkpoint's data, as the app's extractors gave it. */
  readonly checkpoint: Checkpoint | null
}

export interface IdentifyOptions {
  backends: readonly DecisionBackend[]
  /** The gate's `trustProxy`; `undefined` defers to the framework's setting. */
  trust: TrustFunction | undefined
  clientIpHeader: string | undefined
  sensitive: ReadonlySet<string>
  forwardQuery: ReadonlySet<string>
  limits: SanitizeLimits
  warnings: Warnings
}

/** Trusting two public addresses at the socket and far down the chain means trusting anyone. */
export function trustsEveryone(trust: TrustFunction): boolean {
  try {
    return trust('203.0.113.7', 0) && trust('198.51.100.9', 3)
  } catch {
    return false
  }
}

/** A loopback or private peer: a proxy of the site's own, most likely. */
export function isPrivatePeer(address: string | undefined): boolean {
  if (address === undefined || !ipaddr.isValid(address)) return false
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  }
  const range = parsed.range()
  return range === 'loopback' || range === 'private' || range === 'uniqueLocal' || range === 'linkLocal'
}

export class Identify {
  readonly #options: IdentifyOptions
  readonly #headerViews: HeaderViews
  readonly #cookieAllowLists: Array<ReadonlySet<string>>
  readonly #checkedTrust = new WeakSet<TrustFunction>()

  constructor(options: IdentifyOptions) {
    this.#options = options
    this.#headerViews = new HeaderViews(
      options.backends.map((backend) => backend.headers),
      options.sensitive,
      options.limits,
    )
    this.#cookieAllowLists = options.backends.map((backend) => new Set(backend.cookies ?? []))
    if (options.trust !== undefined && process.env.NODE_ENV === 'production') this.checkTrust(options.trust, false)
  }

  /** The trust in force for this request: the gate's, else the framework's, else none. */
  trustFor(view: RequestView<unknown>): TrustFunction {
    return this.#options.trust ?? view.frameworkTrust ?? trustNone
  }

  /** The client IP alone, for a decision that asks no backend (a skip, a served route). */
  clientIp(view: RequestView<unknown>): { ip: string | null; peerTrusted: boolean } {
    return resolveClientIp(view.remoteAddress, view.headers, this.trustFor(view), this.#options.clientIpHeader)
  }

  /** Warns once when the trust in force (the gate's or the framework's) believes any client. */
  checkTrust(trust: TrustFunction, inherited: boolean): void {
    if (this.#checkedTrust.has(trust)) return
    this.#checkedTrust.add(trust)
    if (!trustsEveryone(trust)) return
    this.#options.warnings.once(
      'SP_WARN_TRUST_ALL_PROXIES',
      inherited
        ? "The framework's proxy setting (Express `trust proxy: true`, or Koa `app.proxy` without `maxIpsCount`) trusts every X-Forwarded-For entry, so any client can choose its IP. Set `trustProxy` to your proxies (a hop count or their ranges)."
        : '`trustProxy: true` trusts every X-Forwarded-For entry, so any client can choose its IP. Name your proxies (a hop count or their ranges) instead.',
    )
  }

  identify<Native>(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native> | undefined): Identified {
    const options = this.#options
    if (options.trust === undefined && view.frameworkTrust !== undefined) this.checkTrust(view.frameworkTrust, true)
    const { ip, peerTrusted } = this.clientIp(view)
    if (!peerTrusted && view.headers['x-forwarded-for'] !== undefined && isPrivatePeer(view.remoteAddress)) {
      options.warnings.once(
        'SP_WARN_XFF_UNTRUSTED',
        'Requests carry X-Forwarded-For from a private address, but no proxy is trusted, so every visitor looks like the proxy. Set `trustProxy` (or the framework setting) to your proxies.',
        { peer: view.remoteAddress },
      )
    }
    const host = resolveHost(view.headers, peerTrusted)
    const protocol = resolveProtocol(view.encrypted, view.headers, peerTrusted)
    const cookies = readCookies(view.headers, options.limits.maxCookies)
    const headers = this.#headerViews.select(view.headers)
    const path = pathForBackends(view.url, options.forwardQuery)
    if (checkpoint !== undefined) warnIfBodyUnparsed(view, checkpoint, options.warnings)
    const data = checkpoint === undefined ? null : checkpoint.extract(view.native)
    // Plain loops on this path: a closure or an array iterator per request shows in the profile.
    const viewOf = this.#headerViews.viewOf
    const inputs = new Array<BackendInput>(options.backends.length)
    for (let index = 0; index < inputs.length; index++) {
      const seen = headers[viewOf[index] as number] as Record<string, string>
      inputs[index] = new BackendInput(ip, view.method, path, host, seen, cookies, data, this.#cookieAllowLists[index])
    }
    return { ip, host, protocol, inputs, checkpoint: data }
  }
}
