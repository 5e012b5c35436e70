import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { invalidOption, SallyportError } from './errors.js'
import { parseJson, statusError, Transport } from './transport.js'
import type { BackendPages, BackendVerdict, DecisionBackend, DecisionInput } from './types.js'

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

const defaultReply = z.object({
  verdict: z.enum(['allow', 'challenge', 'deny', 'review']),
  reason: z.string().max(256).nullable().optional(),
  requestId: z.string().max(256).nullable().optional(),
  complete: z.boolean().optional(),
  signals: z.record(z.string(), z.unknown()).optional(),
})

function defaultVerdict(reply: unknown): BackendVerdict {
  const parsed = defaultReply.parse(reply)
  const verdict: BackendVerdict = { verdict: parsed.verdict }
  if (parsed.reason !== undefined) verdict.reason = parsed.reason
  if (parsed.requestId !== undefined) verdict.requestId = parsed.requestId
  if (parsed.complete !== undefined) verdict.complete = parsed.complete
  if (parsed.signals !== undefined) verdict.signals = parsed.signals
  return verdict
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
  const transport = new Transport({
    ...(connections === undefined ? {} : { connections }),
    ...(options.maxResponseSize === undefined ? {} : { maxResponseSize: options.maxResponseSize }),
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  })
  const toBody = options.body ?? defaultBody
  const toVerdict = options.verdict ?? defaultVerdict
  const headers = { ...options.headers }

  const backend: DecisionBackend = {
    name,
    // Scheme, host and port only: a path may carry a token, and URL.origin drops credentials.
    origin: url.origin,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.cookies === undefined ? {} : { cookies: [...options.cookies] }),
    ...(options.forwardHeaders === undefined ? {} : { headers: [...options.forwardHeaders] }),
    ...(options.pages === undefined ? {} : { pages: options.pages }),
    async decide(input, ctx) {
      const reply = await transport.request({ method: 'POST', url, headers, json: toBody(input) }, ctx)
      if (reply.status < 200 || reply.status > 299) throw statusError(reply, name)
      const json = parseJson(reply)
      let verdict: BackendVerdict
      try {
        verdict = toVerdict(json)
      } catch (error) {
        throw SallyportError.backend('invalid', `${name} replied without a valid verdict.`, { status: reply.status, cause: error })
      }
      return reply.setCookies.length === 0 ? verdict : { ...verdict, setCookies: [...(verdict.setCookies ?? []), ...reply.setCookies] }
    },
    close: () => transport.close(),
  }
  return backend
}
