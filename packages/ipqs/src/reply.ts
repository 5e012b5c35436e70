import { type BackendVerdict, type HttpReply, SallyportError, type Verdict } from '@sallyport/core'
import { z } from 'zod'
import type { FlagVerdict } from './options.js'

/** Whatever the service copies into signals is short and printable, whatever it sent. */
function bounded(max: number) {
  return (value: string): string | undefined => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
    const clean = value.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim()
    return clean.length === 0 ? undefined : clean.slice(0, max)
  }
}

/** Enrichment that only informs: a value of the wrong type is dropped, never a failure. */
const text = (max: number) => z.string().transform(bounded(max)).optional().catch(undefined)
const info = z.boolean().optional().catch(undefined)
/** Flags that can decide the verdict: a value of the wrong type makes the whole reply invalid. */
const deciding = z.boolean().nullish()

const envelope = z.looseObject({
  success: z.boolean(),
  message: z.unknown().optional(),
})

const lookupSchema = z.looseObject({
  fraud_score: z.number().min(0).max(100),
  request_id: text(128),
  tor: deciding,
  active_tor: deciding,
  bot_status: deciding,
  recent_abuse: deciding,
  is_crawler: deciding,
  proxy: info,
  vpn: info,
  active_vpn: info,
  mobile: info,
  abuse_velocity: text(16),
  connection_type: text(64),
  country_code: text(8),
  region: text(128),
  city: text(128),
  ISP: text(128),
  organization: text(128),
  // Documented as a string, answered as a number in practice: both are kept.
  ASN: z
    .union([z.number().int().nonnegative(), z.string().transform(bounded(32))])
    .optional()
    .catch(undefined),
  host: text(253),
})

export type Lookup = z.infer<typeof lookupSchema>

export interface Scoring {
  challengeAt: number
  denyAt: number
  onTor: FlagVerdict
  onBot: FlagVerdict
  onRecentAbuse: FlagVerdict
  exemptCrawlers: boolean
}

const STRICTNESS: Record<Verdict, number> = { allow: 0, review: 1, challenge: 2, deny: 3 }

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
  if (INVALID_KEY.test(said) && REFUSED.test(said)) {
    return SallyportError.backend('client', 'IPQualityScore says the API key is invalid or unauthorized.', {
      status,
      vendorCode: 'invalid_key',
    })
  }
  if (CREDITS.test(said) && NO_CREDITS.test(said)) {
    return SallyportError.backend('client', 'IPQualityScore says the account has insufficient credits for this lookup.', {
      status,
      vendorCode: 'insufficient_credits',
    })
  }
  return SallyportError.backend('server', 'IPQualityScore reported an error (success: false) instead of a lookup result.', {
    status,
    vendorCode: 'unsuccessful',
  })
}

/** Checks a 2xx reply body: a lookup, or the failure it reports. */
export function readLookup(body: unknown, reply: HttpReply): Lookup {
  const head = envelope.safeParse(body)
  if (!head.success) {
    throw SallyportError.backend('invalid', 'IPQualityScore replied without a `success` field.', {
      status: reply.status,
      cause: head.error,
    })
  }
  if (!head.data.success) throw refusal(head.data.message, reply.status)
  const lookup = lookupSchema.safeParse(body)
  if (!lookup.success) {
    throw SallyportError.backend('invalid', 'IPQualityScore replied without a valid fraud_score and flags.', {
      status: reply.status,
      cause: lookup.error,
    })
  }
  return lookup.data
}

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

const SIGNALS = [
  'fraud_score',
  'proxy',
  'vpn',
  'tor',
  'active_vpn',
  'active_tor',
  'is_crawler',
  'recent_abuse',
  'bot_status',
  'mobile',
  'abuse_velocity',
  'connection_type',
  'country_code',
  'region',
  'city',
  'ISP',
  'organization',
  'ASN',
  'host',
] as const satisfies ReadonlyArray<keyof Lookup>

/**
 * The lookup as a verdict. Signals keep the service's own field names; precise location
 * (latitude, longitude, postcode) is left out, since no decision needs it.
 */
export function toVerdict(lookup: Lookup, scoring: Scoring): BackendVerdict {
  const signals: Record<string, unknown> = {}
  for (const name of SIGNALS) {
    const value = lookup[name]
    if (value !== undefined && value !== null) signals[name] = value
  }
  return { ...verdictOf(lookup, scoring), requestId: lookup.request_id ?? null, complete: true, signals }
}
