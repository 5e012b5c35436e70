import { checkOptions, invalidOption, shape, type TransportOptions, vendorOptions } from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { checkTransaction } from './transaction.js'

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
   * API key, sent only in the `IPQS-KEY` header: never in a URL, a log line or an error message. Typed to take
   * `process.env.…` as it is: unset or empty, `ipqs()` throws `SP_INVALID_OPTION` naming `IPQS_KEY`.
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
  /** Leaves `bot_status` to the score when IPQualityScore verified a search-engine crawler (`is_crawler`). Defaults to `true`. */
  exemptCrawlers?: boolean
  /**
   * Transaction variables sent with every lookup (say, a fixed `billing_country`); a checkpoint's `transaction` adds to and
   * overrides them. Checked now like a checkpoint's: no raw card number, no raw password. Defaults to none.
   */
  transaction?: Record<string, unknown>
  /** Recommended budget in ms, used when the gate sets no `timeoutMs`. Defaults to 500. */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher to use instead of Sallyport's own keep-alive pool. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections to the service, 1–4096. A decision that finds them all busy waits inside its budget; one still
   * waiting at the deadline falls back with reason `pool_saturated`, which never opens the circuit breaker. Defaults to 128.
   */
  connections?: number
}

export const DEFAULT_BASE_URL = 'https://www.ipqualityscore.com'
export const DEFAULT_THRESHOLDS = Object.freeze({ challenge: 75, deny: 90 })
export const DEFAULT_TIMEOUT_MS = 500

const boolean = shape.boolean().optional()
const score = shape.number().min(0).max(100).describe('a score from 0 to 100').optional()
const flagVerdict = shape
  .union([shape.enum(['deny', 'challenge', 'review']), shape.literal(false)])
  .describe("'deny', 'challenge', 'review' or false")
  .optional()

const optionsShape = shape.strictObject({
  // Printable ASCII without spaces: anything else could not travel in a header.
  key: shape
    .string()
    .regex(/^[\x21-\x7e]{1,256}$/)
    .describe('the IPQualityScore API key (printable characters, no spaces)'),
  baseUrl: shape
    .url({ protocol: /^https?$/ })
    .describe('an http(s) URL')
    .optional(),
  strictness: shape.number().int().min(0).max(3).describe('an integer from 0 to 3').optional(),
  fast: boolean,
  mobile: boolean,
  allowPublicAccessPoints: boolean,
  lighterPenalties: boolean,
  transactionStrictness: shape.number().int().min(0).max(2).describe('an integer from 0 to 2').optional(),
  thresholds: shape.strictObject({ challenge: score, deny: score }).describe('{ challenge?, deny? } with scores from 0 to 100').optional(),
  onTor: flagVerdict,
  onBot: flagVerdict,
  onRecentAbuse: flagVerdict,
  exemptCrawlers: boolean,
  transaction: shape.record(shape.string(), shape.unknown()).describe('an object of transaction variables').optional(),
  ...vendorOptions,
})

/** Checks the options once, when the backend is made; a bad one throws naming it, never its value. */
export function resolveOptions(options: IpqsOptions) {
  // The README reads the key from IPQS_KEY: an unset key is most often an unset variable.
  const given = checkOptions('ipqs', optionsShape, options, { env: { key: 'IPQS_KEY' }, expected: 'an object with at least `key`' })
  const { challenge: challengeAt = DEFAULT_THRESHOLDS.challenge, deny: denyAt = DEFAULT_THRESHOLDS.deny } = given.thresholds ?? {}
  if (challengeAt >= denyAt) {
    throw invalidOption('thresholds', `\`challenge\` below \`deny\` (got challenge ${challengeAt}, deny ${denyAt})`, undefined, 'ipqs')
  }
  const transaction = checkTransaction(given.transaction ?? {}, (field, expected) => invalidOption(field, expected, undefined, 'ipqs'))

  // Lookup parameters sent with every call, under the service's names; those left unset are not sent.
  const parameters: Record<string, number | boolean> = { strictness: given.strictness ?? 0 }
  if (given.fast !== undefined) parameters.fast = given.fast
  if (given.mobile !== undefined) parameters.mobile = given.mobile
  if (given.allowPublicAccessPoints !== undefined) parameters.allow_public_access_points = given.allowPublicAccessPoints
  if (given.lighterPenalties !== undefined) parameters.lighter_penalties = given.lighterPenalties
  if (given.transactionStrictness !== undefined) parameters.transaction_strictness = given.transactionStrictness

  // `{baseUrl}/api/json/ip`: a path prefix (a proxy mounted under a path) is kept; query and fragment are not.
  const base = new URL(given.baseUrl ?? DEFAULT_BASE_URL)
  const endpoint = new URL(`${base.pathname.replace(/\/+$/, '')}/api/json/ip`, base.origin)
  // The transport reads each of these with a default for `undefined`.
  const { maxResponseSize, dispatcher, connections } = given
  return {
    key: given.key,
    endpoint,
    parameters,
    transaction,
    challengeAt,
    denyAt,
    onTor: given.onTor ?? false,
    onBot: given.onBot ?? 'deny',
    onRecentAbuse: given.onRecentAbuse ?? false,
    exemptCrawlers: given.exemptCrawlers ?? true,
    timeoutMs: given.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    transport: { maxResponseSize, dispatcher, connections } as TransportOptions,
  }
}
