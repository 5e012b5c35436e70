import type { Dispatcher } from 'undici'
import { SallyportError } from './errors.js'
import { shape } from './shape.js'
import { type HttpReply, parseJson, statusError, Transport, type TransportOptions } from './transport.js'
import type { BackendVerdict, DecideContext, DecisionBackend, DecisionInput } from './types.js'

/** The call for one decision, as {@link HttpVendorSpec.request} describes it. */
export interface HttpVendorCall {
  /** Defaults to `'POST'`. */
  method?: 'GET' | 'POST'
  /** Defaults to the spec's `endpoint`. */
  url?: URL
  /** Request headers, e.g. the API key. Never logged. `accept: application/json` is added. */
  headers?: Record<string, string>
  /** The body, serialized as JSON (with `content-type: application/json`). Defaults to none. */
  json?: unknown
  /** Never set: what `request` returns with a `verdict` is a verdict given without a call. */
  verdict?: never
}

/**
 * For backend authors: what makes an HTTP decision service a backend, namely its options, its
 * request and its reply mapping. {@link httpVendor} builds the rest: the transport, the status
 * check, the JSON parse, the classification of bad replies, Set-Cookie forwarding, `origin`
 * and `close`.
 *
 * `Call` is what `request` returns; a vendor may add fields of its own to it (an id it
 * generated, say), and `verdict` gets the same object back. TypeScript infers it when
 * `request` only returns calls; when it may return a verdict too, name it:
 * `httpVendor<AcmeCall>({ … })`.
 */
export interface HttpVendorSpec<Call extends HttpVendorCall = HttpVendorCall>
  extends Pick<
    DecisionBackend,
    'name' | 'timeoutMs' | 'cookies' | 'headers' | 'pages' | 'routes' | 'warnings' | 'cacheable' | 'checkpoints'
  > {
  /** How messages name the service: `'Trusted Accounts'`. */
  label: string
  /**
   * The decision endpoint, where calls go unless `request` names another URL. Its origin
   * (scheme, host and port, never a path or credentials) is what logs show.
   */
  endpoint: URL
  /** `maxResponseSize`, `dispatcher`, `connections`, as the vendor's own options checked them. */
  transport?: TransportOptions
  /**
   * Append the reply's Set-Cookie values to the verdict's `setCookies`. The gate still passes
   * on only those named in `cookies`, and warns about the others. Defaults to `false`: a
   * service's cookies (a load balancer's, say) are for Sallyport's connection to it, not for
   * the visitor.
   */
  forwardSetCookie?: boolean
  /**
   * What a valid reply carries, for the `invalid` failure when `verdict` throws:
   * `'<label> replied without a valid <expected>.'`. Defaults to `'verdict'`.
   */
  expected?: string
  /** Statuses that carry a verdict. Defaults to any 2xx. */
  accepts?(status: number): boolean
  /**
   * The error for a reply whose status carries no verdict. Defaults to `statusError(reply, label)`:
   * 5xx is `server`, 4xx `client`, anything else `invalid`.
   */
  refusal?(reply: HttpReply): Error
  /**
   * The call for one decision. Return a verdict instead (`{ verdict: 'allow', reason: 'no_checkpoint' }`)
   * to decide without a call; throw (e.g. `noClientIp(label)`) to fail the decision before
   * anything is sent.
   */
  request(input: DecisionInput, ctx: DecideContext): Call | BackendVerdict
  /**
   * The parsed JSON reply (of an accepted status) as a verdict. A `SallyportError` thrown here
   * is passed on as it is; anything else thrown marks the reply `invalid`, with its status and
   * the thrown error as the cause.
   */
  verdict(json: unknown, reply: HttpReply, input: DecisionInput, call: Call): BackendVerdict
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>

function anyTwoHundred(status: number): boolean {
  return status >= 200 && status <= 299
}

/**
 * For backend authors: a decision backend for an HTTP service from its {@link HttpVendorSpec}: one keep-alive
 * transport, the call `request` describes within the decision's deadline, the status check,
 * the JSON parse and the spec's `verdict`. A reply that maps to no verdict is an `invalid`
 * failure, never an allow.
 */
export function httpVendor<Call extends HttpVendorCall = HttpVendorCall>(spec: HttpVendorSpec<Call>): DecisionBackend {
  const { label, endpoint } = spec
  const transport = new Transport(spec.transport)
  const accepts = spec.accepts ?? anyTwoHundred
  const refusal = spec.refusal ?? ((reply: HttpReply) => statusError(reply, label))
  const forward = spec.forwardSetCookie === true
  const invalidMessage = `${label} replied without a valid ${spec.expected ?? 'verdict'}.`
  const toVerdict = spec.verdict

  async function decide(input: DecisionInput, ctx: DecideContext): Promise<BackendVerdict> {
    const call = spec.request(input, ctx)
    if ((call as BackendVerdict).verdict !== undefined) return call as BackendVerdict
    const { method = 'POST', url = endpoint, headers = NO_HEADERS, json } = call as Call
    const reply = await transport.request({ method, url, headers, json }, ctx)
    if (!accepts(reply.status)) throw refusal(reply)
    const body = parseJson(reply)
    let verdict: BackendVerdict
    try {
      verdict = toVerdict(body, reply, input, call as Call)
    } catch (error) {
      if (error instanceof SallyportError) throw error
      throw SallyportError.backend('invalid', invalidMessage, { status: reply.status, cause: error })
    }
    if (!forward || reply.setCookies.length === 0) return verdict
    return { ...verdict, setCookies: [...(verdict.setCookies ?? []), ...reply.setCookies] }
  }

  return {
    name: spec.name,
    // Scheme, host and port only: a path may carry a token, and URL.origin drops credentials.
    origin: endpoint.origin,
    ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    ...(spec.cookies === undefined ? {} : { cookies: [...spec.cookies] }),
    ...(spec.headers === undefined ? {} : { headers: spec.headers === 'all' ? 'all' : [...spec.headers] }),
    ...(spec.pages === undefined ? {} : { pages: spec.pages }),
    ...(spec.routes === undefined ? {} : { routes: spec.routes }),
    ...(spec.warnings === undefined ? {} : { warnings: spec.warnings }),
    ...(spec.cacheable === undefined ? {} : { cacheable: spec.cacheable }),
    ...(spec.checkpoints === undefined ? {} : { checkpoints: spec.checkpoints }),
    decide,
    close: () => transport.close(),
  }
}

const UNPRINTABLE = /[\p{Cc}\p{Cf}]+/gu

/**
 * For backend authors: text from a reply, fit to copy into a verdict (a reason, a signal, an id), or `undefined`
 * when there is none: not a string, or nothing left.
 *
 * Without `pattern`, runs of control and format characters (line breaks, bidi overrides,
 * zero-width characters) become one space, the ends are trimmed, and the text is cut to `max`
 * characters. With `pattern` (an id, say) the value is taken whole or not at all: it must
 * match and be at most `max` characters long, since an id cut or cleaned would name
 * something else.
 */
export function boundedText(value: unknown, max: number, pattern?: RegExp): string | undefined {
  if (typeof value !== 'string') return undefined
  if (pattern !== undefined) {
    pattern.lastIndex = 0
    return value.length <= max && pattern.test(value) ? value : undefined
  }
  const clean = value.replace(UNPRINTABLE, ' ').trim()
  if (clean.length === 0) return undefined
  if (clean.length <= max) return clean
  // Never end on half a surrogate pair.
  const end = max > 0 && /[\uD800-\uDBFF]/.test(clean.charAt(max - 1)) ? max - 1 : max
  const cut = clean.slice(0, end).trimEnd()
  return cut.length === 0 ? undefined : cut
}

/**
 * For backend authors: the options every HTTP vendor takes for its budget and its connections,
 * checked and described the same way in every package. Spread them into the vendor's own
 * `shape.strictObject({ …, ...vendorOptions })`, and override one where the service needs other bounds.
 */
export const vendorOptions = {
  timeoutMs: shape.number().int().min(1).max(60_000).describe('an integer number of milliseconds from 1 to 60000').optional(),
  maxResponseSize: shape.number().int().min(1).describe('a positive integer number of bytes').optional(),
  dispatcher: shape
    .custom<Dispatcher>(
      (value) => typeof (value as { dispatch?: unknown } | null)?.dispatch === 'function',
      'an undici Dispatcher (Agent, Pool, MockAgent)',
    )
    .optional(),
  connections: shape.number().int().min(1).max(4096).describe('an integer from 1 to 4096').optional(),
}
