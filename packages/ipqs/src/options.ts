import { isUnsetKey, SallyportError, unsetKey } from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import { checkTransaction, type TransactionValue } from './transaction.js'

/** What a flag in the reply turns into: a verdict, or `false` to leave it to the fraud score. */
export type FlagVerdict = 'deny' | 'challenge' | 'review' | false

export interface IpqsThresholds {
  /** `fraud_score` at or above which the visitor is challenged. Defaults to 75 (IPQualityScore's "suspicious"). */
  challenge?: number
  /** `fraud_score` at or above which the visitor is denied. Defaults to 90 (IPQualityScore's "frequent abuse"). */
  deny?: number
}

export interface IpqsOptions {
  /**
   * API key, sent only in the `IPQS-KEY` header: never in a URL, a log line or an error
   * message. Typed to take `process.env.…` as it is: unset or empty, `ipqs()` throws
   * `SP_INVALID_OPTION` naming `IPQS_KEY`.
   */
  key: string | undefined
  /** API base URL, for a proxy or tests; a path prefix is kept. Defaults to `https://www.ipqualityscore.com`. */
  baseUrl?: string
  /** How in-depth the lookup is, 0 to 3; higher finds more and misjudges more. Defaults to 0, as IPQualityScore advises to start. */
  strictness?: number
  /** Skips the slower forensic checks, for time-critical decisions. Defaults to the service's own default (off). */
  fast?: boolean
  /** Treats every lookup as a mobile device, for apps whose requests carry no browser user agent. Defaults to the service's own default (off). */
  mobile?: boolean
  /** Relaxes checks for schools, universities and corporate networks many people share. Defaults to the service's own default (off). */
  allowPublicAccessPoints?: boolean
  /** Softer penalties for mixed-quality IPs, to lower false positives. Defaults to the service's own default (off). */
  lighterPenalties?: boolean
  /** Weight of irregular transaction details in the score, 0 to 2. Only useful with transaction data. Defaults to the service's own default. */
  transactionStrictness?: number
  /** Score bands, 0 to 100, `challenge` below `deny`. Defaults to `{ challenge: 75, deny: 90 }`. */
  thresholds?: IpqsThresholds
  /** Verdict when the IP is a Tor exit (`tor` or `active_tor`). Defaults to `false`: the score alone decides. */
  onTor?: FlagVerdict
  /** Verdict when `bot_status` is true. Defaults to `'deny'`. */
  onBot?: FlagVerdict
  /** Verdict when `recent_abuse` is true. Defaults to `false`: the score alone decides. */
  onRecentAbuse?: FlagVerdict
  /**
   * Leaves `bot_status` alone when IPQualityScore verified the IP as a search-engine crawler
   * (`is_crawler`), so Googlebot and Bingbot are not turned away for being bots. Defaults to `true`.
   */
  exemptCrawlers?: boolean
  /**
   * Transaction variables sent with every lookup (say, a fixed `billing_country`); a checkpoint's
   * `transaction` adds to and overrides them. Checked now like a checkpoint's: no raw card number,
   * no raw password. Defaults to none.
   */
  transaction?: Record<string, unknown>
  /** Recommended budget in ms, used when the gate sets no `timeoutMs`. Defaults to 500. */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher to use instead of Sallyport's own keep-alive pool. */
  dispatcher?: Dispatcher
}

export interface ResolvedIpqsOptions {
  key: string
  endpoint: URL
  /** Lookup parameters sent with every call. */
  parameters: Record<string, number | boolean>
  challengeAt: number
  denyAt: number
  onTor: FlagVerdict
  onBot: FlagVerdict
  onRecentAbuse: FlagVerdict
  exemptCrawlers: boolean
  transaction: Record<string, TransactionValue>
  timeoutMs: number
  maxResponseSize: number | undefined
  dispatcher: Dispatcher | undefined
}

export const DEFAULT_BASE_URL = 'https://www.ipqualityscore.com'
export const DEFAULT_THRESHOLDS = Object.freeze({ challenge: 75, deny: 90 })
export const DEFAULT_TIMEOUT_MS = 500

const score = z.number().min(0).max(100)
const flagVerdict = z.union([z.enum(['deny', 'challenge', 'review']), z.literal(false)])

const optionsSchema = z.strictObject({
  // Printable ASCII without spaces: anything else could not travel in a header.
  key: z.string().regex(/^[\x21-\x7e]{1,256}$/),
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  strictness: z.number().int().min(0).max(3).optional(),
  fast: z.boolean().optional(),
  mobile: z.boolean().optional(),
  allowPublicAccessPoints: z.boolean().optional(),
  lighterPenalties: z.boolean().optional(),
  transactionStrictness: z.number().int().min(0).max(2).optional(),
  thresholds: z.strictObject({ challenge: score.optional(), deny: score.optional() }).optional(),
  onTor: flagVerdict.optional(),
  onBot: flagVerdict.optional(),
  onRecentAbuse: flagVerdict.optional(),
  exemptCrawlers: z.boolean().optional(),
  transaction: z.record(z.string(), z.unknown()).optional(),
  timeoutMs: z.number().int().min(1).max(60_000).optional(),
  maxResponseSize: z.number().int().min(1).optional(),
  dispatcher: z.custom<Dispatcher>((value) => typeof value === 'object' && value !== null).optional(),
})

const FLAG_VERDICT = "'deny', 'challenge', 'review' or false"
const accepted: Record<string, string> = {
  key: 'the IPQualityScore API key (printable characters, no spaces)',
  baseUrl: 'an http(s) URL',
  strictness: 'an integer from 0 to 3',
  fast: 'a boolean',
  mobile: 'a boolean',
  allowPublicAccessPoints: 'a boolean',
  lighterPenalties: 'a boolean',
  transactionStrictness: 'an integer from 0 to 2',
  thresholds: '{ challenge?, deny? } with scores from 0 to 100',
  'thresholds.challenge': 'a score from 0 to 100',
  'thresholds.deny': 'a score from 0 to 100',
  onTor: FLAG_VERDICT,
  onBot: FLAG_VERDICT,
  onRecentAbuse: FLAG_VERDICT,
  exemptCrawlers: 'a boolean',
  transaction: 'an object of transaction variables',
  timeoutMs: 'an integer number of milliseconds from 1 to 60000',
  maxResponseSize: 'a positive integer number of bytes',
  dispatcher: 'an undici Dispatcher (Agent, Pool, MockAgent)',
}

function invalid(option: string, expected: string, cause?: unknown): SallyportError {
  return new SallyportError('SP_INVALID_OPTION', `Invalid option \`${option}\` for ipqs(): expected ${expected}.`, { option, cause })
}

/** A path prefix on `baseUrl` (a proxy mounted under a path) is kept; query and fragment are not. */
function endpointOf(baseUrl: string): URL {
  const base = new URL(baseUrl)
  return new URL(`${base.pathname.replace(/\/+$/, '')}/api/json/ip`, base.origin)
}

/** Validates the options once, when the backend is made; a bad one throws naming it. */
export function resolveOptions(options: IpqsOptions): ResolvedIpqsOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'an object with at least `key`')
  const parsed = optionsSchema.safeParse(options)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const path = (issue?.path ?? []).slice(0, 2).map(String)
    // An unknown option shows up as an issue on the object itself, naming the key.
    const unknown = issue?.code === 'unrecognized_keys' ? issue.keys[0] : undefined
    if (unknown !== undefined) throw invalid([...path, unknown].join('.'), 'a known ipqs() option', parsed.error)
    const option = path.length > 0 ? path.join('.') : 'options'
    // The README reads the key from IPQS_KEY: an unset key is most often an unset variable.
    if (option === 'key' && isUnsetKey(options.key)) throw unsetKey('ipqs', option, 'IPQS_KEY', options.key)
    const expected = accepted[option] ?? accepted[path[0] ?? ''] ?? 'a valid value'
    throw invalid(option, expected, parsed.error)
  }
  const challengeAt = options.thresholds?.challenge ?? DEFAULT_THRESHOLDS.challenge
  const denyAt = options.thresholds?.deny ?? DEFAULT_THRESHOLDS.deny
  if (challengeAt >= denyAt) {
    throw invalid('thresholds', `\`challenge\` below \`deny\` (got challenge ${challengeAt}, deny ${denyAt})`)
  }
  const transaction = checkTransaction(options.transaction ?? {}, (field, expected) => invalid(field, expected))

  const parameters: Record<string, number | boolean> = { strictness: options.strictness ?? 0 }
  if (options.fast !== undefined) parameters.fast = options.fast
  if (options.mobile !== undefined) parameters.mobile = options.mobile
  if (options.allowPublicAccessPoints !== undefined) parameters.allow_public_access_points = options.allowPublicAccessPoints
  if (options.lighterPenalties !== undefined) parameters.lighter_penalties = options.lighterPenalties
  if (options.transactionStrictness !== undefined) parameters.transaction_strictness = options.transactionStrictness

  return {
    // Checked above: unset or empty throws naming IPQS_KEY.
    key: options.key as string,
    endpoint: endpointOf(options.baseUrl ?? DEFAULT_BASE_URL),
    parameters,
    challengeAt,
    denyAt,
    onTor: options.onTor ?? false,
    onBot: options.onBot ?? 'deny',
    onRecentAbuse: options.onRecentAbuse ?? false,
    exemptCrawlers: options.exemptCrawlers ?? true,
    transaction,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    maxResponseSize: options.maxResponseSize,
    dispatcher: options.dispatcher,
  }
}
