import type { FailureClass } from './types.js'

/**
 * Every error code Sallyport throws. Match on `code`, never on the message.
 * The `SP_BACKEND_*` codes name a backend failure class; the core maps them through `onError`.
 */
export type SallyportErrorCode =
  | 'SP_INVALID_OPTION'
  | 'SP_INVALID_CHECKPOINT'
  | 'SP_BACKEND_TIMEOUT'
  | 'SP_BACKEND_NETWORK'
  | 'SP_BACKEND_SERVER'
  | 'SP_BACKEND_CLIENT'
  | 'SP_BACKEND_INVALID'
  | 'SP_CLIENT_GONE'

const failureByCode: Partial<Record<SallyportErrorCode, FailureClass>> = {
  SP_BACKEND_TIMEOUT: 'timeout',
  SP_BACKEND_NETWORK: 'network',
  SP_BACKEND_SERVER: 'server',
  SP_BACKEND_CLIENT: 'client',
  SP_BACKEND_INVALID: 'invalid',
}

const codeByFailure: Record<FailureClass, SallyportErrorCode> = {
  timeout: 'SP_BACKEND_TIMEOUT',
  network: 'SP_BACKEND_NETWORK',
  server: 'SP_BACKEND_SERVER',
  client: 'SP_BACKEND_CLIENT',
  invalid: 'SP_BACKEND_INVALID',
}

export interface SallyportErrorDetails {
  cause?: unknown
  /** HTTP status of the backend reply, when there was one. */
  status?: number
  /** The vendor's own error code (e.g. `TRC-1001`). */
  vendorCode?: string
  /** Seconds from a 429/503 `retry-after` header. */
  retryAfter?: number
  /** The option or field at fault. */
  option?: string
  /**
   * What the decision records as its reason when this failure decides it, instead of the
   * failure class (e.g. `'no_client_ip'`): the class still picks the `onError` verdict.
   */
  reason?: string
}

/**
 * Marks every SallyportError, whichever copy of this module made it: an app that imports the
 * ES module build while a dependency requires the CommonJS one has two classes in one process.
 */
const BRAND = Symbol.for('sallyport.error')

export class SallyportError extends Error {
  /**
   * `error instanceof SallyportError` holds for an error from either build. A subclass keeps
   * the ordinary test: only its own instances match it.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the class on the right of instanceof, a subclass too.
    if (this !== SallyportError) return Function.prototype[Symbol.hasInstance].call(this, value)
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true
  }

  override readonly name = 'SallyportError'
  readonly code: SallyportErrorCode
  readonly status: number | undefined
  readonly vendorCode: string | undefined
  readonly retryAfter: number | undefined
  readonly option: string | undefined
  /** The decision's reason when this failure decides it; `undefined` means the failure class. */
  readonly reason: string | undefined
  /** HTTP status for errors handed to the application (Express and Koa error handlers read it). */
  readonly statusCode: number | undefined
  /** Koa shows the message of an exposed error to the client; only set for the client's own mistakes. */
  readonly expose: boolean

  constructor(code: SallyportErrorCode, message: string, details: SallyportErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause })
    this.code = code
    this.status = details.status
    this.vendorCode = details.vendorCode
    this.retryAfter = details.retryAfter
    this.option = details.option
    this.reason = details.reason
    this.statusCode = code === 'SP_INVALID_CHECKPOINT' ? 400 : undefined
    this.expose = code === 'SP_INVALID_CHECKPOINT'
  }

  /** The failure class of a backend error, or `undefined` for other codes. */
  get failure(): FailureClass | undefined {
    return failureByCode[this.code]
  }

  static backend(failure: FailureClass, message: string, details?: SallyportErrorDetails): SallyportError {
    return new SallyportError(codeByFailure[failure], message, details)
  }
}
// On the prototype, not a field: it costs nothing per error and never shows in logs or JSON.
Object.defineProperty(SallyportError.prototype, BRAND, { value: true })

/**
 * A checkpoint's data (say, a transaction) that the backend cannot accept. It is the
 * application's error, not the backend's: it reaches the route's error handling as a 400
 * and never becomes a fallback verdict.
 */
export function invalidCheckpoint(field: string, accepted: string): SallyportError {
  return new SallyportError('SP_INVALID_CHECKPOINT', `Invalid checkpoint field \`${field}\`: expected ${accepted}.`, { option: field })
}

/**
 * For a backend that cannot judge a request without the client IP when none could be
 * determined: the decision follows `onError` for `client` failures (as the vendor's own
 * refusal would), with the reason `no_client_ip`. Never an allow without asking.
 */
export function noClientIp(backend: string): SallyportError {
  return SallyportError.backend('client', `${backend} needs the client IP, and none could be determined for this request.`, {
    reason: 'no_client_ip',
  })
}

/** The failure class of anything a backend threw: unknown errors count as `network`. */
export function failureOf(error: unknown): FailureClass {
  return (error instanceof SallyportError && error.failure) || 'network'
}

/**
 * A vendor's key that is not set, or empty: most often the environment variable the vendor's
 * README reads it from is unset where the app runs, so the message names that variable.
 * `true` when `value` is such a key.
 */
export function isUnsetKey(value: unknown): boolean {
  return value === undefined || value === null || value === ''
}

/** The error for an {@link isUnsetKey unset key}: `factory` is the vendor function (`'tracenow'`). */
export function unsetKey(factory: string, option: string, variable: string, value: unknown): SallyportError {
  const state = value === '' ? 'empty' : 'not set'
  return new SallyportError(
    'SP_INVALID_OPTION',
    `Invalid option \`${option}\` for ${factory}(): it is ${state}; set ${variable} or pass ${option}.`,
    {
      option,
    },
  )
}

/**
 * `Invalid option \`challenge.url\` for guard(): expected an http(s) URL.`: what an option
 * accepts, never the value it was given (a key, say). `factory` is the function the option was
 * given to (`'guard'`), when known.
 */
export function invalidOption(option: string, accepted: string, cause?: unknown, factory?: string): SallyportError {
  const where = factory === undefined ? '' : ` for ${factory}()`
  return new SallyportError('SP_INVALID_OPTION', `Invalid option \`${option}\`${where}: expected ${accepted}.`, {
    option,
    cause,
  })
}

/** `Unknown option \`x\` for trustedAccounts(): accepted options are a, b, c.` */
export function unknownOption(factory: string, option: string, accepted: readonly string[], cause?: unknown): SallyportError {
  return new SallyportError(
    'SP_INVALID_OPTION',
    `Unknown option \`${option}\` for ${factory}(): accepted options are ${accepted.join(', ')}.`,
    { option, cause },
  )
}

/** `Invalid options for trustedAccounts(): expected an object.`: the options as a whole (not an object, say). */
export function invalidOptions(factory: string, expected: string, option = 'options', cause?: unknown): SallyportError {
  return new SallyportError('SP_INVALID_OPTION', `Invalid options for ${factory}(): expected ${expected}.`, { option, cause })
}
