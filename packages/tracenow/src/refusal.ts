import { boundedText, type HttpReply, SallyportError, statusError } from '@sallyport/core'

/** Vendor words copied into an error: short, lowercase codes only, so no reply text reaches a log. */
const code = (value: unknown) => boundedText(value, 64, /^[a-z][a-z0-9_]*$/)

/** Names of the fields a validation error points at (`[{ loc: ['body', 'ip'], … }]` is `body.ip`), never their values. */
function fieldsOf(detail: unknown): string[] {
  if (!Array.isArray(detail)) return []
  const paths = detail.slice(0, 10).map((issue) => {
    const loc = (issue as { loc?: unknown } | null)?.loc
    return Array.isArray(loc) ? loc.filter((part) => typeof part === 'string' && /^[A-Za-z0-9_]{1,64}$/.test(part)).join('.') : ''
  })
  return [...new Set(paths.filter((path) => path !== ''))]
}

/**
 * A non-2xx reply as the failure it stands for. Refusals name their cause (the key, the quota,
 * the rate limit) so the one warning the gate logs says what to fix; none repeats the key.
 */
export function refusal(reply: HttpReply): SallyportError {
  const failure = statusError(reply, 'TraceNow')
  const { status } = reply
  if (status >= 500 || status < 400) return failure
  const { retryAfter } = failure
  const details = { status, ...(retryAfter === undefined ? {} : { retryAfter }) }
  const client = (message: string, vendorCode?: string) =>
    SallyportError.backend('client', message, vendorCode === undefined ? details : { ...details, vendorCode })
  // TraceNow's error body is `{ detail }`: a string, `{ error, reason }` or a list of validation issues; not JSON, none.
  let detail: unknown
  try {
    detail = (JSON.parse(reply.body) as { detail?: unknown } | null)?.detail
  } catch {}

  if (status === 401) {
    return client(
      'TraceNow did not accept the secret key (HTTP 401: missing, mistyped or revoked). Set `secretKey` to a current secret key from the TraceNow dashboard.',
      'invalid_key',
    )
  }
  if (status === 403) {
    // `{ detail: { error: 'quota_exceeded', reason: 'plan_quota_exhausted', … } }`, as TraceNow's quota refusal reads.
    const { error, reason } = (typeof detail === 'object' && detail !== null ? detail : {}) as { error?: unknown; reason?: unknown }
    if (error === 'quota_exceeded' || (typeof detail === 'string' && /quota/i.test(detail))) {
      const why = code(reason) === undefined ? '' : `, ${code(reason)}`
      return client(
        `TraceNow's quota for this account is used up (HTTP 403${why}); traces are refused until the plan is upgraded or the quota resets.`,
        'quota_exceeded',
      )
    }
    return client('TraceNow refused the request (HTTP 403): the secret key has no access to /trace, or the quota is used up.', code(error))
  }
  if (status === 429) {
    const after = retryAfter === undefined ? '' : ` Retry after ${retryAfter} s.`
    return client(`TraceNow's rate limit for this secret key was exceeded (HTTP 429).${after}`, 'rate_limited')
  }
  const fields = fieldsOf(detail)
  const where = fields.length === 0 ? '' : ` at ${fields.join(', ')}`
  return client(`TraceNow rejected the trace request as malformed (HTTP ${status}${where}).`)
}
