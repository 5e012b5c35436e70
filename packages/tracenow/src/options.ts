import { isUnsetKey, SallyportError, unsetKey } from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { z } from 'zod'

export interface TraceNowOptions {
  /**
   * Secret key (`tn_live_…`), sent as a Bearer token. Never logged, never put in a URL or an
   * error message. Typed to take `process.env.…` as it is: unset or empty, `tracenow()` throws
   * `SP_INVALID_OPTION` naming `TRACENOW_SECRET_KEY`.
   */
  secretKey: string | undefined
  /**
   * API base URL; a path prefix is kept (`https://proxy.example/tracenow` calls `…/tracenow/trace`).
   * Defaults to `https://api.tracenow.io`.
   */
  baseUrl?: string
  /**
   * Budget for one decision in ms, used when the gate sets no `timeoutMs`. TraceNow publishes no
   * recommendation, so this defaults to none and the gate's own default (300 ms) applies. Give
   * checkpoints that set `awaitCompleteSignals` room for the delay plus a second call.
   */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher (Agent, Pool, MockAgent) to use instead of Sallyport's own keep-alive pool. Defaults to none. */
  dispatcher?: Dispatcher
}

/** The options once checked: what the backend runs on. */
export interface ResolvedTraceNowOptions {
  secretKey: string
  endpoint: URL
  timeoutMs: number | undefined
  maxResponseSize: number | undefined
  dispatcher: Dispatcher | undefined
}

export const DEFAULT_BASE_URL = 'https://api.tracenow.io'

const ACCEPTED = {
  secretKey: 'the secret key (tn_…) as a non-empty string without spaces',
  baseUrl: 'an http(s) URL such as "https://api.tracenow.io", without credentials, query or fragment',
  timeoutMs: 'an integer number of milliseconds from 1 to 60000',
  maxResponseSize: 'a positive integer number of bytes',
  dispatcher: 'an undici Dispatcher (Agent, Pool, MockAgent)',
} as const

type OptionName = keyof typeof ACCEPTED

/** Printable ASCII with no spaces: anything else cannot travel in an Authorization header. */
const HEADER_SAFE = /^[\x21-\x7e]+$/

function isBaseUrl(value: string): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.username === '' &&
    url.password === '' &&
    !value.includes('?') &&
    !value.includes('#')
  )
}

/** Said instead of the generic text when the publishable key is passed as the secret one. */
const PUBLISHABLE_KEY_GIVEN = 'the secret key (tn_…), not the publishable key (pk_…), which belongs in the browser'

// Messages come from ACCEPTED, by option name; only the publishable-key check says more.
const schema = z.strictObject({
  secretKey: z
    .string()
    .regex(HEADER_SAFE)
    // The publishable key is made for the browser's /identify call; /trace needs the secret one.
    .refine((key) => !key.startsWith('pk_'), { error: PUBLISHABLE_KEY_GIVEN }),
  baseUrl: z.string().refine(isBaseUrl).optional(),
  timeoutMs: z.number().int().min(1).max(60_000).optional(),
  maxResponseSize: z.number().int().min(1).optional(),
  dispatcher: z
    .custom<Dispatcher>(
      (value) => typeof value === 'object' && value !== null && typeof (value as { request?: unknown }).request === 'function',
    )
    .optional(),
})

function invalid(option: string, accepted: string, cause?: unknown): SallyportError {
  return new SallyportError('SP_INVALID_OPTION', `Invalid option \`${option}\` for tracenow(): expected ${accepted}.`, { option, cause })
}

/** `{baseUrl}/trace`, keeping any path prefix of the base URL. */
function traceEndpoint(baseUrl: string): URL {
  const url = new URL(baseUrl)
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/trace`
  return url
}

/** Checks the options once, when `tracenow()` is called; a bad one throws naming it. */
export function resolveOptions(options: TraceNowOptions): ResolvedTraceNowOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', `an object with ${Object.keys(ACCEPTED).join(', ')}`)
  const parsed = schema.safeParse(options)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    if (issue?.code === 'unrecognized_keys') {
      const option = String(issue.keys[0])
      throw new SallyportError(
        'SP_INVALID_OPTION',
        `Unknown option \`${option}\` for tracenow(): accepted options are ${Object.keys(ACCEPTED).join(', ')}.`,
        { option, cause: parsed.error },
      )
    }
    const option = String(issue?.path[0] ?? 'options')
    // The README reads the key from TRACENOW_SECRET_KEY: an unset key is most often an unset variable.
    if (option === 'secretKey' && isUnsetKey(options.secretKey))
      throw unsetKey('tracenow', option, 'TRACENOW_SECRET_KEY', options.secretKey)
    const accepted =
      option === 'secretKey' && issue?.code === 'custom' ? issue.message : (ACCEPTED[option as OptionName] ?? 'a valid value')
    throw invalid(option, accepted, parsed.error)
  }
  const { secretKey, baseUrl, timeoutMs, maxResponseSize, dispatcher } = parsed.data
  return { secretKey, endpoint: traceEndpoint(baseUrl ?? DEFAULT_BASE_URL), timeoutMs, maxResponseSize, dispatcher }
}
