import type { FailureClass } from './types.js'

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. Defaults to 5. */
  consecutiveFailures?: number
  /** Calls in the window before the failure rate counts. Defaults to 20. */
  minimumCalls?: number
  /** Share of failed calls in the window that opens the breaker. Defaults to 0.5. */
  failureRate?: number
  /** Length of the rolling window, in ms. Defaults to 10 000. */
  windowMs?: number
  /** How long the breaker stays open before one probe call is let through, in ms. Defaults to 5 000. */
  cooldownMs?: number
}

export type BreakerState = 'closed' | 'open' | 'half-open'

/** Sized for calls of ~100–400 ms: a few seconds of a dead backend opens it, a few seconds later one probe checks. */
export const DEFAULT_BREAKER: Required<BreakerOptions> = Object.freeze({
  consecutiveFailures: 5,
  minimumCalls: 20,
  failureRate: 0.5,
  windowMs: 10_000,
  cooldownMs: 5_000,
})

const BUCKETS = 10

/**
 * A circuit breaker for one backend. Open, it answers "don't call" at once, so every
 * decision takes the fallback without waiting for a timeout; after the cool-down one probe
 * call is let through and its result closes or re-opens it. No timers: state moves only
 * when a call asks or reports.
 */
export class CircuitBreaker {
  readonly #options: Required<BreakerOptions>
  readonly #onChange: (state: BreakerState) => void
  #state: BreakerState = 'closed'
  #consecutive = 0
  #openedAt = 0
  #probing = false
  /** The failure class that opened the breaker: open decisions fall back as it would. */
  #lastFailure: FailureClass = 'network'
  readonly #calls = new Uint32Array(BUCKETS)
  readonly #failures = new Uint32Array(BUCKETS)
  #bucketStart = 0
  #bucket = 0

  constructor(options: BreakerOptions, onChange: (state: BreakerState) => void) {
    this.#options = { ...DEFAULT_BREAKER, ...options }
    this.#onChange = onChange
  }

  get state(): BreakerState {
    return this.#state
  }

  get lastFailure(): FailureClass {
    return this.#lastFailure
  }

  /** True while the breaker is open and its cool-down has not passed: no call would go out. */
  isOpen(now: number): boolean {
    return this.#state === 'open' && now - this.#openedAt < this.#options.cooldownMs
  }

  /** Whether a call may go out now. In half-open, only the one probe may. */
  tryCall(now: number): boolean {
    if (this.#state === 'closed') return true
    if (this.#state === 'open') {
      if (now - this.#openedAt < this.#options.cooldownMs) return false
      this.#set('half-open')
    }
    if (this.#probing) return false
    this.#probing = true
    return true
  }

  success(now: number): void {
    this.#record(now, false)
    this.#consecutive = 0
    if (this.#state === 'half-open') {
      this.#probing = false
      this.#calls.fill(0)
      this.#failures.fill(0)
      this.#set('closed')
    }
  }

  failure(now: number, failure: FailureClass): void {
    this.#record(now, true)
    this.#consecutive++
    this.#lastFailure = failure
    if (this.#state === 'half-open') {
      this.#probing = false
      this.#open(now)
      return
    }
    if (this.#state === 'closed' && (this.#consecutive >= this.#options.consecutiveFailures || this.#rateExceeded())) this.#open(now)
  }

  /** A call that ended without a verdict either way (the client left): free the probe slot. */
  abandon(): void {
    this.#probing = false
  }

  #open(now: number): void {
    this.#openedAt = now
    this.#set('open')
  }

  #set(state: BreakerState): void {
    if (this.#state === state) return
    this.#state = state
    this.#onChange(state)
  }

  #rateExceeded(): boolean {
    let calls = 0
    let failures = 0
    for (let index = 0; index < BUCKETS; index++) {
      calls += this.#calls[index] ?? 0
      failures += this.#failures[index] ?? 0
    }
    return calls >= this.#options.minimumCalls && failures / calls >= this.#options.failureRate
  }

  #record(now: number, failed: boolean): void {
    const width = this.#options.windowMs / BUCKETS
    const elapsed = Math.floor((now - this.#bucketStart) / width)
    if (elapsed > 0) {
      for (let step = 0; step < Math.min(elapsed, BUCKETS); step++) {
        this.#bucket = (this.#bucket + 1) % BUCKETS
        this.#calls[this.#bucket] = 0
        this.#failures[this.#bucket] = 0
      }
      this.#bucketStart += elapsed * width
      if (elapsed >= BUCKETS) this.#bucketStart = now
    }
    this.#calls[this.#bucket] = (this.#calls[this.#bucket] ?? 0) + 1
    if (failed) this.#failures[this.#bucket] = (this.#failures[this.#bucket] ?? 0) + 1
  }
}
