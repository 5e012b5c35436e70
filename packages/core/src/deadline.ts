import { AbortSource, neverAbortedSource } from './abort.js'
import { ABORT_TIMEOUT, abortError } from './transport.js'

/**
 * One decision's time budget: a single timer, a promise that rejects when the budget runs
 * out (or the client leaves), and an AbortSignal for backends that do I/O.
 *
 * The AbortController is created only when a backend reads `signal`: an in-process backend
 * answers without ever looking at it, and an AbortController per request was the largest
 * single cost of a local decision.
 */
/** What a backend call is bounded by: a real {@link Deadline}, or none for in-process backends. */
export interface Budget {
  readonly at: number
  /** Rejects when the budget is gone; `null` when nothing can interrupt the call. */
  readonly expired: Promise<never> | null
  readonly reason: symbol | undefined
  readonly signal: AbortSignal
  /** The same abort, as an {@link AbortSource}: what Sallyport's transport listens to. */
  source(): AbortSource
  abort(reason: symbol): void
  clear(): void
}

const neverAborted = new AbortController().signal

/**
 * The budget of a decision made entirely in process: no I/O, so no timer could fire before
 * it returns and no abort could stop it. It costs nothing: no timer, no promise, no signal.
 */
export class InProcessBudget implements Budget {
  readonly at: number
  readonly expired: null = null
  readonly reason: undefined = undefined
  readonly signal: AbortSignal = neverAborted
  /** `at`: the `performance.now()` value the decision must be done by (its start plus the budget). */
  constructor(at: number) {
    this.at = at
  }
  source(): AbortSource {
    return neverAbortedSource
  }
  abort(): void {}
  clear(): void {}
}

export class Deadline implements Budget {
  /** `performance.now()` value by which everything must be done. */
  readonly at: number
  /** Rejects with the abort error when the deadline passes or `abort()` is called; never resolves. */
  readonly expired: Promise<never>
  #reason: symbol | undefined
  #controller: AbortController | undefined
  #source: AbortSource | undefined
  #reject!: (error: unknown) => void
  readonly #timer: NodeJS.Timeout
  #children: Deadline[] | undefined

  constructor(budgetMs: number, parent?: Deadline) {
    this.at = Math.min(performance.now() + budgetMs, parent?.at ?? Number.POSITIVE_INFINITY)
    this.expired = new Promise<never>((_resolve, reject) => {
      this.#reject = reject
    })
    this.expired.catch(() => {})
    this.#timer = setTimeout(() => this.abort(ABORT_TIMEOUT), Math.max(0, this.at - performance.now()))
    if (parent !== undefined) {
      if (parent.reason !== undefined) this.abort(parent.reason)
      else {
        parent.#children ??= []
        parent.#children.push(this)
      }
    }
  }

  /** Why it was aborted (`ABORT_TIMEOUT`, `ABORT_CLIENT_GONE`), or `undefined`. */
  get reason(): symbol | undefined {
    return this.#reason
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#reason !== undefined) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  source(): AbortSource {
    if (this.#source === undefined) {
      this.#source = new AbortSource()
      if (this.#reason !== undefined) this.#source.abort(this.#reason)
    }
    return this.#source
  }

  abort(reason: symbol): void {
    if (this.#reason !== undefined) return
    this.#reason = reason
    clearTimeout(this.#timer)
    this.#controller?.abort(reason)
    this.#source?.abort(reason)
    this.#reject(abortError(reason))
    for (const child of this.#children ?? []) child.abort(reason)
  }

  /** Stops the timer once the decision is made. */
  clear(): void {
    clearTimeout(this.#timer)
  }
}
