import {
  type BackendVerdict,
  boundedText,
  type HttpReply,
  type Infer,
  SallyportError,
  shape,
  statusError,
  type Verdict,
} from '@sallyport/core'

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

const text = shape.string()
const amount = shape.union([text, shape.number()])
const limitUsage = shape.looseObject({
  limitId: text,
  limitAmount: amount.optional(),
  currentUsage: amount.optional(),
  attemptedAmount: amount.optional(),
  exceeded: shape.boolean(),
  period: text.optional(),
  scope: text.optional(),
  skipped: shape.boolean().optional(),
  skipReason: text.optional(),
})
const ruleIds = shape.array(text).nullable().optional()

const validationReply = shape.looseObject({
  validationId: text.regex(SAFE_ID),
  requestId: text.optional(),
  decision: shape.enum(['ALLOW', 'DENY', 'REVIEW']),
  reason: text.nullable().optional(),
  matchedRuleIds: ruleIds,
  evaluatedRuleIds: ruleIds,
  limitUsageDetails: shape.array(limitUsage).nullable().optional(),
  processingTimeMs: shape.number().nonnegative().optional(),
  evaluatedAt: text.optional(),
  totalRulesLoaded: shape.number().int().optional(),
  truncated: shape.boolean().optional(),
})

/** Tracer's own `{ code, title, message }` and RFC 9457 problem JSON `{ type, title, status, detail }`, in one. */
const errorBody = shape.looseObject({
  code: text.optional(),
  title: text.optional(),
  message: text.optional(),
  detail: text.optional(),
})

/** Text copied from a reply: bounded (see `boundedText`), and the key never echoed. */
function bounded(text: string | undefined, max: number, secret: string): string | undefined {
  return text === undefined ? undefined : boundedText(text.split(secret).join('[redacted]'), max)
}

function ids(list: readonly string[] | null | undefined, max: number): string[] {
  return (list ?? []).filter((id) => SAFE_ID.test(id)).slice(0, max)
}

function amountSignal(value: string | number | undefined): string | number | undefined {
  return typeof value === 'string' ? value.slice(0, 64) : value
}

/** A limit's usage as a signal: amounts and flags as sent, texts bounded. */
function limitSignal(limit: Infer<typeof limitUsage>, secret: string): Record<string, unknown> {
  const signal: Record<string, unknown> = { limitId: limit.limitId.slice(0, 128), exceeded: limit.exceeded }
  for (const key of ['limitAmount', 'currentUsage', 'attemptedAmount'] as const) {
    if (limit[key] !== undefined) signal[key] = amountSignal(limit[key])
  }
  for (const [key, max] of [
    ['period', 32],
    ['scope', 160],
    ['skipReason', 64],
  ] as const) {
    const text = bounded(limit[key], max, secret)
    if (text !== undefined) signal[key] = text
  }
  if (limit.skipped !== undefined) signal.skipped = limit.skipped
  return signal
}

/** Tracer's error code and a bounded, key-free copy of its message, from its own error body or problem JSON. */
function vendorError(body: string, secret: string): { vendorCode?: string; said: string } {
  let json: unknown
  try {
    json = JSON.parse(body)
  } catch {
    json = undefined
  }
  const parsed = errorBody.safeParse(json)
  if (!parsed.success) return { said: '.' }
  const { code, title, message, detail } = parsed.data
  const vendorCode = boundedText(code, 25, VENDOR_CODE)
  const parts = [title, message ?? detail].filter((part): part is string => part !== undefined && part.trim().length > 0)
  const said = [vendorCode, bounded(parts.join(': '), MAX_VENDOR_TEXT, secret)].filter((part) => part !== undefined).join(' ')
  return { ...(vendorCode === undefined ? {} : { vendorCode }), said: said === '' ? '.' : `: ${said}.` }
}

function causeOf(status: number): string {
  if (status === 401) return 'Tracer rejected the API key (check the `apiKey` option) (HTTP 401)'
  if (status === 403) return 'Tracer refused the API key access to validations (check its permissions) (HTTP 403)'
  if (status === 413)
    return "Tracer refused the validation request as larger than its 100 KB limit (trim the transaction's metadata) (HTTP 413)"
  if (status === 429) return 'Tracer is rate-limiting Sallyport'
  if (status >= 500) return `Tracer failed with HTTP ${status}`
  if (status >= 400) return `Tracer refused the validation request with HTTP ${status}`
  return `Tracer answered with unexpected HTTP ${status}`
}

/** A reply of a status other than 200 or 201 as the failure class its status stands for, with Tracer's code and message. */
export function replyError(reply: HttpReply, secret: string): SallyportError {
  const { failure = 'invalid', retryAfter } = statusError(reply, 'Tracer')
  const { vendorCode, said } = vendorError(reply.body, secret)
  return SallyportError.backend(failure, `${causeOf(reply.status)}${said}`, {
    status: reply.status,
    ...(vendorCode === undefined ? {} : { vendorCode }),
    ...(retryAfter === undefined ? {} : { retryAfter }),
  })
}

/**
 * Turns a 200/201 body into a verdict. A body without a known decision — including an error
 * body sent with a success status — is an `invalid` failure, never a verdict.
 */
export function verdictFrom(json: unknown, reply: HttpReply, requestId: string, secret: string): BackendVerdict {
  const { status } = reply
  const parsed = validationReply.safeParse(json)
  if (!parsed.success) {
    const { vendorCode, said } = vendorError(reply.body, secret)
    throw SallyportError.backend('invalid', `Tracer answered HTTP ${status} without a valid decision${said}`, {
      status,
      cause: parsed.error,
      ...(vendorCode === undefined ? {} : { vendorCode }),
    })
  }
  const data = parsed.data
  // A reply for another request id is someone else's decision (a proxy mix-up): never enforce it.
  if (data.requestId !== undefined && data.requestId.toLowerCase() !== requestId) {
    throw SallyportError.backend('invalid', 'Tracer answered for a different requestId.', { status })
  }
  const verdict = VERDICTS[data.decision]
  const signals: Record<string, unknown> = {
    validationId: data.validationId,
    decision: data.decision,
    reason: bounded(data.reason ?? undefined, MAX_REASON, secret) ?? null,
    matchedRuleIds: ids(data.matchedRuleIds, MAX_MATCHED_RULES),
    evaluatedRuleIds: ids(data.evaluatedRuleIds, MAX_EVALUATED_RULES),
    limitUsageDetails: (data.limitUsageDetails ?? []).slice(0, MAX_LIMITS).map((limit) => limitSignal(limit, secret)),
    // A repeated requestId answers 200 with the first result: the decision was made once.
    replayed: status === 200,
  }
  if (data.processingTimeMs !== undefined) signals.processingTimeMs = data.processingTimeMs
  if (data.truncated !== undefined) signals.truncated = data.truncated
  return { verdict, reason: verdict === 'allow' ? null : `tracer:${verdict}`, requestId: data.validationId, signals }
}
