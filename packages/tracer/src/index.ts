import { randomUUID } from 'node:crypto'
import {
  type BackendVerdict,
  type DecisionBackend,
  type DecisionInput,
  isUnsetKey,
  parseJson,
  SallyportError,
  Transport,
  unsetKey,
} from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
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
}

export const DEFAULT_TIMEOUT_MS = 100
const VALIDATIONS_PATH = 'v1/validations'

const fn = z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function')
const baseUrl = z.string().refine((value) => {
  try {
    const url = new URL(value)
    // Credentials in a URL end up in logs; a query or fragment would be silently dropped.
    return (
      (url.protocol === 'https:' || url.protocol === 'http:') &&
      url.username === '' &&
      url.password === '' &&
      url.search === '' &&
      url.hash === ''
    )
  } catch {
    return false
  }
})

const schemas: Record<keyof TracerOptions, [z.ZodType, string]> = {
  // Visible ASCII only: anything else could split the header or hide in logs.
  apiKey: [z.string().regex(/^[\x21-\x7e]{1,4096}$/), 'a non-empty API key of visible ASCII characters'],
  baseUrl: [baseUrl, 'an http(s) URL without credentials, query or fragment, such as "https://tracer.internal.example"'],
  transaction: [fn, 'a function (transaction, input) returning a Tracer transaction or null'],
  amountFormat: [z.enum(['decimal-string', 'minor-units']), "'decimal-string' or 'minor-units'"],
  timeoutMs: [z.number().int().min(1).max(60_000), 'an integer number of milliseconds from 1 to 60000'],
  maxResponseSize: [
    z
      .number()
      .int()
      .min(1024)
      .max(16 * 1024 * 1024),
    'an integer number of bytes from 1024 to 16777216',
  ],
  dispatcher: [z.custom<Dispatcher>((value) => typeof value === 'object' && value !== null), 'an undici Dispatcher (Agent, Pool, …)'],
}
const required: ReadonlySet<keyof TracerOptions> = new Set(['apiKey', 'baseUrl'])

function invalid(option: string, accepted: string): SallyportError {
  return new SallyportError('SP_INVALID_OPTION', `Invalid option \`${option}\` for tracer(): expected ${accepted}.`, { option })
}

/** Fails fast, naming the option; the key's value never appears in the error. */
/** The options once checked: the key is set. */
type CheckedTracerOptions = TracerOptions & { apiKey: string }

function checkOptions(options: unknown): CheckedTracerOptions {
  if (typeof options !== 'object' || options === null) throw invalid('options', 'an object { apiKey, baseUrl, … }')
  for (const key of Object.keys(options)) {
    if (!(key in schemas)) throw invalid(key.slice(0, 64), `a known option (${Object.keys(schemas).join(', ')})`)
  }
  for (const [option, [schema, accepted]] of Object.entries(schemas) as Array<[keyof TracerOptions, [z.ZodType, string]]>) {
    const value = (options as Record<string, unknown>)[option]
    if (value === undefined && !required.has(option)) continue
    // The README reads the key from TRACER_API_KEY: an unset key is most often an unset variable.
    if (option === 'apiKey' && isUnsetKey(value)) throw unsetKey('tracer', option, 'TRACER_API_KEY', value)
    if (!schema.safeParse(value).success) throw invalid(option, accepted)
  }
  return options as CheckedTracerOptions
}

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

/**
 * Tracer transaction validation (`POST /v1/validations`) as a decision backend for checkout,
 * transfer and payout checkpoints. The checkpoint's `transaction` is checked field by field
 * before anything is sent (bad data is the app's 400); ALLOW, DENY and REVIEW become allow,
 * deny and review; the validation id becomes the decision's `requestId` for the audit log.
 * Requests without a checkpoint transaction are let through without a call.
 */
export function tracer(options: TracerOptions): DecisionBackend {
  const { apiKey, transaction: mapper, amountFormat = 'decimal-string', timeoutMs = DEFAULT_TIMEOUT_MS } = checkOptions(options)
  const endpoint = endpointOf(options.baseUrl)
  const transport = new Transport({
    ...(options.maxResponseSize === undefined ? {} : { maxResponseSize: options.maxResponseSize }),
    ...(options.dispatcher === undefined ? {} : { dispatcher: options.dispatcher }),
  })

  return {
    name: 'tracer',
    origin: endpoint.origin,
    timeoutMs,
    async decide(input, ctx): Promise<BackendVerdict> {
      const given = input.checkpoint?.transaction
      if (given === undefined) return { verdict: 'allow', reason: 'no_transaction' }
      const transaction = mapper === undefined ? given : mapTransaction(mapper, given, input)
      if (transaction === null || transaction === undefined) return { verdict: 'allow', reason: 'no_transaction' }
      // One id per decision: the transport's retries resend the same body, so Tracer answers a retry with the first result.
      const requestId = randomUUID()
      const body = validationRequest(transaction, requestId, amountFormat)
      const reply = await transport.request(
        { method: 'POST', url: endpoint, headers: { 'x-api-key': apiKey, 'x-request-id': requestId }, json: body },
        ctx,
      )
      if (reply.status !== 200 && reply.status !== 201) throw replyError(reply, apiKey)
      return verdictFrom(parseJson(reply), reply, requestId, apiKey)
    },
    close: () => transport.close(),
  }
}
