/** A pino-compatible logger: the methods Sallyport calls, with pino's `(object, message)` order. */
export interface Logger {
  warn(object: Record<string, unknown>, message?: string): void
  error(object: Record<string, unknown>, message?: string): void
  debug?(object: Record<string, unknown>, message?: string): void
}

/** Codes of the misconfiguration warnings; each can be turned off in `warnings`. */
export type WarningCode =
  | 'SP_WARN_XFF_UNTRUSTED'
  | 'SP_WARN_TRUST_ALL_PROXIES'
  | 'SP_WARN_COOKIE_REJECTED'
  | 'SP_WARN_BACKEND_REFUSED'
  | 'SP_WARN_EPHEMERAL_SECRET'
  | 'SP_WARN_LIST_UNREADABLE'
  | 'SP_WARN_POOL_SATURATED'
  | 'SP_WARN_ON_ERROR_OPEN'
  | 'SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER'
  | 'SP_WARN_CHECKPOINT_UNREAD'

/** Writes to stderr; what `logger` defaults to. Debug output is dropped. */
export const consoleLogger: Logger = {
  warn(object, message) {
    console.warn(`[sallyport] ${String(object.code ?? 'warning')}: ${message ?? ''}`)
  },
  error(object, message) {
    console.error(`[sallyport] ${String(object.code ?? 'error')}: ${message ?? ''}`, object.err ?? '')
  },
}

/** Logs each warning code once per gate, unless the user switched it off. */
export class Warnings {
  readonly #logger: Logger
  readonly #disabled: ReadonlySet<string>
  readonly #seen = new Set<string>()

  constructor(logger: Logger, disabled: ReadonlySet<string>) {
    this.#logger = logger
    this.#disabled = disabled
  }

  /** The warning is on and not yet logged: worth the work of checking for it. */
  pending(code: WarningCode): boolean {
    return !this.#disabled.has(code) && !this.#seen.has(code)
  }

  once(code: WarningCode, message: string, details: Record<string, unknown> = {}): void {
    if (!this.pending(code)) return
    this.#seen.add(code)
    try {
      this.#logger.warn({ code, ...details }, message)
    } catch {
      // A broken logger must not break requests.
    }
  }
}
