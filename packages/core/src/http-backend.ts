import type { Dispatcher } from 'undici'
import { invalidOption, SallyportError } from './errors.js'
import { checkReply } from './reply.js'
import type { BackendPages, BackendVerdict, DecisionBackend, DecisionInput } from './types.js'
import { httpVendor } from './vendor.js'

export interface HttpBackendOptions {
  /** The decision endpoint; receives a JSON POST. */
  url: string
  /** Name in decisions and logs. Defaults to `'http'`. */
  name?: string
  /** Extra request headers, e.g. an API key. Never logged. Defaults to none. */
  headers?: Record<string, string>
  /** The JSON body for one decision. Defaults to the {@link DecisionInput} fields. */
  body?(input: DecisionInput): unknown
  /**
   * Turns the parsed reply into a verdict. Defaults to reading
   * `{ verdict, reason?, requestId?, complete?, signals? }`.
   * Throw (or return something without a valid verdict) to mark the reply invalid.
   */
  verdict?(reply: unknown): BackendVerdict
  /** The service's recommended budget in ms, used when the gate sets none. */
  timeoutMs?: number
  /** Cookies the service reads and may set. Defaults to none. */
  cookies?: string[]
  /**
   * Request headers the service reads besides those every backend receives (`CLIENT_HEADERS`:
   * user agent, `accept*`, client hints, …), e.g. `['x-device-id']`. Defaults to none.
   */
  forwardHeaders?: string[]
  /** Hosted challenge and block pages, if the service has them. */
  pages?: BackendPages
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher to use instead of Sallyport's own keep-alive pool. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections to the service. A decision that finds them all busy waits inside
   * its budget; one still waiting at the deadline falls back with reason `pool_saturated`,
   * which never opens the circuit breaker. Defaults to 128.
   */
  connections?: number
}

/** The fields the default verdict reads; anything else in the reply (a `setCookies`, say) is ignored. */
const REPLY_FIELDS = ['reason', 'requestId', 'complete', 'signals'] as const

/** A copy of the reply's signals without `__proto__`, a key that could reach an object's prototype. */
function copySignals(signals: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(signals)) if (key !== '__proto__') copy[key] = signals[key]
  return copy
}

/** Reads `{ verdict, reason?, requestId?, complete?, signals? }`, checked as the gate checks every reply. */
function defaultVerdict(name: string): (reply: unknown) => BackendVerdict {
  return (reply) => {
    const fields = (typeof reply === 'object' && reply !== null ? reply : {}) as Record<string, unknown>
    const verdict: Record<string, unknown> = { verdict: fields.verdict }
    for (const field of REPLY_FIELDS) if (fields[field] !== undefined) verdict[field] = fields[field]
    const checked = checkReply(verdict, name)
    if (checked.signals !== undefined) checked.signals = copySignals(checked.signals)
    return checked
  }
}

function defaultBody(input: DecisionInput): unknown {
  const { ip, method, path, host, headers, cookieNames, checkpoint } = input
  return { ip, method, path, host, headers, cookieNames, checkpoint }
}

/** Any JSON decision service: POST the request's description, read a verdict back. */
export function httpBackend(options: HttpBackendOptions): DecisionBackend {
  let url: URL
  try {
    url = new URL(options.url)
  } catch (error) {
    throw invalidOption('url', 'an absolute http(s) URL', error)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidOption('url', 'an absolute http(s) URL')
  const name = options.name ?? 'http'
  const { connections } = options
  if (connections !== undefined && !(Number.isInteger(connections) && connections >= 1 && connections <= 4096)) {
    throw invalidOption('connections', 'an integer from 1 to 4096')
  }
  const toBody = options.body ?? defaultBody
  const toVerdict = options.verdict ?? defaultVerdict(name)
  const headers = { ...options.headers }

  return httpVendor({
    name,
    label: name,
    endpoint: url,
    transport: {
      ...(connections === undefined ? {} : { connections }),
      ...(options.maxResponseSize === undefined ? {} : { maxResponseSize: options.maxResponseSize }),
      ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
    },
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.cookies === undefined ? {} : { cookies: options.cookies }),
    ...(options.forwardHeaders === undefined ? {} : { headers: options.forwardHeaders }),
    ...(options.pages === undefined ? {} : { pages: options.pages }),
    // Whatever the service sets is offered; the gate keeps only the cookies named in `cookies`.
    forwardSetCookie: true,
    request: (input) => ({ method: 'POST', headers, json: toBody(input) }),
    verdict(json, reply) {
      try {
        return toVerdict(json)
      } catch (error) {
        // Whatever the mapping threw, even a SallyportError of another class: the reply is what failed.
        throw SallyportError.backend('invalid', `${name} replied without a valid verdict.`, { status: reply.status, cause: error })
      }
    },
  })
}
