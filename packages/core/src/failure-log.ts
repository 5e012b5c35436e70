import { SallyportError } from './errors.js'
import type { Logger } from './logger.js'
import type { DecisionBackend, FailureClass } from './types.js'

/** A backend's failures of one class are logged at warn at most once in this window. */
export const FAILURE_LOG_INTERVAL_MS = 60_000

/** What a log line says about a failure: no key, header or body is ever part of it. */
export interface FailureDescription {
  /** `host[:port]` the backend calls, when it says (`DecisionBackend.origin`) or the error does. */
  host: string | undefined
  /** An error code (`ECONNREFUSED`, `ENOTFOUND`, `CERT_HAS_EXPIRED`), `HTTP 401`, or `timeout`. */
  cause: string
  /** The likely fix, as a sentence. */
  advice: string
}

interface ClassState {
  /** When the last warn line was logged; `undefined` before the first. */
  loggedAt: number | undefined
  /** Failures since that line that were only logged at debug. */
  suppressed: number
  /** The newest failure, for the breaker's line. */
  last: unknown
}

const MAX_CAUSE_LENGTH = 160
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL'])
const REFUSED = new Set(['ECONNREFUSED'])
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED'])
const UNREACHABLE = new Set(['ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ENETUNREACH', 'EHOSTUNREACH', 'EHOSTDOWN'])
const TLS = /^(ERR_SSL_|ERR_TLS_|EPROTO$|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|HOSTNAME_MISMATCH$)/

/** The first error code in the cause chain that is not one of Sallyport's own. */
function systemCode(error: unknown): string | undefined {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && !code.startsWith('SP_')) return code.slice(0, 64)
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** `host[:port]` from a system error: `hostname` for DNS failures, `address` and `port` for connect failures. */
function hostFromError(error: unknown): string | undefined {
  let current = error
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const { hostname, address, port } = current as { hostname?: unknown; address?: unknown; port?: unknown }
    if (typeof hostname === 'string') return hostname
    if (typeof address === 'string')
      return typeof port === 'number' ? `${address.includes(':') ? `[${address}]` : address}:${port}` : address
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

function hostOf(backend: DecisionBackend, error: unknown): string | undefined {
  if (typeof backend.origin === 'string') {
    try {
      // The host alone: even an origin with a path or credentials in it gives only that.
      return new URL(backend.origin).host
    } catch {}
  }
  return hostFromError(error)
}

function adviceForCode(code: string): string {
  if (DNS.has(code)) return "The host name does not resolve: check the backend URL (its baseUrl) and this server's DNS."
  if (REFUSED.has(code)) return "Nothing accepts connections there: check the URL's host and port, and that the service runs."
  if (DROPPED.has(code)) return 'The connection was dropped mid-call: check proxies and firewalls on the way.'
  if (UNREACHABLE.has(code)) return 'The host cannot be reached: check the network path and firewalls.'
  if (TLS.test(code)) return 'The TLS handshake failed: check the certificate, and that an https URL points at a TLS port.'
  return 'Check that the backend URL is reachable from this server.'
}

function adviceForStatus(status: number): string {
  if (status === 401 || status === 403) return 'Check the key: the service refused it (wrong, mistyped, revoked, or for another account).'
  if (status === 429) return "Check the plan's quota and rate limit."
  if (status >= 500) return 'The service is failing; repeated failures open the circuit breaker.'
  return "Check the backend's key and quota."
}

/** Names what went wrong in a few words, and what to do about it. */
export function describeFailure(backend: DecisionBackend, failure: FailureClass, error: unknown): FailureDescription {
  const host = hostOf(backend, error)
  const status = error instanceof SallyportError ? error.status : undefined
  if (failure === 'timeout') {
    return { host, cause: 'timeout', advice: "Check the service's latency, or raise `timeoutMs`." }
  }
  if (error instanceof SallyportError && error.reason === 'no_client_ip') {
    return {
      host,
      cause: 'no client IP',
      advice: 'A trusted proxy wrote something that is not an IP address into X-Forwarded-For: check `trustProxy`.',
    }
  }
  if (status !== undefined && status >= 400) {
    const vendorCode = error instanceof SallyportError && error.vendorCode !== undefined ? ` ${error.vendorCode}` : ''
    return { host, cause: `HTTP ${status}${vendorCode}`, advice: adviceForStatus(status) }
  }
  const code = systemCode(error)
  if (code !== undefined) return { host, cause: code, advice: adviceForCode(code) }
  if (failure === 'invalid') return { host, cause: 'invalid reply', advice: 'Check that the URL points at the decision endpoint.' }
  const message = error instanceof Error ? error.message : String(error)
  return { host, cause: message.slice(0, MAX_CAUSE_LENGTH), advice: 'See the error logged with this line.' }
}

/** The backend as a log line names it: `name at host`, or the name alone. */
export function backendAt(backend: DecisionBackend, host: string | undefined): string {
  return host === undefined ? backend.name : `${backend.name} at ${host}`
}

const WHAT_HAPPENED: Record<FailureClass, string> = {
  timeout: 'did not answer in time',
  network: 'could not be reached',
  server: 'is failing',
  client: "refused Sallyport's request",
  invalid: 'replied with something that is not a verdict',
}

/**
 * The log lines about failed backend calls. A misconfigured backend (a wrong host, a closed
 * port, a revoked key) fails every request, so the first failure of each class per backend
 * is logged at warn with the host and the cause, then at most once a minute with the count of
 * those in between. Every failure is also logged at debug, as before. A refusal with an HTTP status is logged under
 * `SP_WARN_BACKEND_REFUSED`, which `warnings` can switch off; every other class under
 * `SP_BACKEND_FAILED`.
 */
export class FailureLog {
  readonly #logger: Logger
  readonly #refusalsOn: boolean
  readonly #now: () => number
  readonly #intervalMs: number
  readonly #states = new Map<DecisionBackend, Partial<Record<FailureClass, ClassState>>>()

  constructor(logger: Logger, refusalsOn: boolean, now: () => number = () => performance.now(), intervalMs = FAILURE_LOG_INTERVAL_MS) {
    this.#logger = logger
    this.#refusalsOn = refusalsOn
    this.#now = now
    this.#intervalMs = intervalMs
  }

  #state(backend: DecisionBackend, failure: FailureClass): ClassState {
    let byClass = this.#states.get(backend)
    if (byClass === undefined) {
      byClass = {}
      this.#states.set(backend, byClass)
    }
    byClass[failure] ??= { loggedAt: undefined, suppressed: 0, last: undefined }
    return byClass[failure]
  }

  /** Logs one failed call: at warn when it is the first of its class in the window, else at debug. */
  report(backend: DecisionBackend, failure: FailureClass, error: unknown): void {
    const state = this.#state(backend, failure)
    state.last = error
    const refusal = failure === 'client' && error instanceof SallyportError && error.status !== undefined
    const now = this.#now()
    const due = state.loggedAt === undefined || now - state.loggedAt >= this.#intervalMs
    try {
      // Every failure, for whoever traces single decisions.
      this.#logger.debug?.({ code: 'SP_BACKEND_FAILED', backend: backend.name, failure, err: error }, 'Backend failed; using the fallback.')
      if (!due || (refusal && !this.#refusalsOn)) {
        state.suppressed++
        return
      }
      const { host, cause, advice } = describeFailure(backend, failure, error)
      // Sallyport's own messages (a vendor's refusal, an unreadable reply) say more than the cause.
      const detail = (refusal || failure === 'invalid') && error instanceof SallyportError ? ` ${error.message}` : ''
      const since = state.suppressed === 0 ? '' : ` ${state.suppressed} more since the last line.`
      const what = cause === 'no client IP' ? 'could not judge a request' : WHAT_HAPPENED[failure]
      const message = `${backendAt(backend, host)} ${what} (${cause}).${detail} ${advice} Decisions take the \`onError\` fallback for \`${failure}\` failures.${since}`
      const object: Record<string, unknown> = {
        code: refusal ? 'SP_WARN_BACKEND_REFUSED' : 'SP_BACKEND_FAILED',
        backend: backend.name,
        host,
        failure,
        cause,
        suppressed: state.suppressed,
        err: error,
      }
      if (error instanceof SallyportError && error.status !== undefined) object.status = error.status
      state.loggedAt = now
      state.suppressed = 0
      this.#logger.warn(object, message)
    } catch {
      // A broken logger must not break requests.
    }
  }

  /** The newest failure of this class, described: what the breaker's line says opened it. */
  last(backend: DecisionBackend, failure: FailureClass): FailureDescription | undefined {
    const state = this.#states.get(backend)?.[failure]
    return state === undefined ? undefined : describeFailure(backend, failure, state.last)
  }
}
