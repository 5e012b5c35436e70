import { type BackendVerdict, type HttpReply, parseJson, SallyportError } from '@sallyport/core'
import { z } from 'zod'

/** Longest policy name kept as the decision's reason; policy names are typed by people in a dashboard. */
const MAX_REASON_LENGTH = 128
/** Bounds on the enrichment objects copied into `signals`. */
const MAX_STRING_LENGTH = 256
const MAX_KEY_LENGTH = 64
const MAX_ENTRIES = 50
const MAX_ITEMS = 20
const MAX_DEPTH = 4
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])
const CONTROL_CHARACTERS = /\p{Cc}/gu

/** A field whose shape is wrong counts as absent: it must not turn a valid verdict into a failure. */
function lenient<T extends z.ZodType>(schema: T) {
  return schema.optional().catch(undefined)
}

const enrichment = lenient(z.record(z.string(), z.unknown()).nullable())

/** `POST /trace` 200 reply. Only `verdict` is load-bearing; the rest is read when well-formed. */
const traceReply = z.looseObject({
  verdict: z.enum(['allow', 'challenge', 'deny']),
  request_id: lenient(z.string().regex(/^[\x21-\x7e]{1,128}$/)),
  policy_triggered: lenient(z.string().nullable()),
  signals_complete: lenient(z.boolean()),
  privacy_mode: lenient(z.boolean()),
  ip: enrichment,
  email: enrichment,
  phone: enrichment,
  device: enrichment,
})

/** Copies untrusted JSON with bounded depth, breadth and string length. */
export function boundedJson(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean') return value
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value === 'string') return value.slice(0, MAX_STRING_LENGTH)
  if (depth >= MAX_DEPTH || typeof value !== 'object') return undefined
  if (Array.isArray(value)) {
    return value
      .slice(0, MAX_ITEMS)
      .map((item) => boundedJson(item, depth + 1))
      .filter((item) => item !== undefined)
  }
  const entries: Array<[string, unknown]> = []
  for (const [key, item] of Object.entries(value)) {
    if (entries.length >= MAX_ENTRIES) break
    if (key.length > MAX_KEY_LENGTH || UNSAFE_KEYS.has(key)) continue
    const copy = boundedJson(item, depth + 1)
    if (copy !== undefined) entries.push([key, copy])
  }
  return Object.fromEntries(entries)
}

function reasonOf(policy: string | null | undefined): string | null {
  if (typeof policy !== 'string') return null
  const text = policy.replace(CONTROL_CHARACTERS, ' ').trim().slice(0, MAX_REASON_LENGTH)
  return text === '' ? null : text
}

/** Turns a 2xx trace reply into a verdict; anything that is not a trace reply is an `invalid` failure. */
export function readTraceReply(reply: HttpReply): BackendVerdict {
  const json = parseJson(reply)
  // TraceNow's errors come as `{ detail }`; one under a 2xx status is still an error, never a verdict.
  if (typeof json === 'object' && json !== null && ('detail' in json || 'error' in json)) {
    throw SallyportError.backend('invalid', 'TraceNow answered with an error body under a success status.', { status: reply.status })
  }
  const parsed = traceReply.safeParse(json)
  if (!parsed.success) {
    throw SallyportError.backend('invalid', 'TraceNow replied without a valid verdict (allow, challenge or deny).', {
      status: reply.status,
      cause: parsed.error,
    })
  }
  const data = parsed.data
  const signals: Record<string, unknown> = {}
  if (data.privacy_mode !== undefined) signals.privacy_mode = data.privacy_mode
  for (const group of ['ip', 'email', 'phone', 'device'] as const) {
    const value = data[group]
    if (value !== undefined) signals[group] = boundedJson(value)
  }
  return {
    verdict: data.verdict,
    reason: reasonOf(data.policy_triggered),
    requestId: data.request_id ?? null,
    // TraceNow only flags partial enrichment; a reply that says nothing is taken as complete.
    complete: data.signals_complete !== false,
    signals,
  }
}
