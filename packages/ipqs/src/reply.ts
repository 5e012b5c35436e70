import { type BackendVerdict, boundedText, type HttpReply, SallyportError, shape, type Verdict } from '@sallyport/core'
import type { FlagVerdict } from './options.js'

/** Control and format characters are removed, not spaced: `Evil\u0000ISP` reads `EvilISP`. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}]+/gu

/** Whatever the service copies into signals is short and printable, whatever it sent. */
function bounded(max: number) {
  return (value: string): string | undefined => boundedText(value.replace(UNPRINTABLE, ''), max)
}

/** Enrichment that only informs: a value of the wrong type is dropped, never a failure. */
const text = (max: number) => shape.string().transform(bounded(max)).optional().catch(undefined)
const info = shape.boolean().optional().catch(undefined)
/** Flags that can decide the verdict: a value of the wrong type makes the whole reply invalid. */
const deciding = shape.boolean().nullish()

const envelope = shape.looseObject({ success: shape.boolean(), message: shape.unknown().optional() })

/**
 * The fields read, in the order signals list them; anything else (precise location: latitude,
 * longitude, postcode) is left out, since no decision needs it.
 */
const lookupShape = shape.object({
  fraud_score: shape.number().min(0).max(100),
  proxy: info,
  vpn: info,
  tor: deciding,
  active_vpn: info,
  active_tor: deciding,
  is_crawler: deciding,
  recent_abuse: deciding,
  bot_status: deciding,
  mobile: info,
  abuse_velocity: text(16),
  connection_type: text(64),
  country_code: text(8),
  region: text(128),
  city: text(128),
  ISP: text(128),
  organization: text(128),
  // Documented as a string, answered as a number in practice: both are kept.
  ASN: shape
    .union([shape.number().int().nonnegative(), shape.string().transform(bounded(32))])
    .optional()
    .catch(undefined),
  host: text(253),
  request_id: text(128),
})

/** The checked reply: `fraud_score`, the flags, and the enrichment that passed. */
export type Lookup = ReturnType<typeof readLookup>

export interface Scoring {
  challengeAt: number
  denyAt: number
  onTor: FlagVerdict
  onBot: FlagVerdict
  onRecentAbuse: FlagVerdict
  exemptCrawlers: boolean
}

const INVALID_KEY = /\bkey\b/i
const REFUSED = /invalid|unauthori[sz]ed|not authori[sz]ed|not valid/i
const CREDITS = /\bcredits?\b/i
const NO_CREDITS = /insufficient|not enough|out of|exhausted|no (remaining )?credits/i

/**
 * A `success: false` reply is a failure, never a verdict. A refused key or an empty credit
 * balance will not mend on retry (`client`); anything else is the service's temporary trouble
 * (`server`). The service's own message is not copied: only the cause is named.
 */
export function refusal(message: unknown, status: number): SallyportError {
  const said = typeof message === 'string' ? message : ''
  const refuse = (failure: 'client' | 'server', vendorCode: string, what: string) =>
    SallyportError.backend(failure, `IPQualityScore ${what}.`, { status, vendorCode })
  if (INVALID_KEY.test(said) && REFUSED.test(said)) return refuse('client', 'invalid_key', 'says the API key is invalid or unauthorized')
  if (CREDITS.test(said) && NO_CREDITS.test(said)) {
    return refuse('client', 'insufficient_credits', 'says the account has insufficient credits for this lookup')
  }
  return refuse('server', 'unsuccessful', 'reported an error (success: false) instead of a lookup result')
}

/** Checks a 2xx reply body: a lookup, or the failure it reports. */
export function readLookup(body: unknown, reply: HttpReply) {
  const invalid = (what: string, cause: unknown) =>
    SallyportError.backend('invalid', `IPQualityScore replied without ${what}.`, { status: reply.status, cause })
  const head = envelope.safeParse(body)
  if (!head.success) throw invalid('a `success` field', head.error)
  if (!head.data.success) throw refusal(head.data.message, reply.status)
  const lookup = lookupShape.safeParse(body)
  if (!lookup.success) throw invalid('a valid fraud_score and flags', lookup.error)
  return lookup.data
}

const STRICTNESS: Record<Verdict, number> = { allow: 0, review: 1, challenge: 2, deny: 3 }

/**
 * The verdict for a lookup: the strictest of the score band and the mapped flags. On a tie a
 * flag names the reason, since it says more than the band does.
 */
export function verdictOf(lookup: Lookup, scoring: Scoring): { verdict: Verdict; reason: string | null } {
  const candidates: Array<{ verdict: FlagVerdict; reason: string }> = []
  if (lookup.bot_status === true && !(scoring.exemptCrawlers && lookup.is_crawler === true)) {
    candidates.push({ verdict: scoring.onBot, reason: 'bot_status' })
  }
  if (lookup.tor === true || lookup.active_tor === true) candidates.push({ verdict: scoring.onTor, reason: 'tor' })
  if (lookup.recent_abuse === true) candidates.push({ verdict: scoring.onRecentAbuse, reason: 'recent_abuse' })
  const score = lookup.fraud_score
  if (score >= scoring.denyAt) candidates.push({ verdict: 'deny', reason: `fraud_score>=${scoring.denyAt}` })
  else if (score >= scoring.challengeAt) candidates.push({ verdict: 'challenge', reason: `fraud_score>=${scoring.challengeAt}` })

  let result: { verdict: Verdict; reason: string | null } = { verdict: 'allow', reason: null }
  for (const candidate of candidates) {
    if (candidate.verdict !== false && STRICTNESS[candidate.verdict] > STRICTNESS[result.verdict]) {
      result = { verdict: candidate.verdict, reason: candidate.reason }
    }
  }
  return result
}

/** The lookup as a verdict. Signals keep the service's own field names. */
export function toVerdict(lookup: Lookup, scoring: Scoring): BackendVerdict {
  const { request_id, ...fields } = lookup
  const signals: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(fields)) if (value !== undefined && value !== null) signals[name] = value
  return { ...verdictOf(lookup, scoring), requestId: request_id ?? null, complete: true, signals }
}
