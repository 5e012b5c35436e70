/**
 * How Sallyport's own transport hears that a decision was aborted: an object with the
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

/** The source of a budget that cannot be aborted: it keeps no listeners. */
class NeverAborted extends AbortSource {
  override on(): this {
    return this
  }
}
export const neverAbortedSource: AbortSource = new NeverAborted()

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
