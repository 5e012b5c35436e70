import { type HttpReply, SallyportError, type SallyportErrorDetails, statusError } from '@sallyport/core'

/** Vendor words copied into an error: short, lowercase codes only, so no reply text reaches a log. */
const CODE = /^[a-z][a-z0-9_]{0,63}$/
/** Field paths from a validation error, e.g. `body.device_token`. */
const FIELD = /^[A-Za-z0-9_]{1,64}$/

function detailOf(reply: HttpReply): unknown {
  try {
    const json: unknown = JSON.parse(reply.body)
    return typeof json === 'object' && json !== null ? (json as { detail?: unknown }).detail : undefined
  } catch {
    return undefined
  }
}

function code(value: unknown): string | undefined {
  return typeof value === 'string' && CODE.test(value) ? value : undefined
}

/** `{ detail: { error: 'quota_exceeded', reason: 'plan_quota_exhausted', … } }`, as TraceNow's quota refusal reads. */
function quotaOf(detail: unknown): { error: string; reason: string | undefined } | undefined {
  if (typeof detail === 'object' && detail !== null) {
    const { error, reason } = detail as { error?: unknown; reason?: unknown }
    if (error === 'quota_exceeded') return { error, reason: code(reason) }
  }
  if (typeof detail === 'string' && /quota/i.test(detail)) return { error: 'quota_exceeded', reason: undefined }
  return undefined
}

/** Names of the fields a validation error points at (`[{ loc: ['body', 'ip'], … }]`), never their values. */
function fieldsOf(detail: unknown): string[] {
  if (!Array.isArray(detail)) return []
  const fields = new Set<string>()
  for (const issue of detail.slice(0, 10)) {
    const loc = (issue as { loc?: unknown } | null)?.loc
    if (!Array.isArray(loc)) continue
    const path = loc.filter((part): part is string => typeof part === 'string' && FIELD.test(part))
    if (path.length > 0) fields.add(path.join('.'))
  }
  return [...fields]
}

function client(message: string, details: SallyportErrorDetails): SallyportError {
  return SallyportError.backend('client', message, details)
}

/**
 * A non-2xx reply as the failure it stands for. Refusals name their cause (the key, the quota,
 * the rate limit) so the one warning the gate logs says what to fix; none repeats the key.
 */
export function refusal(reply: HttpReply): SallyportError {
  const { status } = reply
  if (status >= 500 || status < 400) return statusError(reply, 'TraceNow')
  const retryAfter = statusError(reply, 'TraceNow').retryAfter
  const details: SallyportErrorDetails = { status, ...(retryAfter === undefined ? {} : { retryAfter }) }
  const detail = detailOf(reply)

  if (status === 401) {
    return client(
      'TraceNow did not accept the secret key (HTTP 401: missing, mistyped or revoked). Set `secretKey` to a current secret key from the TraceNow dashboard.',
      { ...details, vendorCode: 'invalid_key' },
    )
  }
  if (status === 403) {
    const quota = quotaOf(detail)
    if (quota !== undefined) {
      const why = quota.reason === undefined ? '' : `, ${quota.reason}`
      return client(
        `TraceNow's quota for this account is used up (HTTP 403${why}); traces are refused until the plan is upgraded or the quota resets.`,
        {
          ...details,
          vendorCode: quota.error,
        },
      )
    }
    const vendorCode = typeof detail === 'object' && detail !== null ? code((detail as { error?: unknown }).error) : undefined
    return client('TraceNow refused the request (HTTP 403): the secret key has no access to /trace, or the quota is used up.', {
      ...details,
      ...(vendorCode === undefined ? {} : { vendorCode }),
    })
  }
  if (status === 429) {
    const after = retryAfter === undefined ? '' : ` Retry after ${retryAfter} s.`
    return client(`TraceNow's rate limit for this secret key was exceeded (HTTP 429).${after}`, { ...details, vendorCode: 'rate_limited' })
  }
  const fields = fieldsOf(detail)
  const where = fields.length === 0 ? '' : ` at ${fields.join(', ')}`
  return client(`TraceNow rejected the trace request as malformed (HTTP ${status}${where}).`, details)
}
