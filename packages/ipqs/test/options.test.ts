import { SallyportError } from '@sallyport/core'
import { type IpqsOptions, ipqs, looksLikeCardNumber } from '@sallyport/ipqs'
import { describe, expect, it } from 'vitest'

const KEY = 'IpqsSecretKey0123456789abcdefXYZ'
const SHA = 'a'.repeat(64)

function refusal(options: Record<string, unknown>): SallyportError {
  try {
    ipqs({ key: KEY, ...options } as IpqsOptions)
  } catch (error) {
    expect(error).toBeInstanceOf(SallyportError)
    return error as SallyportError
  }
  throw new Error('ipqs() accepted the options')
}

describe('options are checked at construction', () => {
  it.each([
    [{ key: '' }, 'key'],
    [{ key: 'has space' }, 'key'],
    [{ key: 42 }, 'key'],
    [{ baseUrl: 'ftp://ipqs.example' }, 'baseUrl'],
    [{ baseUrl: 'not a url' }, 'baseUrl'],
    [{ strictness: 4 }, 'strictness'],
    [{ strictness: 1.5 }, 'strictness'],
    [{ strictness: -1 }, 'strictness'],
    [{ fast: 'yes' }, 'fast'],
    [{ mobile: 1 }, 'mobile'],
    [{ allowPublicAccessPoints: 'true' }, 'allowPublicAccessPoints'],
    [{ lighterPenalties: null }, 'lighterPenalties'],
    [{ transactionStrictness: 3 }, 'transactionStrictness'],
    [{ thresholds: { challenge: -1 } }, 'thresholds.challenge'],
    [{ thresholds: { deny: 101 } }, 'thresholds.deny'],
    [{ thresholds: { challenge: 90, deny: 90 } }, 'thresholds'],
    [{ thresholds: { deny: 60 } }, 'thresholds'],
    [{ thresholds: { block: 80 } }, 'thresholds.block'],
    [{ onTor: 'block' }, 'onTor'],
    [{ onBot: true }, 'onBot'],
    [{ onRecentAbuse: 'allow' }, 'onRecentAbuse'],
    [{ exemptCrawlers: 'no' }, 'exemptCrawlers'],
    [{ transaction: 'billing' }, 'transaction'],
    [{ timeoutMs: 0 }, 'timeoutMs'],
    [{ maxResponseSize: 1.5 }, 'maxResponseSize'],
    [{ dispatcher: 'agent' }, 'dispatcher'],
    [{ secretKey: KEY }, 'secretKey'],
  ])('%o is refused naming `%s`', (options, option) => {
    const error = refusal(options)
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option })
    expect(error.message).toContain(`\`${option}\``)
  })

  it.each<[string, Record<string, unknown>]>([
    ['unset', { key: undefined }],
    ['empty', { key: '' }],
  ])('names IPQS_KEY, as the README reads it, when key is %s', (_label, options) => {
    const error = refusal(options)
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'key' })
    expect(error.message).toContain('set IPQS_KEY or pass key')
  })

  it('refuses a missing key and no options at all', () => {
    expect(() => ipqs({} as IpqsOptions)).toThrow(expect.objectContaining({ code: 'SP_INVALID_OPTION', option: 'key' }))
    expect(() => ipqs(undefined as unknown as IpqsOptions)).toThrow(expect.objectContaining({ code: 'SP_INVALID_OPTION' }))
  })

  it('never puts the key in an error message or its cause', () => {
    for (const error of [refusal({ strictness: 9 }), refusal({ key: `${KEY} ` })]) {
      expect(error.message).not.toContain(KEY)
      expect(JSON.stringify(error.cause)).not.toContain(KEY)
    }
  })

  it('accepts the full set of valid options', () => {
    const backend = ipqs({
      key: KEY,
      baseUrl: 'http://127.0.0.1:9',
      strictness: 3,
      fast: true,
      mobile: false,
      allowPublicAccessPoints: true,
      lighterPenalties: true,
      transactionStrictness: 2,
      thresholds: { challenge: 60, deny: 80 },
      onTor: 'deny',
      onBot: false,
      onRecentAbuse: 'challenge',
      exemptCrawlers: false,
      transaction: { billing_country: 'US', password_hash: SHA },
      timeoutMs: 250,
      maxResponseSize: 4096,
    })
    expect(backend).toMatchObject({ name: 'ipqs', timeoutMs: 250 })
  })

  it.each([0, 4097, 1.5, '8'])('refuses connections: %o, naming the range', (connections) => {
    const error = refusal({ connections })
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'connections' })
    expect(error.message).toContain('an integer from 1 to 4096')
  })

  it('accepts connections from 1 to 4096', async () => {
    for (const connections of [1, 128, 4096]) await ipqs({ key: KEY, connections }).close?.()
  })

  it('recommends a 500 ms budget when none is set', () => {
    expect(ipqs({ key: KEY }).timeoutMs).toBe(500)
  })
})

describe('a static transaction is checked like a checkpoint', () => {
  it.each([
    [{ credit_card_hash: '4111111111111111' }, 'transaction.credit_card_hash'],
    [{ card_number: '4111 1111 1111 1111' }, 'transaction.card_number'],
    [{ cc_number: 5555555555554444 }, 'transaction.cc_number'],
    [{ password: 'hunter2' }, 'transaction.password'],
    [{ new_password: 'hunter2' }, 'transaction.new_password'],
    [{ password_hash: 'hunter2' }, 'transaction.password_hash'],
    [{ password_hash: 'a'.repeat(63) }, 'transaction.password_hash'],
    [{ credit_card_bin: '411111111111' }, 'transaction.credit_card_bin'],
    [{ billing_address_1: { street: 'x' } }, 'transaction.billing_address_1'],
    [{ ip: '203.0.113.9' }, 'transaction.ip'],
    [{ strictness: 3 }, 'transaction.strictness'],
    [{ 'Bad Name': 'x' }, 'transaction'],
  ])('%o is refused naming `%s`, without echoing the value', (transaction, option) => {
    const error = refusal({ transaction })
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option })
    for (const value of Object.values(transaction)) {
      if (typeof value === 'string' && value.length > 3) expect(error.message).not.toContain(value)
    }
  })

  it('accepts hashes, a BIN and look-alike numbers outside card fields', () => {
    expect(() =>
      ipqs({
        key: KEY,
        transaction: {
          password_hash: 'A'.repeat(64),
          credit_card_hash: SHA,
          credit_card_bin: 41111111,
          billing_phone: '4111111111111111',
          order_amount: 12.5,
          recurring: false,
          custom_note: null,
        },
      }),
    ).not.toThrow()
  })
})

describe('looksLikeCardNumber', () => {
  it.each([
    ['4111111111111111', true],
    ['4111-1111-1111-1111', true],
    ['378282246310005', true],
    ['4111111111111112', false],
    ['411111', false],
    ['41111111111111111111', false],
  ])('%s → %s', (value, expected) => {
    expect(looksLikeCardNumber(value)).toBe(expected)
  })
})
