import { SallyportError } from './errors.js'
import type { DecideContext } from './types.js'

/**
 * Time, in one place: a decision's deadline, the abort it causes, and how a call that ended
 * by it is classified. The transport and the vendor packages ask this module, never a timer
 * of their own.
 */

/** Why a decision was aborted: its time ran out. */
export const ABORT_TIMEOUT = Symbol('sallyport.timeout')
/** Why a decision was aborted: the client went away, so nobody needs the answer. */
export const ABORT_CLIENT_GONE = Symbol('sallyport.client-gone')

/** The error a call ends with when its decision was aborted for `reason`. */
export function abortError(reason: unknown, cause?: unknown): SallyportError {
  // Without a cause the error says nothing about this request: one made once will do. When
  // a backend hangs every decision ends here, and an Error per decision costs a stack trace.
  if (cause !== undefined) return newAbortError(reason, { cause })
  if (reason === ABORT_CLIENT_GONE) {
    clientGoneError ??= newAbortError(reason)
    return clientGoneError
  }
  timeoutError ??= newAbortError(reason)
  return timeoutError
}
let clientGoneError: SallyportError | undefined
let timeoutError: SallyportError | undefined

function newAbortError(reason: unknown, details?: { cause: unknown }): SallyportError {
  if (reason === ABORT_CLIENT_GONE)
    return new SallyportError('SP_CLIENT_GONE', 'The client went away before the decision was made.', details)
  return SallyportError.backend('timeout', 'The decision backend did not answer within the deadline.', details)
}

/**
 * How Sallyport's transport hears that a decision was aborted: an object with the
 * EventEmitter methods undici accepts as a request's `signal`. An AbortController with a
 * listener costs about 5 µs per request; this costs an object. Backends that read
 * `ctx.signal` still get a real AbortSignal.
 */
export class AbortSource {
  aborted = false
  reason: unknown
  #listeners: Array<() => void> | undefined
  on(event: string, listener: () => void): this {
    if (event !== 'abort') return this
    if (this.aborted) {
      queueMicrotask(listener)
      return this
    }
    this.#listeners ??= []
    this.#listeners.push(listener)
    return this
  }
  once(event: string, listener: () => void): this {
    return this.on(event, listener)
  }
  removeListener(event: string, listener: () => void): this {
    const listeners = this.#listeners
    if (event !== 'abort' || listeners === undefined) return this
    const index = listeners.indexOf(listener)
    if (index >= 0) listeners.splice(index, 1)
    return this
  }
  off(event: string, listener: () => void): this {
    return this.removeListener(event, listener)
  }
  /** Aborts once; every listener runs, and a throwing one cannot stop the others. */
  abort(reason: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = reason
    const listeners = this.#listeners
    this.#listeners = undefined
    for (const listener of listeners ?? []) {
      try {
        listener()
      } catch {}
    }
  }
}

/** Where a call context hands Sallyport's transport its {@link AbortSource}. */
export const ABORT_SOURCE: unique symbol = Symbol('sallyport.abortSource')

/**
 * How a gate's call context hears that its call is waiting for one of the transport's local
 * connections: the transport calls it with `true` while the call waits and `false` once it
 * has one. A deadline that passes while a call still waits says nothing about the backend
 * (it never saw the call), so the gate neither holds it against the backend's breaker nor
 * calls it a timeout of the backend.
 */
export const CONNECTION_WAIT = Symbol('sallyport.connection-wait')

export interface ConnectionWaitListener {
  [CONNECTION_WAIT](waiting: boolean): void
}

/** What aborts a call: Sallyport's own {@link AbortSource} when the gate made `ctx`, else `ctx.signal`. */
export function abortOf(ctx: DecideContext): AbortSource | AbortSignal {
  const source = (ctx as { [ABORT_SOURCE]?: () => AbortSource })[ABORT_SOURCE]
  return typeof source === 'function' ? source.call(ctx) : ctx.signal
}

/** Calls `listener` once if `signal` aborts; returns a function that stops listening. */
export function onAbort(signal: AbortSource | AbortSignal, listener: () => void): () => void {
  if (signal instanceof AbortSignal) {
    signal.addEventListener('abort', listener, { once: true })
    return () => signal.removeEventListener('abort', listener)
  }
  signal.on('abort', listener)
  return () => signal.removeListener('abort', listener)
}

/**
 * One decision's time: the moment it must be done by, and the abort when that passes (or the
 * client leaves). Nothing is armed until a call has to wait: a decision answered in process
 * never reads `expired`, `signal` or `source()`, so it costs no timer, promise or
 * AbortController (an AbortController per request was once the largest single cost of a
 * local decision).
 */
export class Deadline {
  /** `performance.now()` value by which everything must be done. */
  readonly at: number
  #reason: symbol | undefined
  #timer: NodeJS.Timeout | undefined
  #expired: Promise<never> | undefined
  #reject: ((error: unknown) => void) | undefined
  #controller: AbortController | undefined
  #source: AbortSource | undefined
  #children: Deadline[] | undefined

  /** `at`: a `performance.now()` value; a child deadline never ends after its parent. */
  constructor(at: number, parent?: Deadline) {
    this.at = parent === undefined ? at : Math.min(at, parent.at)
    if (parent !== undefined) {
      if (parent.#reason !== undefined) this.#reason = parent.#reason
      else {
        parent.#children ??= []
        parent.#children.push(this)
      }
    }
  }

  /** A deadline `ms` from now. */
  static in(ms: number, parent?: Deadline): Deadline {
    return new Deadline(performance.now() + ms, parent)
  }

  /** Why it was aborted (`ABORT_TIMEOUT`, `ABORT_CLIENT_GONE`), or `undefined`. */
  get reason(): symbol | undefined {
    return this.#reason
  }

  /** It passed: a call it ended is a `timeout`, the backend's fault unless the call waited for a local connection. */
  get timedOut(): boolean {
    return this.#reason === ABORT_TIMEOUT
  }

  /** The client left: nothing that ends now says anything about the backend. */
  get clientGone(): boolean {
    return this.#reason === ABORT_CLIENT_GONE
  }

  /** Rejects with the abort error when the deadline passes or `abort()` is called; never resolves. */
  get expired(): Promise<never> {
    if (this.#expired === undefined) {
      this.#expired = new Promise<never>((_resolve, reject) => {
        this.#reject = reject
      })
      this.#expired.catch(() => {})
      if (this.#reason !== undefined) this.#reject?.(abortError(this.#reason))
      else this.#arm()
    }
    return this.#expired
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#reason !== undefined) this.#controller.abort(this.#reason)
      else this.#arm()
    }
    return this.#controller.signal
  }

  /** The same abort, as an {@link AbortSource}: what Sallyport's transport listens to. */
  source(): AbortSource {
    if (this.#source === undefined) {
      this.#source = new AbortSource()
      if (this.#reason !== undefined) this.#source.abort(this.#reason)
      else this.#arm()
    }
    return this.#source
  }

  #arm(): void {
    if (this.#timer !== undefined) return
    this.#timer = setTimeout(() => this.abort(ABORT_TIMEOUT), Math.max(0, this.at - performance.now()))
  }

  abort(reason: symbol): void {
    if (this.#reason !== undefined) return
    this.#reason = reason
    clearTimeout(this.#timer)
    this.#controller?.abort(reason)
    this.#source?.abort(reason)
    this.#reject?.(abortError(reason))
    for (const child of this.#children ?? []) child.abort(reason)
  }

  /** Stops the timer once the decision is made. */
  clear(): void {
    clearTimeout(this.#timer)
  }
}

/**
 * Waits `ms` within a call's deadline: rejects with a `timeout` failure as soon as the call is
 * aborted. The timer never outlives the wait. For backends that must pause between attempts.
 */
export function pause(ms: number, ctx: DecideContext, message = 'The decision ended while waiting.'): Promise<void> {
  const { signal } = ctx
  return new Promise((resolve, reject) => {
    const stopped = () => SallyportError.backend('timeout', message, { cause: signal.reason })
    if (signal.aborted) return reject(stopped())
    const onAbort = () => {
      clearTimeout(timer)
      reject(stopped())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    timer.unref()
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Runs `call` with a context whose deadline is `at` (never later than `ctx`'s) and no retries,
 * aborted when `ctx` is: for a backend's follow-up call that must end before the decision's
 * own deadline.
 */
export async function within<T>(ctx: DecideContext, at: number, call: (inner: DecideContext) => Promise<T>): Promise<T> {
  const deadline = new Deadline(Math.min(at, ctx.deadline))
  const forward = () => deadline.abort(ctx.signal.reason === ABORT_CLIENT_GONE ? ABORT_CLIENT_GONE : ABORT_TIMEOUT)
  ctx.signal.addEventListener('abort', forward, { once: true })
  try {
    return await call({ signal: deadline.signal, deadline: deadline.at, retries: 0 })
  } finally {
    deadline.clear()
    ctx.signal.removeEventListener('abort', forward)
  }
}
