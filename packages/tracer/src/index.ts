import { randomUUID } from 'node:crypto'
import {
  type BackendVerdict,
  checkOptions,
  type DecisionBackend,
  type DecisionInput,
  type HttpVendorCall,
  httpVendor,
  SallyportError,
  shape,
} from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { replyError, verdictFrom } from './reply.js'
import { type AmountFormat, type TracerTransaction, validationRequest } from './transaction.js'

export type {
  AmountFormat,
  MetadataValue,
  TracerAccount,
  TracerMerchant,
  TracerMetadata,
  TracerPortfolio,
  TracerSegment,
  TracerTransaction,
  TransactionType,
  ValidationRequest,
} from './transaction.js'

/**
 * Maps the object a checkpoint's `transaction` extractor returned to a Tracer transaction,
 * for apps whose own shape differs. Return `null` to let the request through unvalidated.
 */
export type TransactionMapper = (transaction: Record<string, unknown>, input: DecisionInput) => TracerTransaction | null

export interface TracerOptions {
  /**
   * Sent as the `X-API-Key` header. Never logged, never in a URL or an error message. Typed to
   * take `process.env.…` as it is: unset or empty, `tracer()` throws `SP_INVALID_OPTION` naming
   * `TRACER_API_KEY`.
   */
  apiKey: string | undefined
  /** Where Tracer runs, e.g. `https://tracer.internal.example`; `/v1/validations` is appended. */
  baseUrl: string
  /**
   * Maps what the checkpoint's `transaction` extractor returns to a {@link TracerTransaction}.
   * Defaults to none: the extractor's object must already be one.
   */
  transaction?: TransactionMapper
  /** How amounts travel: `'decimal-string'` (`"100.10"`) or integer `'minor-units'` (`10010`). Defaults to `'decimal-string'`. */
  amountFormat?: AmountFormat
  /** Budget in ms, used when the gate sets no `timeoutMs`. Defaults to 100, Tracer's recommended client timeout. */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher to use instead of Sallyport's own keep-alive pool. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections to Tracer. A decision that finds them all busy waits inside its
   * budget; one still waiting at the deadline falls back with reason `pool_saturated`, which
   * never opens the circuit breaker. Defaults to 128.
   */
  connections?: number
}

export const DEFAULT_TIMEOUT_MS = 100
const VALIDATIONS_PATH = 'v1/validations'

/** Credentials in a URL end up in logs; a query or fragment would be silently dropped. */
function plainHttpUrl(value: string): boolean {
  try {
    const { protocol, username, password, search, hash } = new URL(value)
    return (protocol === 'https:' || protocol === 'http:') && username === '' && password === '' && search === '' && hash === ''
  } catch {
    return false
  }
}

/** Visible ASCII only: anything else could split the header or hide in logs. */
const API_KEY = /^[\x21-\x7e]{1,4096}$/
const integer = (min: number, max: number, unit = '') =>
  shape.number().int().min(min).max(max).describe(`an integer ${unit}from ${min} to ${max}`).optional()

const optionsShape = shape.strictObject({
  apiKey: shape.string().regex(API_KEY).describe('a non-empty API key of visible ASCII characters'),
  baseUrl: shape
    .string()
    .refine(plainHttpUrl)
    .describe('an http(s) URL without credentials, query or fragment, such as "https://tracer.internal.example"'),
  transaction: shape
    .custom<TransactionMapper>(
      (value) => typeof value === 'function',
      'a function (transaction, input) returning a Tracer transaction or null',
    )
    .optional(),
  amountFormat: shape.enum(['decimal-string', 'minor-units']).describe("'decimal-string' or 'minor-units'").optional(),
  timeoutMs: integer(1, 60_000, 'number of milliseconds '),
  maxResponseSize: integer(1024, 16 * 1024 * 1024, 'number of bytes '),
  dispatcher: shape
    .custom<Dispatcher>((value) => typeof value === 'object' && value !== null, 'an undici Dispatcher (Agent, Pool, …)')
    .optional(),
  connections: integer(1, 4096),
})

function endpointOf(base: string): URL {
  const url = new URL(base)
  if (!url.pathname.endsWith('/')) url.pathname += '/'
  return new URL(VALIDATIONS_PATH, url)
}

/** The mapper is the app's code: its failure is the app's 400, not a backend outage. */
function mapTransaction(mapper: TransactionMapper, transaction: Record<string, unknown>, input: DecisionInput): unknown {
  try {
    return mapper(transaction, input)
  } catch (error) {
    if (error instanceof SallyportError) throw error
    throw new SallyportError(
      'SP_INVALID_CHECKPOINT',
      'Invalid checkpoint field `transaction`: expected data the `transaction` option can map (it threw).',
      { option: 'transaction', cause: error },
    )
  }
}

/** One validation call; its `requestId` is the one the reply must answer for. */
interface TracerCall extends HttpVendorCall {
  requestId: string
}

/**
 * Tracer transaction validation (`POST /v1/validations`) as a decision backend for checkout,
 * transfer and payout checkpoints. The checkpoint's `transaction` is checked field by field
 * before anything is sent (bad data is the app's 400); ALLOW, DENY and REVIEW become allow,
 * deny and review; the validation id becomes the decision's `requestId` for the audit log.
 * Requests without a checkpoint transaction are let through without a call.
 */
export function tracer(options: TracerOptions): DecisionBackend {
  // Fails fast, naming the option and never its value; an unset key names the variable the README reads it from.
  const checked = checkOptions('tracer', optionsShape, options, {
    env: { apiKey: 'TRACER_API_KEY' },
    expected: 'an object { apiKey, baseUrl, … }',
  })
  const { apiKey, transaction: mapper, amountFormat = 'decimal-string', timeoutMs = DEFAULT_TIMEOUT_MS } = checked
  const { connections, maxResponseSize, dispatcher } = checked

  return httpVendor<TracerCall>({
    name: 'tracer',
    label: 'Tracer',
    expected: 'decision',
    endpoint: endpointOf(checked.baseUrl),
    transport: {
      ...(connections === undefined ? {} : { connections }),
      ...(maxResponseSize === undefined ? {} : { maxResponseSize }),
      ...(dispatcher === undefined ? {} : { dispatcher }),
    },
    timeoutMs,
    // 200 replays a repeated requestId's first result; 201 is a new validation.
    accepts: (status) => status === 200 || status === 201,
    refusal: (reply) => replyError(reply, apiKey),
    request(input) {
      const given = input.checkpoint?.transaction
      if (given === undefined) return { verdict: 'allow', reason: 'no_transaction' }
      const transaction = mapper === undefined ? given : mapTransaction(mapper, given, input)
      if (transaction === null || transaction === undefined) return { verdict: 'allow', reason: 'no_transaction' }
      // One id per decision: the transport's retries resend the same body, so Tracer answers a retry with the first result.
      const requestId = randomUUID()
      const json = validationRequest(transaction, requestId, amountFormat)
      return { requestId, headers: { 'x-api-key': apiKey, 'x-request-id': requestId }, json }
    },
    verdict: (json, reply, _input, call): BackendVerdict => verdictFrom(json, reply, call.requestId, apiKey),
  })
}
