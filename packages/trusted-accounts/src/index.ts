import { boundedText, checkOptions, type DecisionBackend, httpVendor, noClientIp, shape, vendorOptions } from '@sallyport/core'
import type { Dispatcher } from 'undici'

export interface TrustedAccountsOptions {
  /**
   * Secret key, sent as a Bearer token. Never logged. Typed to take `process.env.…` as it is:
   * unset or empty, `trustedAccounts()` throws `SP_INVALID_OPTION` naming `TRUSTED_ACCOUNTS_SECRET_KEY`.
   */
  secretKey: string | undefined
  /**
   * Publishable key, passed to the hosted challenge and block pages. Unset or empty,
   * `trustedAccounts()` throws `SP_INVALID_OPTION` naming `TRUSTED_ACCOUNTS_PUBLISHABLE_KEY`.
   */
  publishableKey: string | undefined
  /** API origin. Defaults to `https://api.trustedaccounts.org`. */
  baseUrl?: string
  /** Hosted challenge page. Defaults to `https://challenge.trustedaccounts.org/challenge.html`. */
  challengeUrl?: string
  /** Hosted block page. Defaults to `https://blocked.trustedaccounts.org/blocked.html`. */
  blockedUrl?: string
  /** Recommended budget in ms, used when the gate sets none. Defaults to 400. */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher to use instead of Sallyport's own keep-alive pool. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections to Trusted Accounts. A decision that finds them all busy waits inside
   * its budget; one still waiting at the deadline falls back with reason `pool_saturated`,
   * which never opens the circuit breaker. Defaults to 128.
   */
  connections?: number
}

export const TRUSTED_ID_COOKIE = 'trusted_id'
const DEFAULT_BASE_URL = 'https://api.trustedaccounts.org'
const DEFAULT_CHALLENGE_URL = 'https://challenge.trustedaccounts.org/challenge.html'
const DEFAULT_BLOCKED_URL = 'https://blocked.trustedaccounts.org/blocked.html'
/** A visitor id is short and URL-safe; anything else in the cookie is not forwarded. */
const TRUSTED_ID = /^[A-Za-z0-9._~-]{1,256}$/
const REQUEST_ID = /^[\x21-\x7e]{1,256}$/
const visitorId = (value: unknown): string | undefined => boundedText(value, 256, TRUSTED_ID)

// Only `decision` is a documented field; the others are read when they look right and
// ignored otherwise, so an unexpected shape never turns a block into a fail-open allow.
const replyShape = shape.looseObject({ decision: shape.enum(['allow', 'challenge', 'block']) })

const httpUrl = shape.url({ protocol: /^https?$/ })
const optionsShape = shape.strictObject({
  secretKey: shape.string().min(1).describe('the secret key as a non-empty string'),
  publishableKey: shape.string().min(1).describe('the publishable key as a non-empty string'),
  baseUrl: httpUrl.describe('an http(s) URL such as "https://api.trustedaccounts.org"').optional(),
  challengeUrl: httpUrl.describe('an http(s) URL').optional(),
  blockedUrl: httpUrl.describe('an http(s) URL').optional(),
  ...vendorOptions,
})

/** The trusted_id a reply's Set-Cookie carries, if any. */
function trustedIdFromCookies(setCookies: readonly string[]): string | undefined {
  for (const cookie of setCookies) {
    if (!cookie.startsWith(`${TRUSTED_ID_COOKIE}=`)) continue
    const end = cookie.indexOf(';')
    const value = visitorId(cookie.slice(TRUSTED_ID_COOKIE.length + 1, end < 0 ? undefined : end))
    if (value !== undefined) return value
  }
  return undefined
}

/**
 * Trusted Accounts bot protection (`POST /api/v1/check-request`) as a decision backend.
 * `block` becomes `deny`; challenge and block send HTML navigations to the hosted pages
 * with `trusted_id`, `publishable_key` and `redirect_url`; the `trusted_id` cookie the
 * API sets reaches the visitor.
 */
export function trustedAccounts(options: TrustedAccountsOptions): DecisionBackend {
  // An unset or empty key throws naming the environment variable the README reads it from.
  const {
    secretKey,
    publishableKey,
    baseUrl = DEFAULT_BASE_URL,
    challengeUrl = DEFAULT_CHALLENGE_URL,
    blockedUrl = DEFAULT_BLOCKED_URL,
    timeoutMs = 400,
    connections,
    maxResponseSize,
    dispatcher,
  } = checkOptions('trustedAccounts', optionsShape, options, {
    env: { secretKey: 'TRUSTED_ACCOUNTS_SECRET_KEY', publishableKey: 'TRUSTED_ACCOUNTS_PUBLISHABLE_KEY' },
    expected: 'an object { secretKey, publishableKey, … }',
  })
  const headers = { authorization: `Bearer ${secretKey}` }

  return httpVendor({
    name: 'trusted-accounts',
    label: 'Trusted Accounts',
    expected: 'decision',
    endpoint: new URL('/api/v1/check-request', baseUrl),
    transport: {
      ...(connections === undefined ? {} : { connections }),
      ...(maxResponseSize === undefined ? {} : { maxResponseSize }),
      ...(dispatcher === undefined ? {} : { dispatcher }),
    },
    timeoutMs,
    cookies: [TRUSTED_ID_COOKIE],
    // The API takes the request only: a checkpoint's email or phone has nowhere to go.
    checkpoints: false,
    pages: {
      challenge: challengeUrl,
      deny: blockedUrl,
      query(decision, input) {
        const trustedId =
          trustedIdFromCookies(decision.setCookies) ?? visitorId(decision.signals.trustedId) ?? visitorId(input.cookie(TRUSTED_ID_COOKIE))
        return { trusted_id: trustedId ?? '', publishable_key: publishableKey }
      },
    },
    // The gate passes on only `trusted_id`, checked, and drops the rest.
    forwardSetCookie: true,
    request(input) {
      // The API needs the real client IP; without one the decision follows the failure policy.
      if (input.ip === null) throw noClientIp('Trusted Accounts')
      const trustedId = visitorId(input.cookie(TRUSTED_ID_COOKIE))
      return {
        headers,
        json: {
          ip: input.ip,
          requestedPath: input.path,
          headers: input.headers,
          cookies: input.cookieNames,
          ...(trustedId === undefined ? {} : { trustedId }),
        },
      }
    },
    verdict(json, reply, input) {
      const { decision, requestId, trustedId } = replyShape.parse(json)
      const visitor = visitorId(trustedId) ?? trustedIdFromCookies(reply.setCookies) ?? visitorId(input.cookie(TRUSTED_ID_COOKIE))
      return {
        verdict: decision === 'block' ? 'deny' : decision,
        reason: decision === 'allow' ? null : `trusted-accounts:${decision}`,
        requestId: boundedText(requestId, 256, REQUEST_ID) ?? null,
        signals: visitor === undefined ? {} : { trustedId: visitor },
      }
    },
  })
}
