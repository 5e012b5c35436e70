import type { HttpReply } from '@sallyport/core'
import { describe, expect, it } from 'vitest'
import { type Lookup, readLookup, refusal, type Scoring, toVerdict, verdictOf } from '../src/reply.js'

const defaults: Scoring = { challengeAt: 75, denyAt: 90, onTor: false, onBot: 'deny', onRecentAbuse: false, exemptCrawlers: true }
const reply: HttpReply = { status: 200, headers: {}, body: '', setCookies: [], attempts: 1 }
const lookup = (fields: Record<string, unknown>): Lookup => readLookup({ success: true, fraud_score: 0, ...fields }, reply)

describe('score bands', () => {
  it.each([
    [0, 'allow', null],
    [74.9, 'allow', null],
    [75, 'challenge', 'fraud_score>=75'],
    [89.99, 'challenge', 'fraud_score>=75'],
    [90, 'deny', 'fraud_score>=90'],
    [100, 'deny', 'fraud_score>=90'],
  ] as const)('fraud_score %s → %s', (score, verdict, reason) => {
    expect(verdictOf(lookup({ fraud_score: score }), defaults)).toEqual({ verdict, reason })
  })

  it('follows configured thresholds and names them in the reason', () => {
    const strict = { ...defaults, challengeAt: 50, denyAt: 85 }
    expect(verdictOf(lookup({ fraud_score: 49 }), strict)).toEqual({ verdict: 'allow', reason: null })
    expect(verdictOf(lookup({ fraud_score: 50 }), strict)).toEqual({ verdict: 'challenge', reason: 'fraud_score>=50' })
    expect(verdictOf(lookup({ fraud_score: 85 }), strict)).toEqual({ verdict: 'deny', reason: 'fraud_score>=85' })
  })
})

describe('flags', () => {
  it('bot_status denies by default, even with a low score', () => {
    expect(verdictOf(lookup({ fraud_score: 10, bot_status: true }), defaults)).toEqual({ verdict: 'deny', reason: 'bot_status' })
  })

  it('bot_status on a verified crawler is left to the score unless the exemption is off', () => {
    const crawler = lookup({ fraud_score: 10, bot_status: true, is_crawler: true })
    expect(verdictOf(crawler, defaults)).toEqual({ verdict: 'allow', reason: null })
    expect(verdictOf(crawler, { ...defaults, exemptCrawlers: false })).toEqual({ verdict: 'deny', reason: 'bot_status' })
  })

  it('tor and recent_abuse change nothing unless mapped', () => {
    expect(verdictOf(lookup({ tor: true, active_tor: true, recent_abuse: true }), defaults)).toEqual({ verdict: 'allow', reason: null })
  })

  it.each([
    ['tor', { tor: true }, { onTor: 'challenge' }, 'challenge'],
    ['tor', { active_tor: true }, { onTor: 'deny' }, 'deny'],
    ['recent_abuse', { recent_abuse: true }, { onRecentAbuse: 'review' }, 'review'],
    ['recent_abuse', { recent_abuse: true }, { onRecentAbuse: 'deny' }, 'deny'],
  ] as const)('%s mapped by option: %o with %o → %s', (reason, fields, option, verdict) => {
    expect(verdictOf(lookup({ fraud_score: 5, ...fields }), { ...defaults, ...option })).toEqual({ verdict, reason })
  })

  it('onBot false leaves bot_status to the score', () => {
    expect(verdictOf(lookup({ fraud_score: 80, bot_status: true }), { ...defaults, onBot: false })).toEqual({
      verdict: 'challenge',
      reason: 'fraud_score>=75',
    })
  })

  it('the strictest of band and flags wins; on a tie the flag names the reason', () => {
    const mapped = { ...defaults, onTor: 'deny' as const, onRecentAbuse: 'challenge' as const }
    expect(verdictOf(lookup({ fraud_score: 80, tor: true }), mapped)).toEqual({ verdict: 'deny', reason: 'tor' })
    expect(verdictOf(lookup({ fraud_score: 95, recent_abuse: true }), mapped)).toEqual({ verdict: 'deny', reason: 'fraud_score>=90' })
    expect(verdictOf(lookup({ fraud_score: 80, recent_abuse: true }), mapped)).toEqual({ verdict: 'challenge', reason: 'recent_abuse' })
    expect(verdictOf(lookup({ fraud_score: 95, bot_status: true }), mapped)).toEqual({ verdict: 'deny', reason: 'bot_status' })
  })
})

describe('reply validation', () => {
  it.each([
    ['a missing fraud_score', { success: true }],
    ['a fraud_score above 100', { success: true, fraud_score: 150 }],
    ['a fraud_score that is a string', { success: true, fraud_score: '10' }],
    ['a deciding flag of the wrong type', { success: true, fraud_score: 10, bot_status: 'yes' }],
    ['no success field', { fraud_score: 10 }],
    ['an array', [{ success: true, fraud_score: 0 }]],
    ['null', null],
  ])('%s is an invalid reply, never a verdict', (_label, body) => {
    expect(() => readLookup(body, reply)).toThrow(expect.objectContaining({ code: 'SP_BACKEND_INVALID' }))
  })

  it('informational fields of the wrong type are dropped, long strings bounded, control characters removed', () => {
    const { signals, requestId } = toVerdict(
      lookup({
        fraud_score: 12,
        ISP: `Evil\u0000ISP${'x'.repeat(500)}`,
        city: 42,
        proxy: 'maybe',
        ASN: 15169,
        request_id: `r${'1'.repeat(300)}`,
        latitude: 1.5,
        zip_code: '90001',
      }),
      defaults,
    )
    expect(signals).toMatchObject({ fraud_score: 12, ASN: 15169 })
    expect(signals?.ISP).toMatch(/^EvilISPx+$/)
    expect(String(signals?.ISP)).toHaveLength(128)
    expect(signals).not.toHaveProperty('city')
    expect(signals).not.toHaveProperty('proxy')
    expect(signals).not.toHaveProperty('latitude')
    expect(signals).not.toHaveProperty('zip_code')
    expect(requestId).toHaveLength(128)
  })

  it('format characters (bidi overrides, zero-width) are removed as control characters are', () => {
    const { signals } = toVerdict(lookup({ ISP: 'Good\u202eISP\u200b', city: '\u2066\u0085', ASN: 'AS\u200d15169' }), defaults)
    expect(signals).toMatchObject({ ISP: 'GoodISP', ASN: 'AS15169' })
    expect(signals).not.toHaveProperty('city')
  })
})

describe('success: false', () => {
  it.each([
    ['Invalid or unauthorized key. Please check the API key and try again.', 'SP_BACKEND_CLIENT', 'invalid_key'],
    ['You have insufficient credits to make this request.', 'SP_BACKEND_CLIENT', 'insufficient_credits'],
    ['Your account has run out of credits.', 'SP_BACKEND_CLIENT', 'insufficient_credits'],
    ['We are experiencing a temporary issue. Please try again shortly.', 'SP_BACKEND_SERVER', 'unsuccessful'],
    ['Invalid IPv4 address.', 'SP_BACKEND_SERVER', 'unsuccessful'],
    [undefined, 'SP_BACKEND_SERVER', 'unsuccessful'],
  ])('%s → %s', (message, code, vendorCode) => {
    expect(() => readLookup({ success: false, message }, reply)).toThrow(expect.objectContaining({ code, vendorCode, status: 200 }))
  })

  it('never copies the message, which could echo the key', () => {
    const error = refusal('Invalid or unauthorized key: sk_live_abc123', 200)
    expect(error.message).not.toContain('sk_live_abc123')
    const other = refusal('Temporary error for key sk_live_abc123', 200)
    expect(other.message).not.toContain('sk_live_abc123')
  })
})
