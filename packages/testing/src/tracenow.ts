import { isIP } from 'node:net'
import { type FakeServer, type RecordedRequest, type ScriptedReply, type ScriptedReplyLike, startFakeServer } from './server.js'

export type TraceNowVerdict = 'allow' | 'challenge' | 'deny'

/** One scripted `/trace` answer. Unset fields get what TraceNow would send for the request. */
export interface TraceNowReply extends ScriptedReplyLike {
  /** Defaults to `'allow'`. */
  verdict?: TraceNowVerdict
  /** Name of the policy that fired. Defaults to `null`. */
  policyTriggered?: string | null
  /** `false` says some enrichment was not ready yet. Defaults to `true`. */
  signalsComplete?: boolean
  /** Defaults to `false`. */
  privacyMode?: boolean
  /** Defaults to a fresh `tr_…` id. */
  requestId?: string
  /** Enrichment objects. Each defaults to a small clean result when its signal was sent, else `null` (`device` is always an object). */
  ip?: Record<string, unknown> | null
  email?: Record<string, unknown> | null
  phone?: Record<string, unknown> | null
  device?: Record<string, unknown>
  /** Refuse as TraceNow does: `'quota'` is its 403 for a used-up plan, `'rate-limit'` its 429. */
  refuse?: 'quota' | 'rate-limit'
  /** Reply fields added last, overriding the rest: e.g. `{ verdict: 'block' }` to send a word TraceNow never uses. */
  extra?: Record<string, unknown>
}

/** A `/trace` request body, as the fake accepted it. */
export interface TraceNowBody {
  event: string
  status: 'attempted' | 'succeeded' | 'failed'
  ip?: string
  email?: string
  phone?: string
  device_token?: string
}

export interface FakeTraceNowOptions {
  /** The secret key the fake accepts. Defaults to `'tn_test_secret'`. */
  secretKey?: string
  /** Decides per request when no reply is scripted, e.g. by `body.email`. */
  decide?(body: TraceNowBody): TraceNowReply
}

export interface FakeTraceNow extends FakeServer<TraceNowReply> {
  readonly secretKey: string
  /** Bodies of the `/trace` calls received (refused ones included), oldest first. */
  checks(): TraceNowBody[]
}

/** TraceNow's error bodies are `{ detail }`; these two are from its rate-limit page. */
export const TRACENOW_QUOTA_BODY = Object.freeze({
  detail: { error: 'quota_exceeded', reason: 'plan_quota_exhausted', api: 'trace', subscribe_url: 'https://tracenow.io/app/subscribe' },
})
export const TRACENOW_RATE_LIMIT_BODY = Object.freeze({ detail: 'Rate limit exceeded' })

const STATUSES = ['attempted', 'succeeded', 'failed']
const STRING_FIELDS = ['event', 'status', 'ip', 'email', 'phone', 'device_token'] as const
const SIGNALS = ['ip', 'email', 'phone', 'device_token'] as const

/** A validation error in the `{ detail: [{ type, loc, msg }] }` form TraceNow's `{ detail }` errors take. */
function unprocessable(field: string | null, type: string, msg: string): { status: number; body: unknown } {
  return { status: 422, body: { detail: [{ type, loc: field === null ? ['body'] : ['body', field], msg }] } }
}

/**
 * The request checks TraceNow documents, plus a few stricter ones so a client's mistakes
 * show up in tests: unknown fields (say, `deviceToken` instead of `device_token`) and `null`
 * for an absent signal are refused.
 */
function shapeError(body: unknown): { status: number; body: unknown } | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return unprocessable(null, 'model_type', 'Input should be a JSON object')
  const trace = body as Record<string, unknown>
  for (const key of Object.keys(trace)) {
    if (!(STRING_FIELDS as readonly string[]).includes(key)) return unprocessable(key, 'extra_forbidden', 'Extra inputs are not permitted')
  }
  for (const field of STRING_FIELDS) {
    const value = trace[field]
    if (value === undefined) continue
    if (typeof value !== 'string') return unprocessable(field, 'string_type', 'Input should be a valid string')
    if (value.trim() === '') return unprocessable(field, 'string_too_short', 'String should have at least 1 character')
  }
  if (trace.event === undefined) return unprocessable('event', 'missing', 'Field required')
  if (trace.status === undefined) return unprocessable('status', 'missing', 'Field required')
  if (!STATUSES.includes(trace.status as string))
    return unprocessable('status', 'enum', "Input should be 'attempted', 'succeeded' or 'failed'")
  if (typeof trace.ip === 'string' && isIP(trace.ip) === 0)
    return unprocessable('ip', 'ip_any_address', 'Input is not a valid IPv4 or IPv6 address')
  if (typeof trace.device_token === 'string' && !trace.device_token.startsWith('dt_')) {
    return unprocessable('device_token', 'string_pattern_mismatch', "Device token should start with 'dt_'")
  }
  if (SIGNALS.every((field) => trace[field] === undefined)) {
    return unprocessable(null, 'value_error', 'At least one of ip, email, phone, or device_token must be provided')
  }
  return null
}

let sequence = 0
function requestId(): string {
  sequence++
  return `tr_FAKE${sequence.toString(36).toUpperCase().padStart(22, '0')}`
}

function replyBody(body: TraceNowBody, reply: TraceNowReply): Record<string, unknown> {
  const device: Record<string, unknown> = { is_headless: false, automation_detected: false, canvas_randomized: false }
  if (body.device_token !== undefined) device.visitor_id = 'vis_FAKE0000000000000000000001'
  return {
    request_id: reply.requestId ?? requestId(),
    verdict: reply.verdict ?? 'allow',
    policy_triggered: reply.policyTriggered ?? null,
    signals_complete: reply.signalsComplete ?? true,
    privacy_mode: reply.privacyMode ?? false,
    ip:
      reply.ip !== undefined
        ? reply.ip
        : body.ip === undefined
          ? null
          : { is_tor: false, is_anonymous: false, geo: { country: 'United States', country_code: 'US' } },
    email: reply.email !== undefined ? reply.email : body.email === undefined ? null : { is_disposable: false },
    phone: reply.phone !== undefined ? reply.phone : body.phone === undefined ? null : { is_voip: false },
    device: reply.device ?? device,
    ...reply.extra,
  }
}

/**
 * A real TraceNow `/trace` server on 127.0.0.1: it checks the Bearer key (401) and the body
 * (422 with the fields at fault) as the service does, and answers with scriptable verdicts,
 * partial signals, enrichment, Set-Cookies, latency, faults, and quota or rate-limit refusals.
 */
export async function fakeTraceNow(options: FakeTraceNowOptions = {}): Promise<FakeTraceNow> {
  const secretKey = options.secretKey ?? 'tn_test_secret'
  const server = await startFakeServer<TraceNowReply, Record<string, unknown>>({
    method: 'POST',
    path: '/trace',
    validate(request: RecordedRequest) {
      const authorization = request.headers.authorization
      if (authorization === undefined) return { status: 401, body: { detail: 'Missing API key' } }
      if (authorization !== `Bearer ${secretKey}`) return { status: 401, body: { detail: 'Invalid API key' } }
      if (!String(request.headers['content-type'] ?? '').startsWith('application/json')) {
        return unprocessable(null, 'model_attributes_type', 'Input should be a valid dictionary or object to extract fields from')
      }
      return shapeError(request.body)
    },
    respond(request, scripted): ScriptedReply<Record<string, unknown>> {
      const body = request.body as TraceNowBody
      const reply = scripted ?? options.decide?.(body) ?? {}
      if (reply.refuse === 'quota') return { ...reply, fault: { status: 403, body: JSON.stringify(TRACENOW_QUOTA_BODY) } }
      if (reply.refuse === 'rate-limit') return { ...reply, fault: { status: 429, body: JSON.stringify(TRACENOW_RATE_LIMIT_BODY) } }
      return { ...reply, body: replyBody(body, reply) }
    },
  })
  return Object.assign(server, {
    secretKey,
    checks: () => server.requests.filter((request) => request.path === '/trace').map((request) => request.body as TraceNowBody),
  })
}
