/** A pino-compatible logger: the methods Gatehouse calls, with pino's `(object, message)` order. */
export interface Logger {
  warn(object: Record<string, unknown>, message?: string): void
  error(object: Record<string, unknown>, message?: string): void
  debug?(object: Record<string, unknown>, message?: string): void
}

/** Codes of the misconfiguration warnings; each can be turned off in `warnings`. */
export type WarningCode =
  | 'GH_WARN_XFF_UNTRUSTED'
  | 'GH_WARN_TRUST_ALL_PROXIES'
  | 'GH_WARN_COOKIE_REJECTED'
  | 'GH_WARN_BACKEND_REFUSED'
  | 'GH_WARN_EPHEMERAL_SECRET'
  | 'GH_WARN_LIST_UNREADABLE'
  | 'GH_WARN_POOL_SATURATED'
  | 'GH_WARN_ON_ERROR_OPEN'

/** Writes to stderr; what `logger` defaults to. Debug output is dropped. */
export const consoleLogger: Logger = {
  warn(object, message) {
    console.warn(`[gatehouse] ${String(object.code ?? 'warning')}: ${message ?? ''}`)
  },
  error(object, message) {
    console.error(`[gatehouse] ${String(object.code ?? 'error')}: ${message ?? ''}`, object.err ?? '')
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

  once(code: WarningCode, message: string, details: Record<string, unknown> = {}): void {
    if (this.#disabled.has(code) || this.#seen.has(code)) return
    this.#seen.add(code)
    try {
      this.#logger.warn({ code, ...details }, message)
    } catch {
      // A broken logger must not break requests.
    }
  }
}
