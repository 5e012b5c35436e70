import { type AnyShape, type Issue, invalidCheckpoint, type SallyportError, shape } from '@sallyport/core'

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

const TRANSACTION_TYPES = ['CARD', 'WIRE', 'PIX', 'CRYPTO'] as const
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/
const METADATA_KEY = /^[A-Za-z0-9_]{1,64}$/
/** No sign, exponent or leading zeros: exactly what a person would write on an invoice. */
const DECIMAL = /^(?:0|[1-9]\d*)(?:\.\d+)?$/
const DIGITS = /^[1-9]\d*$/
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/
const MAX_AMOUNT_LENGTH = 64
const MAX_METADATA_ENTRIES = 50
const MAX_METADATA_DEPTH = 5
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

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

const uuid = shape.string().regex(UUID).describe('a UUID such as "3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f"')
const text = (max: number) => shape.string().min(1).max(max).describe(`a non-empty string of at most ${max} characters`)
const name = text(255)
const matching = (pattern: RegExp, accepted: string) => shape.string().regex(pattern).describe(accepted)
/** Checked (and copied) by `metadataOf` as the body is built, with the field's name in its errors. */
const metadata = shape.unknown().optional()
/** These fields and no other: a misspelt field would otherwise vanish and let a rule run without the data it needs. */
const object = <S extends Record<string, AnyShape>>(fields: S, accepted: string) =>
  shape.strictObject(fields).refine(isPlainObject).describe(accepted)

const transactionShape = object(
  {
    type: shape.enum(TRANSACTION_TYPES).describe(`one of ${TRANSACTION_TYPES.join(', ')}`),
    subType: text(50).optional(),
    amount: shape.unknown(), // as `amountFormat` says: see amountOf
    currency: matching(/^[A-Z]{3}$/, 'an ISO 4217 code in capitals, such as "EUR"'),
    timestamp: shape.unknown(), // see timestampOf
    account: object({ accountId: uuid, type: name, status: name, metadata }, 'an object { accountId, type, status, metadata? }'),
    segment: object({ segmentId: uuid, name: name.optional(), metadata }, 'an object { segmentId, name?, metadata? }').optional(),
    portfolio: object({ portfolioId: uuid, name: name.optional(), metadata }, 'an object { portfolioId, name?, metadata? }').optional(),
    merchant: object(
      {
        merchantId: uuid,
        name,
        category: matching(/^\d{4}$/, 'a merchant category code of four digits, such as "5411"'),
        country: matching(/^[A-Z]{2}$/, 'an ISO 3166-1 alpha-2 country code in capitals, such as "US"'),
        metadata,
      },
      'an object { merchantId, name, category, country, metadata? }',
    ).optional(),
    metadata,
  },
  'an object { type, amount, currency, account, … }',
)

/** The checker's first problem as the app's 400, naming the field: `transaction.account.accountId`. */
function checkpointError({ code, path, message, keys = [], known = [] }: Issue): SallyportError {
  const field = ['transaction', ...path.map(String)]
  if (code !== 'unrecognized_keys') return invalidCheckpoint(field.join('.'), message)
  const where = path.length === 0 ? 'a transaction' : path.join('.')
  return invalidCheckpoint([...field, keyName(keys[0] ?? '')].join('.'), `no such field (${where} takes ${known.join(', ')})`)
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
    if (typeof value === 'number') {
      fail('amount', 'a positive decimal string such as "100.10"; numbers are refused because floating point loses cents')
    }
    fail(
      'amount',
      'a positive decimal string such as "100.10" (digits, then optionally "." and decimals; no sign, exponent or leading zeros)',
    )
  }
  let units: bigint | undefined
  if (typeof value === 'number' && Number.isSafeInteger(value)) units = BigInt(value)
  else if (typeof value === 'bigint') units = value
  else if (typeof value === 'string' && value.length <= 16 && DIGITS.test(value)) units = BigInt(value)
  if (units === undefined || units <= 0n || units > MAX_SAFE) {
    fail('amount', 'a positive whole number of minor units (bigint, safe integer or a string of digits) up to 9007199254740991')
  }
  return Number(units)
}

function timestampOf(value: unknown, now: () => Date): string {
  if (value === undefined) return now().toISOString()
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString()
  const match = typeof value === 'string' ? RFC3339.exec(value) : null
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, offsetHour = 0, offsetMinute = 0] =
    match?.slice(1).map((part) => (part === undefined ? 0 : Number(part))) ?? []
  // Date.UTC(year, month, 0) is the last day of `month`.
  const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate()
  const valid = month >= 1 && month <= 12 && day >= 1 && day <= lastDay && hour <= 23 && minute <= 59 && second <= 59
  if (match === null || !valid || offsetHour > 23 || offsetMinute > 59) {
    fail('timestamp', 'an RFC 3339 date-time with a zone, such as "2025-01-31T12:00:00Z" or "2025-01-31T14:00:00+02:00", or a valid Date')
  }
  return value as string
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

/** A checked account, segment, portfolio or merchant, copied without absent fields, its metadata checked. */
function copyOf<T>(value: Record<string, unknown>, field: string): T {
  const copy: Record<string, unknown> = {}
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) copy[key] = key === 'metadata' ? metadataOf(item, `${field}.metadata`) : item
  }
  return copy as T
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
  const checked = transactionShape.safeParse(transaction)
  if (!checked.success) throw checkpointError(checked.error.issues[0] as Issue)
  const tx = checked.data
  const body: ValidationRequest = {
    requestId,
    transactionType: tx.type,
    amount: amountOf(tx.amount, amountFormat),
    currency: tx.currency,
    transactionTimestamp: timestampOf(tx.timestamp, now),
    account: copyOf<TracerAccount>(tx.account, 'account'),
  }
  if (tx.subType !== undefined) body.subType = tx.subType
  if (tx.segment !== undefined) body.segment = copyOf<TracerSegment>(tx.segment, 'segment')
  if (tx.portfolio !== undefined) body.portfolio = copyOf<TracerPortfolio>(tx.portfolio, 'portfolio')
  if (tx.merchant !== undefined) body.merchant = copyOf<TracerMerchant>(tx.merchant, 'merchant')
  if (tx.metadata !== undefined) body.metadata = metadataOf(tx.metadata, 'metadata')
  return body
}
