/** A transaction variable as IPQualityScore takes it. */
export type TransactionValue = string | number | boolean

/** Builds the error for a field the service must not receive; the caller decides its kind (400 or bad option). */
export type Refuse = (field: string, accepted: string) => Error

/**
 * Parameters the backend sets itself from the request and the options: a transaction must not
 * override the IP or the key, nor slip in the "on behalf of users" secret.
 */
const RESERVED = new Set([
  'ip',
  'key',
  'secret',
  'strictness',
  'user_agent',
  'user_language',
  'fast',
  'mobile',
  'allow_public_access_points',
  'lighter_penalties',
  'transaction_strictness',
])

/** IPQualityScore also takes custom variables, so other names pass if they look like its own. */
const FIELD_NAME = /^[a-z][a-z0-9_]{0,63}$/
const SHA256_HEX = /^[0-9a-fA-F]{64}$/
const BIN = /^\d{6,8}$/
/** Card fields are where a raw card number is likely to be put by mistake. */
const CARD_FIELD = /card|(^|_)(cc|pan)(_|$)/
/** Anything named like a password, except the digest the service asks for. */
const PASSWORD_FIELD = /password|passwd|(^|_)(pass|pwd)(_|$)|secret/
const MAX_FIELDS = 64
const MAX_TEXT = 512

const NO_CARD_NUMBER = 'no card number: send `credit_card_bin` (its first 6 to 8 digits) and `credit_card_hash` (its SHA-256 hex digest)'
const SHA256 = 'a SHA-256 hex digest (64 hexadecimal characters) computed by the application'

function luhnValid(digits: string): boolean {
  let sum = 0
  for (let index = 0; index < digits.length; index++) {
    let digit = digits.charCodeAt(digits.length - 1 - index) - 48
    if (index % 2 === 1) {
      digit *= 2
      if (digit > 9) digit -= 9
    }
    sum += digit
  }
  return sum % 10 === 0
}

/** A primary account number as people write it: 13 to 19 digits, spaces or dashes allowed, Luhn-valid. */
export function looksLikeCardNumber(value: TransactionValue): boolean {
  if (typeof value === 'boolean') return false
  const digits = String(value).replace(/[\s-]/g, '')
  return /^\d{13,19}$/.test(digits) && luhnValid(digits)
}

/**
 * Checks a transaction before any of it leaves the process. Hashes are the application's to
 * compute: a raw card number, a raw password or a malformed digest is refused, never sent.
 * `null`, `undefined` and empty strings count as absent.
 */
export function checkTransaction(transaction: Record<string, unknown>, refuse: Refuse): Record<string, TransactionValue> {
  const entries = Object.entries(transaction)
  if (entries.length > MAX_FIELDS) throw refuse('transaction', `at most ${MAX_FIELDS} fields`)
  const clean: Record<string, TransactionValue> = {}
  for (const [name, value] of entries) {
    // The name may come from a request body; it is never echoed back unless it is well-formed.
    if (!FIELD_NAME.test(name)) throw refuse('transaction', 'field names of lowercase letters, digits and "_" (at most 64 characters)')
    const field = `transaction.${name}`
    if (RESERVED.has(name)) throw refuse(field, `a transaction variable; \`${name}\` is set by the backend itself`)
    if (name !== 'password_hash' && PASSWORD_FIELD.test(name)) {
      throw refuse(field, 'no raw password or secret: send `password_hash`, the SHA-256 hex digest of the password')
    }
    if (value === undefined || value === null || value === '') continue
    if (typeof value !== 'string' && typeof value !== 'boolean' && !(typeof value === 'number' && Number.isFinite(value))) {
      throw refuse(field, 'a string, a finite number or a boolean')
    }
    if (typeof value === 'string' && value.length > MAX_TEXT) throw refuse(field, `at most ${MAX_TEXT} characters`)
    if (name === 'password_hash' || name === 'credit_card_hash') {
      if (typeof value !== 'string' || !SHA256_HEX.test(value)) throw refuse(field, SHA256)
    } else if (name === 'credit_card_bin') {
      if (typeof value === 'boolean' || !BIN.test(String(value).replace(/\s/g, ''))) {
        throw refuse(field, "the card's first 6 to 8 digits")
      }
    } else if (CARD_FIELD.test(name) && looksLikeCardNumber(value)) {
      throw refuse(field, NO_CARD_NUMBER)
    }
    clean[name] = value
  }
  return clean
}
