import { type BackendVerdict, type HttpReply, SallyportError, statusError, type Verdict } from '@sallyport/core'
import { z } from 'zod'

const VERDICTS: Record<'ALLOW' | 'DENY' | 'REVIEW', Verdict> = { ALLOW: 'allow', DENY: 'deny', REVIEW: 'review' }
/** Ids go into audit logs and 403 pages: UUIDs pass, markup and control characters do not. */
const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** `<SERVICE>-NNNN`, e.g. `TRC-0102`. */
const VENDOR_CODE = /^[A-Z][A-Z0-9]{0,15}-[0-9]{1,8}$/
const MAX_REASON = 256
const MAX_VENDOR_TEXT = 200
const MAX_MATCHED_RULES = 50
const MAX_EVALUATED_RULES = 100
const MAX_LIMITS = 20

const amount = z.union([z.string(), z.number()])
const limitUsage = z.looseObject({
  limitId: z.string(),
  limitAmount: amount.optional(),
  currentUsage: amount.optional(),
  attemptedAmount: amount.optional(),
  exceeded: z.boolean(),
  period: z.string().optional(),
  scope: z.string().optional(),
  skipped: z.boolean().optional(),
  skipReason: z.string().optional(),
})

const validationReply = z.looseObject({
  validationId: z.string().regex(SAFE_ID),
  requestId: z.string().optional(),
  decision: z.enum(['ALLOW', 'DENY', 'REVIEW']),
  reason: z.string().nullable().optional(),
  matchedRuleIds: z.array(z.string()).nullable().optional(),
  evaluatedRuleIds: z.array(z.string()).nullable().optional(),
  limitUsageDetails: z.array(limitUsage).nullable().optional(),
  processingTimeMs: z.number().nonnegative().optional(),
  evaluatedAt: z.string().optional(),
  totalRulesLoaded: z.number().int().optional(),
  truncated: z.boolean().optional(),
})

/** Tracer's own `{ code, title, message }` and RFC 9457 problem JSON `{ type, title, status, detail }`, in one. */
const errorBody = z.looseObject({
  code: z.string().optional(),
  title: z.string().optional(),
  message: z.string().optional(),
  detail: z.string().optional(),
})

/** Copies text from a reply: control characters out, the key never echoed, and cut short. */
function bounded(text: string, max: number, secret: string): string {
  const clean = text
    .split(secret)
    .join('[redacted]')
    .replace(/[\p{Cc}\p{Cf}]+/gu, ' ')
    .trim()
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean
}

function ids(list: readonly string[] | null | undefined, max: number): string[] {
  return (list ?? []).filter((id) => SAFE_ID.test(id)).slice(0, max)
}

function amountSignal(value: string | number | undefined): string | number | undefined {
  return typeof value === 'string' ? value.slice(0, 64) : value
}

interface VendorError {
  code: string | undefined
  /** `title: message`, bounded. */
  text: string | undefined
}

function vendorError(body: string, secret: string): VendorError {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    return { code: undefined, text: undefined }
  }
  const parsed = errorBody.safeParse(json)
  if (!parsed.success) return { code: undefined, text: undefined }
  const { code, title, message, detail } = parsed.data
  const parts = [title, message ?? detail].filter((part): part is string => typeof part === 'string' && part.trim().length > 0)
  return {
    code: code !== undefined && VENDOR_CODE.test(code) ? code : undefined,
    text: parts.length === 0 ? undefined : bounded(parts.join(': '), MAX_VENDOR_TEXT, secret),
  }
}

function causeOf(status: number): string {
  if (status === 401) return 'Tracer rejected the API key (check the `apiKey` option)'
  if (status === 403) return 'Tracer refused the API key access to validations (check its permissions)'
  if (status === 413) return "Tracer refused the validation request as larger than its 100 KB limit (trim the transaction's metadata)"
  if (status === 429) return 'Tracer is rate-limiting Sallyport'
  if (status >= 500) return `Tracer failed with HTTP ${status}`
  if (status >= 400) return `Tracer refused the validation request with HTTP ${status}`
  return `Tracer answered with unexpected HTTP ${status}`
}

/**
 * A non-2xx reply as the failure class its status stands for, carrying Tracer's error code
 * (from its own error body or problem JSON) and a bounded, secret-free copy of its message.
 */
export function replyError(reply: HttpReply, secret: string): SallyportError {
  const base = statusError(reply, 'Tracer')
  const { code, text } = vendorError(reply.body, secret)
  const vendor = [code, text].filter((part) => part !== undefined).join(' ')
  const message = `${causeOf(reply.status)}${reply.status === 401 || reply.status === 403 || reply.status === 413 ? ` (HTTP ${reply.status})` : ''}${vendor === '' ? '.' : `: ${vendor}.`}`
  return SallyportError.backend(base.failure ?? 'invalid', message, {
    status: reply.status,
    ...(code === undefined ? {} : { vendorCode: code }),
    ...(base.retryAfter === undefined ? {} : { retryAfter: base.retryAfter }),
  })
}

/**
 * Turns a 200/201 body into a verdict. A body without a known decision — including an error
 * body sent with a success status — is an `invalid` failure, never a verdict.
 */
export function verdictFrom(json: unknown, reply: HttpReply, requestId: string, secret: string): BackendVerdict {
  const parsed = validationReply.safeParse(json)
  if (!parsed.success) {
    const { code, text } = vendorError(reply.body, secret)
    const vendor = [code, text].filter((part) => part !== undefined).join(' ')
    throw SallyportError.backend(
      'invalid',
      `Tracer answered HTTP ${reply.status} without a valid decision${vendor === '' ? '.' : `: ${vendor}.`}`,
      {
        status: reply.status,
        cause: parsed.error,
        ...(code === undefined ? {} : { vendorCode: code }),
      },
    )
  }
  const data = parsed.data
  // A reply for another request id is someone else's decision (a proxy mix-up): never enforce it.
  if (data.requestId !== undefined && data.requestId.toLowerCase() !== requestId) {
    throw SallyportError.backend('invalid', 'Tracer answered for a different requestId.', { status: reply.status })
  }
  const verdict = VERDICTS[data.decision]
  const signals: Record<string, unknown> = {
    validationId: data.validationId,
    decision: data.decision,
    reason: typeof data.reason === 'string' ? bounded(data.reason, MAX_REASON, secret) : null,
    matchedRuleIds: ids(data.matchedRuleIds, MAX_MATCHED_RULES),
    evaluatedRuleIds: ids(data.evaluatedRuleIds, MAX_EVALUATED_RULES),
    limitUsageDetails: (data.limitUsageDetails ?? []).slice(0, MAX_LIMITS).map((limit) => ({
      limitId: limit.limitId.slice(0, 128),
      exceeded: limit.exceeded,
      ...(limit.limitAmount === undefined ? {} : { limitAmount: amountSignal(limit.limitAmount) }),
      ...(limit.currentUsage === undefined ? {} : { currentUsage: amountSignal(limit.currentUsage) }),
      ...(limit.attemptedAmount === undefined ? {} : { attemptedAmount: amountSignal(limit.attemptedAmount) }),
      ...(limit.period === undefined ? {} : { period: bounded(limit.period, 32, secret) }),
      ...(limit.scope === undefined ? {} : { scope: bounded(limit.scope, 160, secret) }),
      ...(limit.skipped === undefined ? {} : { skipped: limit.skipped }),
      ...(limit.skipReason === undefined ? {} : { skipReason: bounded(limit.skipReason, 64, secret) }),
    })),
    // A repeated requestId answers 200 with the first result: the decision was made once.
    replayed: reply.status === 200,
  }
  if (data.processingTimeMs !== undefined) signals.processingTimeMs = data.processingTimeMs
  if (data.truncated !== undefined) signals.truncated = data.truncated
  return {
    verdict,
    reason: verdict === 'allow' ? null : `tracer:${verdict}`,
    requestId: data.validationId,
    signals,
  }
}
