import { type BackendVerdict, boundedText, SallyportError, shape } from '@sallyport/core'

/** `POST /trace` 200 reply. Only `verdict` is load-bearing; a malformed other field counts as absent. */
const traceReply = shape.looseObject({ verdict: shape.enum(['allow', 'challenge', 'deny']) })
/** TraceNow's request ids (`tr_…`): printable ASCII, taken whole or not at all. */
const REQUEST_ID = /^[\x21-\x7e]+$/
/** Bounds on the enrichment objects copied into `signals`. */
const MAX = { string: 256, key: 64, entries: 50, items: 20, depth: 4 }
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Copies untrusted JSON with bounded depth, breadth and string length. */
function boundedJson(value: unknown, depth = 0): unknown {
  if (value === null || typeof value === 'boolean') return value
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value === 'string') return value.slice(0, MAX.string)
  if (depth >= MAX.depth || typeof value !== 'object') return undefined
  if (Array.isArray(value)) {
    return value
      .slice(0, MAX.items)
      .map((item) => boundedJson(item, depth + 1))
      .filter((item) => item !== undefined)
  }
  const entries: Array<[string, unknown]> = []
  for (const [key, item] of Object.entries(value)) {
    if (entries.length >= MAX.entries) break
    if (key.length > MAX.key || UNSAFE_KEYS.has(key)) continue
    const copy = boundedJson(item, depth + 1)
    if (copy !== undefined) entries.push([key, copy])
  }
  return Object.fromEntries(entries)
}

/** The parsed JSON of a 2xx trace reply as a verdict; anything that is not a trace reply throws. */
export function readTraceReply(json: unknown, status: number): BackendVerdict {
  // TraceNow's errors come as `{ detail }`; one under a 2xx status is still an error, never a verdict.
  if (typeof json === 'object' && json !== null && ('detail' in json || 'error' in json)) {
    throw SallyportError.backend('invalid', 'TraceNow answered with an error body under a success status.', { status })
  }
  const reply = traceReply.parse(json)
  const signals: Record<string, unknown> = {}
  if (typeof reply.privacy_mode === 'boolean') signals.privacy_mode = reply.privacy_mode
  for (const group of ['ip', 'email', 'phone', 'device']) {
    const value = reply[group]
    if (value === null || (typeof value === 'object' && !Array.isArray(value))) signals[group] = boundedJson(value)
  }
  return {
    verdict: reply.verdict,
    // Policy names are typed by people in a dashboard.
    reason: boundedText(reply.policy_triggered, 128) ?? null,
    requestId: boundedText(reply.request_id, 128, REQUEST_ID) ?? null,
    // TraceNow only flags partial enrichment; a reply that says nothing is taken as complete.
    complete: reply.signals_complete !== false,
    signals,
  }
}
