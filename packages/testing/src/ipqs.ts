import { isIP } from 'node:net'
import { type FakeServer, type RecordedRequest, type ScriptedReplyLike, startFakeServer } from './server.js'

/** Messages the service sends with `success: false`, for scripting failures. */
export const IPQS_MESSAGES = Object.freeze({
  invalidKey: 'Invalid or unauthorized key. Please check the API key and try again.',
  insufficientCredits: 'You have insufficient credits to make this request. Please purchase additional credits or upgrade your plan.',
  temporary: 'We are experiencing a temporary issue processing this request. Please try again shortly.',
  invalidIp: 'Invalid IPv4 or IPv6 address. Please check the IP address and try again.',
  invalidStrictness: 'Invalid strictness. Please use an integer from 0 to 3.',
  invalidTransactionStrictness: 'Invalid transaction_strictness. Please use an integer from 0 to 2.',
  invalidBoolean: 'Invalid value for a boolean parameter. Please use true or false.',
  invalidString: 'Invalid value for user_agent or user_language. Please send a string.',
})

export interface IpqsReply extends ScriptedReplyLike {
  /** `fraud_score` to return, 0 to 100. Defaults to 0. */
  fraudScore?: number
  /**
   * Reply fields to set or override: `tor`, `bot_status`, `recent_abuse`, `ISP`, `request_id`, …
   * As the service does, `vpn`, `tor`, `active_vpn` or `active_tor` set to true also set `proxy`
   * unless it is given.
   */
  fields?: Record<string, unknown>
  /** Answer HTTP 200 with `success: false` and this message, e.g. `IPQS_MESSAGES.insufficientCredits`. */
  failure?: string
}

/** The lookup parameters a call carried (JSON or form body). Transaction variables sit beside them. */
export interface IpqsParams {
  ip?: unknown
  strictness?: unknown
  user_agent?: unknown
  user_language?: unknown
  fast?: unknown
  mobile?: unknown
  allow_public_access_points?: unknown
  lighter_penalties?: unknown
  transaction_strictness?: unknown
  [field: string]: unknown
}

export interface FakeIpqsOptions {
  /** The API key the fake accepts in the `IPQS-KEY` header. Defaults to `'ipqs_test_key'`. */
  key?: string
  /** Builds the reply for a valid call when none is scripted, e.g. from `params.ip`. */
  decide?(params: IpqsParams): IpqsReply
}

export interface FakeIpqs extends FakeServer<IpqsReply> {
  readonly key: string
  /** Parameters of every call to `/api/json/ip`, oldest first, valid or not. */
  checks(): IpqsParams[]
}

const PATH = '/api/json/ip'
const BOOLEANS = ['fast', 'mobile', 'allow_public_access_points', 'lighter_penalties']
const PROXY_KINDS = ['vpn', 'tor', 'active_vpn', 'active_tor']

/** The service takes a JSON or a form body. */
function paramsOf(request: RecordedRequest): IpqsParams {
  const type = String(request.headers['content-type'] ?? '')
  if (type.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(request.rawBody))
  const { body } = request
  return typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as IpqsParams) : {}
}

function integerIn(value: unknown, max: number): boolean {
  const number = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  return typeof number === 'number' && Number.isInteger(number) && number >= 0 && number <= max
}

const isBoolean = (value: unknown) => typeof value === 'boolean' || value === 'true' || value === 'false' || value === 0 || value === 1

/** What the service would refuse, as its message; `null` when the parameters are fine. */
function parameterProblem(params: IpqsParams): string | null {
  if (typeof params.ip !== 'string' || isIP(params.ip) === 0) return IPQS_MESSAGES.invalidIp
  if (params.strictness !== undefined && !integerIn(params.strictness, 3)) return IPQS_MESSAGES.invalidStrictness
  if (params.transaction_strictness !== undefined && !integerIn(params.transaction_strictness, 2)) {
    return IPQS_MESSAGES.invalidTransactionStrictness
  }
  if (BOOLEANS.some((name) => params[name] !== undefined && !isBoolean(params[name]))) return IPQS_MESSAGES.invalidBoolean
  if ([params.user_agent, params.user_language].some((value) => value !== undefined && typeof value !== 'string')) {
    return IPQS_MESSAGES.invalidString
  }
  return null
}

/** Only the query can carry it: the route is matched on its exact path. */
function keyInUrl(path: string, key: string): boolean {
  const mark = path.indexOf('?')
  if (mark < 0) return false
  const query = path.slice(mark + 1)
  if (query.includes(key) || new URLSearchParams(query).has('key')) return true
  try {
    return decodeURIComponent(query).includes(key)
  } catch {
    return false
  }
}

/** A full lookup for a clean residential IP, the shape the service answers with. */
function lookup(params: IpqsParams, requestId: string): Record<string, unknown> {
  const userAgent = typeof params.user_agent === 'string' ? params.user_agent : ''
  return {
    success: true,
    message: 'Success',
    fraud_score: 0,
    country_code: 'US',
    region: 'California',
    city: 'Los Angeles',
    ISP: 'Example Broadband',
    organization: 'Example Broadband',
    ASN: 64500,
    host: 'customer.example.net',
    timezone: 'America/Los_Angeles',
    latitude: 34.05,
    longitude: -118.24,
    zip_code: 'N/A',
    is_crawler: false,
    mobile: params.mobile === true || params.mobile === 'true' || /Mobile|Android|iPhone/.test(userAgent),
    proxy: false,
    vpn: false,
    tor: false,
    active_vpn: false,
    active_tor: false,
    recent_abuse: false,
    bot_status: false,
    connection_type: 'Residential',
    abuse_velocity: 'none',
    request_id: requestId,
  }
}

/**
 * A real IPQualityScore IP reputation server (`POST /api/json/ip`) on 127.0.0.1. Like the
 * service it answers a wrong key or bad parameters with HTTP 200 and `success: false`; unlike
 * it, it refuses outright (HTTP 400) a key sent in the URL, since Sallyport must send it only
 * in the `IPQS-KEY` header. The `/api/json/ip/{key}/{ip}` path form is not served (404).
 * Scores, flags, `success: false` messages, latency and faults are scriptable.
 */
export async function fakeIpqs(options: FakeIpqsOptions = {}): Promise<FakeIpqs> {
  const key = options.key ?? 'ipqs_test_key'
  let served = 0
  const nextRequestId = () => `fake${String(++served).padStart(6, '0')}`
  const failure = (message: string) => ({ status: 200, body: { success: false, message, request_id: nextRequestId() } })

  const server = await startFakeServer<IpqsReply, Record<string, unknown>>({
    method: 'POST',
    path: PATH,
    validate(request) {
      if (keyInUrl(request.path, key)) {
        return { status: 400, body: { success: false, message: 'The API key was sent in the URL; send it in the IPQS-KEY header.' } }
      }
      if (request.headers['ipqs-key'] !== key) return failure(IPQS_MESSAGES.invalidKey)
      const problem = parameterProblem(paramsOf(request))
      return problem === null ? null : failure(problem)
    },
    respond(request, scripted) {
      const params = paramsOf(request)
      const reply = scripted ?? options.decide?.(params) ?? {}
      const requestId = nextRequestId()
      if (reply.failure !== undefined) return { ...reply, body: { success: false, message: reply.failure, request_id: requestId } }
      const fields = reply.fields ?? {}
      const body: Record<string, unknown> = { ...lookup(params, requestId), fraud_score: reply.fraudScore ?? 0, ...fields }
      if (fields.proxy === undefined && PROXY_KINDS.some((kind) => fields[kind] === true)) body.proxy = true
      return { ...reply, body }
    },
  })
  return Object.assign(server, {
    key,
    checks: () => server.requests.filter((request) => request.path.split('?')[0] === PATH).map(paramsOf),
  })
}
