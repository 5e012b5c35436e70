import { randomUUID } from 'node:crypto'
import { type FakeServer, type Fault, type RecordedRequest, type ScriptedReplyLike, startFakeServer } from './server.js'

export type TracerDecision = 'ALLOW' | 'DENY' | 'REVIEW'

export interface TracerLimitUsage {
  limitId: string
  limitAmount: string
  currentUsage: string
  attemptedAmount: string
  exceeded: boolean
  scope: string
  period: string
  skipped?: boolean
  skipReason?: string
}

export interface TracerReply extends ScriptedReplyLike {
  /** Defaults to `'ALLOW'`. */
  decision?: TracerDecision
  /** Defaults to a sentence naming the decision. */
  reason?: string
  matchedRuleIds?: string[]
  evaluatedRuleIds?: string[]
  limitUsageDetails?: TracerLimitUsage[]
  /** Defaults to 1.5. */
  processingTimeMs?: number
  /** Fields merged over the reply body, e.g. to break it on purpose. */
  extra?: Record<string, unknown>
  /**
   * Records the validation, as Tracer would, then drops the connection before answering: the
   * client's retry with the same requestId gets the first result with 200.
   */
  lostReply?: boolean
}

export interface FakeTracerOptions {
  /** The API key the fake accepts in `X-API-Key`. Defaults to `'trc_test_key'`. */
  apiKey?: string
  /** How the fake expects amounts, as the deployment is configured. Defaults to `'decimal-string'`. */
  amountFormat?: 'decimal-string' | 'minor-units'
  /** Decides per request when no reply is scripted, e.g. by `body.amount`. */
  decide?(body: ValidationRequestBody): TracerReply
}

interface Context {
  [key: string]: unknown
  metadata?: Record<string, unknown>
}

export interface ValidationRequestBody {
  requestId: string
  transactionType: 'CARD' | 'WIRE' | 'PIX' | 'CRYPTO'
  subType?: string
  amount: string | number
  currency: string
  transactionTimestamp: string
  account: Context & { accountId: string; type: string; status: string }
  segment?: Context & { segmentId: string; name?: string }
  portfolio?: Context & { portfolioId: string; name?: string }
  merchant?: Context & { merchantId: string; name: string; category: string; country: string }
  metadata?: Record<string, unknown>
}

export interface FakeTracer extends FakeServer<TracerReply> {
  readonly apiKey: string
  /** Bodies of the validation calls received (authorized or not), oldest first. */
  checks(): ValidationRequestBody[]
}

/** A Tracer error body `{ code, title, message }` as a fault, e.g. `tracerError(503, 'TRC-0500', 'Unavailable', 'try again')`. */
export function tracerError(status: number, code: string, title: string, message: string): Fault {
  return { status, body: JSON.stringify({ code, title, message }) }
}

/** An RFC 9457 problem-JSON body as a fault. */
export function tracerProblem(status: number, problem: { title: string; detail?: string; type?: string; code?: string }): Fault {
  return { status, body: JSON.stringify({ type: 'about:blank', status, ...problem }) }
}

const PATH = '/v1/validations'
const MAX_BODY_BYTES = 100 * 1024
const TYPES = ['CARD', 'WIRE', 'PIX', 'CRYPTO']
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const RFC3339 = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/
const METADATA_KEY = /^[A-Za-z0-9_]{1,64}$/
const TOP_LEVEL = [
  'requestId',
  'transactionType',
  'subType',
  'amount',
  'currency',
  'transactionTimestamp',
  'account',
  'segment',
  'portfolio',
  'merchant',
  'metadata',
]

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isText = (value: unknown): value is string => typeof value === 'string' && value.length > 0

function metadataError(value: unknown, field: string): string | null {
  if (!isObject(value)) return `${field} must be an object`
  const keys = Object.keys(value)
  if (keys.length > 50) return `${field} has more than 50 entries`
  const bad = keys.find((key) => !METADATA_KEY.test(key))
  return bad === undefined ? null : `${field} key is not alphanumeric with underscores (max 64): ${bad.slice(0, 80)}`
}

/** `additionalProperties: false`, required fields, UUID ids and metadata limits, as the API schema has them. */
function contextError(value: unknown, field: string, required: Record<string, 'uuid' | 'text'>, optional: string[]): string | null {
  if (!isObject(value)) return `${field} must be an object`
  for (const key of Object.keys(value)) {
    if (!(key in required) && !optional.includes(key) && key !== 'metadata') return `${field}.${key} is not allowed`
  }
  for (const [key, kind] of Object.entries(required)) {
    const item = value[key]
    if (kind === 'uuid' ? typeof item !== 'string' || !UUID.test(item) : !isText(item)) return `${field}.${key} is required (${kind})`
  }
  for (const key of optional) if (value[key] !== undefined && typeof value[key] !== 'string') return `${field}.${key} must be a string`
  return value.metadata === undefined ? null : metadataError(value.metadata, `${field}.metadata`)
}

function amountError(amount: unknown, format: 'decimal-string' | 'minor-units'): string | null {
  if (format === 'minor-units') {
    return typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0
      ? null
      : 'amount must be a positive integer of minor units'
  }
  return typeof amount === 'string' && /^\d+(\.\d+)?$/.test(amount) && /[1-9]/.test(amount)
    ? null
    : 'amount must be a positive decimal string such as "100.00"'
}

function timestampError(value: unknown): string | null {
  if (typeof value !== 'string' || !RFC3339.test(value) || Number.isNaN(Date.parse(value))) {
    return 'transactionTimestamp must be RFC3339 with a timezone'
  }
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number]
  return new Date(Date.UTC(year, month, 0)).getUTCDate() < day ? 'transactionTimestamp is not a calendar date' : null
}

function shapeError(body: unknown, format: 'decimal-string' | 'minor-units'): string | null {
  if (!isObject(body)) return 'body must be a JSON object'
  for (const key of Object.keys(body)) if (!TOP_LEVEL.includes(key)) return `${key} is not allowed`
  if (typeof body.requestId !== 'string' || !UUID.test(body.requestId)) return 'requestId is required (uuid)'
  if (!TYPES.includes(body.transactionType as string)) return `transactionType must be one of ${TYPES.join(', ')}`
  if (body.subType !== undefined && (!isText(body.subType) || body.subType.length > 50)) return 'subType must be a string of at most 50'
  const amount = amountError(body.amount, format)
  if (amount !== null) return amount
  if (typeof body.currency !== 'string' || !/^[A-Z]{3}$/.test(body.currency)) return 'currency must be an uppercase ISO 4217 code'
  const timestamp = timestampError(body.transactionTimestamp)
  if (timestamp !== null) return timestamp
  if (body.account === undefined) return 'account is required'
  const checks: Array<string | null> = [
    contextError(body.account, 'account', { accountId: 'uuid', type: 'text', status: 'text' }, []),
    body.segment === undefined ? null : contextError(body.segment, 'segment', { segmentId: 'uuid' }, ['name']),
    body.portfolio === undefined ? null : contextError(body.portfolio, 'portfolio', { portfolioId: 'uuid' }, ['name']),
    body.merchant === undefined
      ? null
      : contextError(body.merchant, 'merchant', { merchantId: 'uuid', name: 'text', category: 'text', country: 'text' }, []),
    body.metadata === undefined ? null : metadataError(body.metadata, 'metadata'),
  ]
  const problem = checks.find((check) => check !== null)
  if (problem !== undefined) return problem
  if (isObject(body.merchant)) {
    if (!/^\d{4}$/.test(String(body.merchant.category))) return 'merchant.category must be a 4-digit MCC'
    if (!/^[A-Z]{2}$/.test(String(body.merchant.country))) return 'merchant.country must be an ISO 3166-1 alpha-2 code'
  }
  return null
}

function trc(status: number, code: string, title: string, message: string): { status: number; body: unknown } {
  return { status, body: { code, title, message } }
}

/**
 * A real Tracer `POST /v1/validations` server on 127.0.0.1. It checks `X-API-Key` and the
 * request exactly as the API schema has it (answering Tracer's own error bodies, 413 over
 * 100 KB), keeps validations idempotent by `requestId` (a repeat gets the first result with
 * 200 instead of 201), and takes scripted decisions, matched rules, limit usage, latency and faults.
 */
export async function fakeTracer(options: FakeTracerOptions = {}): Promise<FakeTracer> {
  const apiKey = options.apiKey ?? 'trc_test_key'
  const format = options.amountFormat ?? 'decimal-string'
  const validations = new Map<string, Record<string, unknown>>()

  const server = await startFakeServer<TracerReply, Record<string, unknown>>({
    method: 'POST',
    path: PATH,
    validate(request: RecordedRequest) {
      if (request.headers['x-api-key'] !== apiKey) return trc(401, 'TRC-0001', 'Unauthorized', 'Missing or invalid API key.')
      if (Buffer.byteLength(request.rawBody) > MAX_BODY_BYTES) {
        return trc(413, 'TRC-0003', 'Payload Too Large', 'The request body exceeds the 100 KB limit.')
      }
      if (!String(request.headers['content-type'] ?? '').startsWith('application/json')) {
        return trc(415, 'TRC-0004', 'Unsupported Media Type', 'Content-Type must be application/json.')
      }
      const problem = shapeError(request.body, format)
      return problem === null ? null : trc(400, 'TRC-0002', 'Validation Error', problem)
    },
    respond(request, scripted) {
      const body = request.body as ValidationRequestBody
      const first = validations.get(body.requestId)
      if (first !== undefined && scripted?.fault === undefined) return { status: 200, body: first }
      const reply = scripted ?? options.decide?.(body) ?? {}
      const decision = reply.decision ?? 'ALLOW'
      const result: Record<string, unknown> = {
        validationId: randomUUID(),
        requestId: body.requestId,
        decision,
        reason:
          reply.reason ??
          (decision === 'ALLOW' ? 'All rules passed' : `Transaction ${decision === 'DENY' ? 'denied' : 'held for review'} by rule`),
        matchedRuleIds: reply.matchedRuleIds ?? [],
        evaluatedRuleIds: reply.evaluatedRuleIds ?? reply.matchedRuleIds ?? [],
        limitUsageDetails: reply.limitUsageDetails ?? [],
        processingTimeMs: reply.processingTimeMs ?? 1.5,
        evaluatedAt: new Date().toISOString(),
        totalRulesLoaded: (reply.evaluatedRuleIds ?? reply.matchedRuleIds ?? []).length,
        truncated: false,
        ...reply.extra,
      }
      // A fault means Tracer never produced a result, so a retry is a first attempt.
      if (reply.fault === undefined) validations.set(body.requestId, result)
      if (reply.lostReply === true) {
        validations.set(body.requestId, result)
        return { ...reply, fault: 'reset' }
      }
      return { ...reply, status: 201, body: result }
    },
  })
  const reset = server.reset.bind(server)
  return Object.assign(server, {
    apiKey,
    checks: () => server.requests.filter((request) => request.path === PATH).map((request) => request.body as ValidationRequestBody),
    reset() {
      validations.clear()
      reset()
    },
  })
}
