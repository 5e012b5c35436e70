import {
  type BackendVerdict,
  type DecisionBackend,
  isUnsetKey,
  noClientIp,
  parseJson,
  SallyportError,
  statusError,
  Transport,
  unsetKey,
} from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { z } from 'zod'

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
}

export const TRUSTED_ID_COOKIE = 'trusted_id'
const DEFAULT_BASE_URL = 'https://api.trustedaccounts.org'
const DEFAULT_CHALLENGE_URL = 'https://challenge.trustedaccounts.org/challenge.html'
const DEFAULT_BLOCKED_URL = 'https://blocked.trustedaccounts.org/blocked.html'
/** A visitor id is short and URL-safe; anything else in the cookie is not forwarded. */
const TRUSTED_ID = /^[A-Za-z0-9._~-]{1,256}$/

// Only `decision` is a documented field; the others are read when they look right and
// ignored otherwise, so an unexpected shape never turns a block into a fail-open allow.
const reply = z.looseObject({
  decision: z.enum(['allow', 'challenge', 'block']),
  requestId: z.unknown().optional(),
  trustedId: z.unknown().optional(),
})

function optionalString(value: unknown, pattern: RegExp): string | undefined {
  return typeof value === 'string' && pattern.test(value) ? value : undefined
}
const REQUEST_ID = /^[\x21-\x7e]{1,256}$/

const optionsSchema = z.strictObject({
  secretKey: z.string().min(1),
  publishableKey: z.string().min(1),
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  challengeUrl: z.url({ protocol: /^https?$/ }).optional(),
  blockedUrl: z.url({ protocol: /^https?$/ }).optional(),
  timeoutMs: z.number().int().min(1).max(60_000).optional(),
  maxResponseSize: z.number().int().min(1).optional(),
  dispatcher: z.custom<Dispatcher>((value) => typeof value === 'object' && value !== null).optional(),
})

/** What each option accepts, for the error that names it. */
const ACCEPTED: Record<keyof TrustedAccountsOptions, string> = {
  secretKey: 'the secret key as a non-empty string',
  publishableKey: 'the publishable key as a non-empty string',
  baseUrl: 'an http(s) URL such as "https://api.trustedaccounts.org"',
  challengeUrl: 'an http(s) URL',
  blockedUrl: 'an http(s) URL',
  timeoutMs: 'an integer number of milliseconds from 1 to 60000',
  maxResponseSize: 'a positive integer number of bytes',
  dispatcher: 'an undici Dispatcher (Agent, Pool, MockAgent)',
}

/** Where the README reads each key from: an unset key is most often an unset variable. */
const KEY_VARIABLES: Partial<Record<keyof TrustedAccountsOptions, string>> = {
  secretKey: 'TRUSTED_ACCOUNTS_SECRET_KEY',
  publishableKey: 'TRUSTED_ACCOUNTS_PUBLISHABLE_KEY',
}

/** The error for options the schema refused: it names the option and what it takes, never a value. */
function optionError(options: Record<string, unknown>, error: z.ZodError): SallyportError {
  const issue = error.issues[0]
  if (issue?.code === 'unrecognized_keys') {
    const option = String(issue.keys[0]).slice(0, 64)
    return new SallyportError(
      'SP_INVALID_OPTION',
      `Unknown option \`${option}\` for trustedAccounts(): accepted options are ${Object.keys(ACCEPTED).join(', ')}.`,
      { option },
    )
  }
  const option = String(issue?.path[0] ?? 'options') as keyof TrustedAccountsOptions
  const variable = KEY_VARIABLES[option]
  if (variable !== undefined && isUnsetKey(options[option])) return unsetKey('trustedAccounts', option, variable, options[option])
  return new SallyportError(
    'SP_INVALID_OPTION',
    `Invalid option \`${option}\` for trustedAccounts(): expected ${ACCEPTED[option] ?? 'a valid value'}.`,
    { option },
  )
}

/** The trusted_id a reply's Set-Cookie carries, if any. */
function trustedIdFromCookies(setCookies: readonly string[]): string | undefined {
  for (const cookie of setCookies) {
    if (!cookie.startsWith(`${TRUSTED_ID_COOKIE}=`)) continue
    const end = cookie.indexOf(';')
    const value = cookie.slice(TRUSTED_ID_COOKIE.length + 1, end < 0 ? undefined : end)
    if (TRUSTED_ID.test(value)) return value
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
  if (typeof options !== 'object' || options === null) {
    throw new SallyportError(
      'SP_INVALID_OPTION',
      'Invalid options for trustedAccounts(): expected an object { secretKey, publishableKey, … }.',
      {
        option: 'options',
      },
    )
  }
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) throw optionError(options as unknown as Record<string, unknown>, parsed.error)
  const endpoint = new URL('/api/v1/check-request', options.baseUrl ?? DEFAULT_BASE_URL)
  const transport = new Transport({
    ...(options.maxResponseSize === undefined ? {} : { maxResponseSize: options.maxResponseSize }),
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  })
  // Both keys were checked above: unset or empty throws naming the environment variable.
  const { secretKey, publishableKey } = options as TrustedAccountsOptions & { secretKey: string; publishableKey: string }
  const headers = { authorization: `Bearer ${secretKey}` }

  return {
    name: 'trusted-accounts',
    origin: endpoint.origin,
    timeoutMs: options.timeoutMs ?? 400,
    cookies: [TRUSTED_ID_COOKIE],
    pages: {
      challenge: options.challengeUrl ?? DEFAULT_CHALLENGE_URL,
      deny: options.blockedUrl ?? DEFAULT_BLOCKED_URL,
      query(decision, input) {
        const fromSignals = decision.signals.trustedId
        const trustedId =
          trustedIdFromCookies(decision.setCookies) ??
          (typeof fromSignals === 'string' ? fromSignals : undefined) ??
          input.cookie(TRUSTED_ID_COOKIE) ??
          ''
        return { trusted_id: TRUSTED_ID.test(trustedId) ? trustedId : '', publishable_key: publishableKey }
      },
    },
    async decide(input, ctx): Promise<BackendVerdict> {
      // The API needs the real client IP; without one the decision follows the failure policy.
      if (input.ip === null) throw noClientIp('Trusted Accounts')
      const trustedId = input.cookie(TRUSTED_ID_COOKIE)
      const body = {
        ip: input.ip,
        requestedPath: input.path,
        headers: input.headers,
        cookies: input.cookieNames,
        ...(trustedId !== undefined && TRUSTED_ID.test(trustedId) ? { trustedId } : {}),
      }
      const response = await transport.request({ method: 'POST', url: endpoint, headers, json: body }, ctx)
      if (response.status < 200 || response.status > 299) throw statusError(response, 'Trusted Accounts')
      const result = reply.safeParse(parseJson(response))
      if (!result.success) {
        throw SallyportError.backend('invalid', 'Trusted Accounts replied without a valid decision.', {
          status: response.status,
          cause: result.error,
        })
      }
      const { decision } = result.data
      const requestId = optionalString(result.data.requestId, REQUEST_ID)
      const signals: Record<string, unknown> = {}
      const replyTrustedId = optionalString(result.data.trustedId, TRUSTED_ID) ?? trustedIdFromCookies(response.setCookies) ?? trustedId
      if (replyTrustedId !== undefined && TRUSTED_ID.test(replyTrustedId)) signals.trustedId = replyTrustedId
      return {
        verdict: decision === 'block' ? 'deny' : decision,
        reason: decision === 'allow' ? null : `trusted-accounts:${decision}`,
        requestId: requestId ?? null,
        signals,
        setCookies: response.setCookies,
      }
    },
    close: () => transport.close(),
  }
}
