import { invalidCheckpoint } from '@sallyport/core'

/** How amounts travel to Tracer: `"100.10"` (the API's own format) or integer minor units (`10010`). */
export type AmountFormat = 'decimal-string' | 'minor-units'

/** The transaction types Tracer's API documents. */
export type TransactionType = 'CARD' | 'WIRE' | 'PIX' | 'CRYPTO'

/** A value Tracer rules can read from metadata: anything JSON can carry exactly. */
export type MetadataValue = string | number | boolean | null | MetadataValue[] | { [key: string]: MetadataValue }

/** Custom fields for rules: keys of letters, digits and `_` (at most 64), at most 50 entries. */
export type TracerMetadata = Record<string, MetadataValue>

export interface TracerAccount {
  /** UUID. */
  accountId: string
  /** E.g. `'checking'`. */
  type: string
  /** E.g. `'active'`. Send it fresh: Tracer cannot tell a stale status. */
  status: string
  metadata?: TracerMetadata
}

export interface TracerSegment {
  /** UUID. */
  segmentId: string
  name?: string
  metadata?: TracerMetadata
}

export interface TracerPortfolio {
  /** UUID. */
  portfolioId: string
  name?: string
  metadata?: TracerMetadata
}

export interface TracerMerchant {
  /** UUID. */
  merchantId: string
  name: string
  /** Merchant category code: four digits, e.g. `'5411'`. */
  category: string
  /** ISO 3166-1 alpha-2 country code in capitals, e.g. `'US'`. */
  country: string
  metadata?: TracerMetadata
}

/**
 * A transaction as a checkpoint hands it to Tracer: what the checkpoint's `transaction`
 * extractor returns, or what the backend's `transaction` option maps it to.
 */
export interface TracerTransaction {
  type: TransactionType
  /** E.g. `'purchase'`; at most 50 characters. */
  subType?: string
  /**
   * Positive and exact. With `amountFormat: 'decimal-string'` (the default) a decimal string such
   * as `"100.10"`, sent as written; with `'minor-units'` a bigint, a safe integer or a string of
   * digits. Floating-point numbers are refused: they cannot hold cents exactly.
   */
  amount: string | bigint | number
  /** ISO 4217 code in capitals, e.g. `'EUR'`. */
  currency: string
  /** RFC 3339 with a zone (`2025-01-31T12:00:00Z`, `…+02:00`) or a `Date`. Defaults to the time of the decision. */
  timestamp?: string | Date
  account: TracerAccount
  segment?: TracerSegment
  portfolio?: TracerPortfolio
  merchant?: TracerMerchant
  metadata?: TracerMetadata
}

/** The body of `POST /v1/validations`. */
export interface ValidationRequest {
  requestId: string
  transactionType: TransactionType
  subType?: string
  amount: string | number
  currency: string
  transactionTimestamp: string
  account: TracerAccount
  segment?: TracerSegment
  portfolio?: TracerPortfolio
  merchant?: TracerMerchant
  metadata?: TracerMetadata
}

export const TRANSACTION_TYPES: readonly TransactionType[] = ['CARD', 'WIRE', 'PIX', 'CRYPTO']
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const CURRENCY = /^[A-Z]{3}$/
const COUNTRY = /^[A-Z]{2}$/
const MERCHANT_CATEGORY = /^\d{4}$/
const METADATA_KEY = /^[A-Za-z0-9_]{1,64}$/
/** No sign, exponent or leading zeros: exactly what a person would write on an invoice. */
const DECIMAL = /^(?:0|[1-9]\d*)(?:\.\d+)?$/
const DIGITS = /^[1-9]\d*$/
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/
const MAX_AMOUNT_LENGTH = 64
const MAX_NAME_LENGTH = 255
const MAX_SUB_TYPE_LENGTH = 50
const MAX_METADATA_ENTRIES = 50
const MAX_METADATA_DEPTH = 5
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const FIELDS = ['type', 'subType', 'amount', 'currency', 'timestamp', 'account', 'segment', 'portfolio', 'merchant', 'metadata']
const ACCOUNT_FIELDS = ['accountId', 'type', 'status', 'metadata']
const SEGMENT_FIELDS = ['segmentId', 'name', 'metadata']
const PORTFOLIO_FIELDS = ['portfolioId', 'name', 'metadata']
const MERCHANT_FIELDS = ['merchantId', 'name', 'category', 'country', 'metadata']

function fail(field: string, accepted: string): never {
  throw invalidCheckpoint(`transaction.${field}`, accepted)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** A key as it may appear in a field name: plain keys as they are, others quoted and cut short. */
function keyName(key: string): string {
  return METADATA_KEY.test(key) ? key : JSON.stringify(key.slice(0, 64))
}

/** A misspelt field would otherwise vanish and let a rule run without the data it needs. */
function known(value: Record<string, unknown>, field: string, fields: readonly string[]): Record<string, unknown> {
  for (const key of Object.keys(value)) {
    if (!fields.includes(key)) {
      fail(
        field === '' ? keyName(key) : `${field}.${keyName(key)}`,
        `no such field (${field || 'a transaction'} takes ${fields.join(', ')})`,
      )
    }
  }
  return value
}

function object(value: unknown, field: string, fields: readonly string[], accepted: string): Record<string, unknown> {
  if (!isPlainObject(value)) fail(field, accepted)
  return known(value, field, fields)
}

function text(value: unknown, field: string, max = MAX_NAME_LENGTH): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) fail(field, `a non-empty string of at most ${max} characters`)
  return value
}

function uuid(value: unknown, field: string): string {
  if (typeof value !== 'string' || !UUID.test(value)) fail(field, 'a UUID such as "3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f"')
  return value
}

function amountOf(value: unknown, format: AmountFormat): string | number {
  if (format === 'decimal-string') {
    if (typeof value === 'string' && value.length <= MAX_AMOUNT_LENGTH && DECIMAL.test(value) && /[1-9]/.test(value)) return value
    if (typeof value === 'bigint') {
      fail(
        'amount',
        `a positive decimal string such as "100.10" (for integer minor units set the backend's \`amountFormat: 'minor-units'\`)`,
      )
    }
    if (typeof value === 'number')
      fail('amount', 'a positive decimal string such as "100.10"; numbers are refused because floating point loses cents')
    fail(
      'amount',
      'a positive decimal string such as "100.10" (digits, then optionally "." and decimals; no sign, exponent or leading zeros)',
    )
  }
  const minor = 'a positive whole number of minor units (bigint, safe integer or a string of digits) up to 9007199254740991'
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return value
    fail('amount', minor)
  }
  let units: bigint | undefined
  if (typeof value === 'bigint') units = value
  else if (typeof value === 'string' && value.length <= 16 && DIGITS.test(value)) units = BigInt(value)
  if (units === undefined || units <= 0n || units > MAX_SAFE) fail('amount', minor)
  return Number(units)
}

function daysIn(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate()
}

function timestampOf(value: unknown, now: () => Date): string {
  if (value === undefined) return now().toISOString()
  const accepted = 'an RFC 3339 date-time with a zone, such as "2025-01-31T12:00:00Z" or "2025-01-31T14:00:00+02:00", or a valid Date'
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) fail('timestamp', accepted)
    return value.toISOString()
  }
  if (typeof value !== 'string') fail('timestamp', accepted)
  const match = RFC3339.exec(value)
  if (match === null) fail('timestamp', accepted)
  const [year, month, day, hour, minute, second, offsetHour, offsetMinute] = match
    .slice(1)
    .map((part) => (part === undefined ? 0 : Number(part)))
  const valid =
    month !== undefined &&
    month >= 1 &&
    month <= 12 &&
    day !== undefined &&
    day >= 1 &&
    day <= daysIn(year ?? 0, month) &&
    (hour ?? 0) <= 23 &&
    (minute ?? 0) <= 59 &&
    (second ?? 0) <= 59 &&
    (offsetHour ?? 0) <= 23 &&
    (offsetMinute ?? 0) <= 59
  if (!valid) fail('timestamp', accepted)
  return value
}

/** JSON values only, copied, so nothing the app holds can change (or break) the body later. */
function jsonValue(value: unknown, field: string, depth: number): MetadataValue {
  const accepted = `a JSON value (string, finite number, boolean, null, array or plain object, nested at most ${MAX_METADATA_DEPTH} deep)`
  if (typeof value === 'string' || typeof value === 'boolean' || value === null) return value
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(field, accepted)
    return value
  }
  if (depth >= MAX_METADATA_DEPTH) fail(field, accepted)
  if (Array.isArray(value)) return value.map((item, index) => jsonValue(item, `${field}.${index}`, depth + 1))
  if (!isPlainObject(value)) fail(field, accepted)
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, jsonValue(item, `${field}.${keyName(key)}`, depth + 1)]))
}

function metadataOf(value: unknown, field: string): TracerMetadata {
  if (!isPlainObject(value)) fail(field, 'an object of custom fields')
  const entries = Object.entries(value)
  if (entries.length > MAX_METADATA_ENTRIES) fail(field, `at most ${MAX_METADATA_ENTRIES} entries`)
  return Object.fromEntries(
    entries.map(([key, item]) => {
      if (!METADATA_KEY.test(key)) fail(`${field}.${keyName(key)}`, 'a key of 1 to 64 letters, digits or "_"')
      return [key, jsonValue(item, `${field}.${key}`, 1)]
    }),
  )
}

function withMetadata<T extends object>(target: T, source: Record<string, unknown>, field: string): T {
  if (source.metadata !== undefined) Object.assign(target, { metadata: metadataOf(source.metadata, `${field}.metadata`) })
  return target
}

function optionalName<T extends object>(target: T, source: Record<string, unknown>, field: string): T {
  if (source.name !== undefined) Object.assign(target, { name: text(source.name, `${field}.name`) })
  return target
}

function accountOf(value: unknown): TracerAccount {
  const account = object(value, 'account', ACCOUNT_FIELDS, 'an object { accountId, type, status, metadata? }')
  const result: TracerAccount = {
    accountId: uuid(account.accountId, 'account.accountId'),
    type: text(account.type, 'account.type'),
    status: text(account.status, 'account.status'),
  }
  return withMetadata(result, account, 'account')
}

function segmentOf(value: unknown): TracerSegment {
  const segment = object(value, 'segment', SEGMENT_FIELDS, 'an object { segmentId, name?, metadata? }')
  const result: TracerSegment = { segmentId: uuid(segment.segmentId, 'segment.segmentId') }
  return withMetadata(optionalName(result, segment, 'segment'), segment, 'segment')
}

function portfolioOf(value: unknown): TracerPortfolio {
  const portfolio = object(value, 'portfolio', PORTFOLIO_FIELDS, 'an object { portfolioId, name?, metadata? }')
  const result: TracerPortfolio = { portfolioId: uuid(portfolio.portfolioId, 'portfolio.portfolioId') }
  return withMetadata(optionalName(result, portfolio, 'portfolio'), portfolio, 'portfolio')
}

function merchantOf(value: unknown): TracerMerchant {
  const merchant = object(value, 'merchant', MERCHANT_FIELDS, 'an object { merchantId, name, category, country, metadata? }')
  const { category, country } = merchant
  if (typeof category !== 'string' || !MERCHANT_CATEGORY.test(category)) {
    fail('merchant.category', 'a merchant category code of four digits, such as "5411"')
  }
  if (typeof country !== 'string' || !COUNTRY.test(country))
    fail('merchant.country', 'an ISO 3166-1 alpha-2 country code in capitals, such as "US"')
  const result: TracerMerchant = {
    merchantId: uuid(merchant.merchantId, 'merchant.merchantId'),
    name: text(merchant.name, 'merchant.name'),
    category,
    country,
  }
  return withMetadata(result, merchant, 'merchant')
}

/**
 * Checks a transaction field by field and builds the validation request, so data Tracer would
 * refuse becomes the app's 400 naming the field — before any call is made.
 */
export function validationRequest(
  transaction: unknown,
  requestId: string,
  amountFormat: AmountFormat,
  now: () => Date = () => new Date(),
): ValidationRequest {
  if (!isPlainObject(transaction)) throw invalidCheckpoint('transaction', 'an object { type, amount, currency, account, … }')
  const tx = known(transaction, '', FIELDS)
  if (!TRANSACTION_TYPES.includes(tx.type as TransactionType)) fail('type', `one of ${TRANSACTION_TYPES.join(', ')}`)
  const amount = amountOf(tx.amount, amountFormat)
  if (typeof tx.currency !== 'string' || !CURRENCY.test(tx.currency)) fail('currency', 'an ISO 4217 code in capitals, such as "EUR"')
  const body: ValidationRequest = {
    requestId,
    transactionType: tx.type as TransactionType,
    amount,
    currency: tx.currency,
    transactionTimestamp: timestampOf(tx.timestamp, now),
    account: accountOf(tx.account),
  }
  if (tx.subType !== undefined) body.subType = text(tx.subType, 'subType', MAX_SUB_TYPE_LENGTH)
  if (tx.segment !== undefined) body.segment = segmentOf(tx.segment)
  if (tx.portfolio !== undefined) body.portfolio = portfolioOf(tx.portfolio)
  if (tx.merchant !== undefined) body.merchant = merchantOf(tx.merchant)
  if (tx.metadata !== undefined) body.metadata = metadataOf(tx.metadata, 'metadata')
  return body
}
