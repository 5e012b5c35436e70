import type { BreakerOptions, BreakerState } from '../breaker.js'
import { CircuitBreaker } from '../breaker.js'
import type { CacheOptions } from '../cache.js'
import { type CacheSlot, DecisionCache } from '../cache.js'
import { ABORT_CLIENT_GONE, ABORT_SOURCE, type AbortSource, CONNECTION_WAIT, Deadline } from '../deadline.js'
import { failureOf, SallyportError } from '../errors.js'
import { backendAt, FailureLog } from '../failure-log.js'
import type { BackendInput } from '../identify/request.js'
import type { Logger, Warnings } from '../logger.js'
import { checkReply } from '../reply.js'
import { all, andThen, type Eventually } from '../same-tick.js'
import type { Telemetry } from '../telemetry.js'
import type { BackendVerdict, DecideContext, DecisionBackend, DecisionInput, FailureClass, RequestView } from '../types.js'

/**
 * Stage 2, ask: every backend called at once, within one deadline, each through its circuit
 * breaker and, where its verdicts may be reused, the decision cache. A call that fails is
 * classified (timeout, network, server, client, invalid) and never thrown: what comes back is
 * one {@link Answer} per backend.
 */

/** One backend's answer to one request, or how asking it failed. */
export type Answer =
  | {
      backend: DecisionBackend
      ok: true
      reply: BackendVerdict
      /** Reused from the decision cache. */
      cached?: true
    }
  | {
      backend: DecisionBackend
      ok: false
      failure: FailureClass
      error: unknown
      reason?: string
      /** The deadline passed while the call waited for, or after it had waited for, a local connection. */
      queued?: true
    }

/** Every backend's answer, and how the asking ended. */
export interface Answers {
  readonly answers: Answer[]
  /** When the last answer came. */
  readonly ended: number
  /** The client left before the answers came: nobody will read the decision. */
  readonly clientGone: boolean
}

export interface AskOptions {
  backends: readonly DecisionBackend[]
  /** The whole decision's budget, in ms. */
  timeoutMs: number
  retries: number
  breaker: false | BreakerOptions
  cache: CacheOptions | undefined
  logger: Logger
  warnings: Warnings
  telemetry: Telemetry
  /** Log the first failure of each class per backend at warn (`SP_WARN_BACKEND_REFUSED` on). */
  reportFailures: boolean
}

/** Failure classes that say the backend itself is down or slow: only these move the breaker. */
const OUTAGES: ReadonlySet<FailureClass> = new Set(['timeout', 'network', 'server'])

/** What a backend call gets; a class so the lazily created signal costs no per-call accessor object. */
class CallContext implements DecideContext {
  readonly #deadline: Deadline
  readonly deadline: number
  readonly retries: number
  /** The call is waiting for a local connection now. */
  waiting = false
  /** The call waited for a local connection at some point: part of its budget went to the queue. */
  queued = false
  constructor(deadline: Deadline, retries: number) {
    this.#deadline = deadline
    this.deadline = deadline.at
    this.retries = retries
  }
  get signal(): AbortSignal {
    return this.#deadline.signal
  }
  [ABORT_SOURCE](): AbortSource {
    return this.#deadline.source()
  }
  [CONNECTION_WAIT](waiting: boolean): void {
    this.waiting = waiting
    if (waiting) this.queued = true
  }
}

/** Resolves to `undefined` if `promise` has not settled within `ms`: a slow cache is a miss. */
function withinMs<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (promise === undefined) return Promise.resolve(undefined)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined)
  })
  return Promise.race([promise.catch(() => undefined), timeout]).finally(() => clearTimeout(timer))
}

export class Ask {
  readonly #options: AskOptions
  readonly #breakers: Array<CircuitBreaker | undefined>
  readonly #cache: DecisionCache | undefined
  readonly #failureLog: FailureLog
  /** The errors behind skipped calls, one per backend and failure class (see {@link Ask.#openError}). */
  readonly #openErrors = new Map<DecisionBackend, Partial<Record<FailureClass, SallyportError>>>()

  constructor(options: AskOptions) {
    this.#options = options
    this.#cache = options.cache === undefined ? undefined : new DecisionCache(options.cache)
    this.#failureLog = new FailureLog(options.logger, options.reportFailures)
    const { breaker } = options
    this.#breakers = options.backends.map((backend, index) =>
      breaker === false ? undefined : new CircuitBreaker(breaker, (state) => this.#breakerChanged(backend, index, state)),
    )
  }

  /** Whether verdicts may come from the cache for this kind of request (a checkpoint only when the cache says so). */
  caches(atCheckpoint: boolean): boolean {
    return this.#cache !== undefined && (!atCheckpoint || this.#cache.checkpoints)
  }

  /** Each backend's circuit breaker state (`closed` when breakers are off). */
  breakerStates(): Record<string, BreakerState> {
    return Object.fromEntries(this.#options.backends.map((backend, index) => [backend.name, this.#breakers[index]?.state ?? 'closed']))
  }

  /**
   * Asks every backend about one request. `cacheKind` is the kind of request for the decision
   * cache (`null`: nothing cached for it). The client's leaving is listened for only if a call
   * has to wait: a decision made in process never listens.
   */
  ask(
    inputs: readonly BackendInput[],
    started: number,
    cacheKind: string | null,
    client: Pick<RequestView<unknown>, 'onClientGone'>,
  ): Eventually<Answers> {
    const { backends } = this.#options
    const deadline = new Deadline(started + this.#options.timeoutMs)
    const calls = new Array<Eventually<Answer>>(backends.length)
    try {
      for (let index = 0; index < backends.length; index++) {
        calls[index] = this.#callOne(index, inputs[index] as BackendInput, deadline, cacheKind)
      }
    } catch (error) {
      // A cache key function that threw, say: no timer may outlive the decision.
      deadline.clear()
      throw error
    }
    const answers = all(calls)
    if (!(answers instanceof Promise)) return { answers, ended: performance.now(), clientGone: false }
    const stopListening = client.onClientGone(() => deadline.abort(ABORT_CLIENT_GONE))
    const done = (settled: Answer[]): Answers => {
      deadline.clear()
      stopListening()
      return { answers: settled, ended: performance.now(), clientGone: deadline.clientGone }
    }
    return answers.then(done, (error: unknown) => {
      deadline.clear()
      stopListening()
      throw error
    })
  }

  /** One backend, through the decision cache when its verdicts may be reused for this request. */
  #callOne(index: number, input: BackendInput, deadline: Deadline, cacheKind: string | null): Eventually<Answer> {
    const cache = this.#cache
    const backend = this.#options.backends[index] as DecisionBackend
    if (cacheKind === null || cache === undefined || backend.cacheable === false) return this.#call(index, input, deadline)
    const slot = cache.slotFor(backend, input, cacheKind)
    return slot === null ? this.#call(index, input, deadline) : this.#callThroughCache(cache, slot, index, input, deadline)
  }

  /** The cached verdict when there is one in time; else the backend's, which is then kept. */
  async #callThroughCache(cache: DecisionCache, slot: CacheSlot, index: number, input: BackendInput, deadline: Deadline): Promise<Answer> {
    const backend = this.#options.backends[index] as DecisionBackend
    const cached = await withinMs(cache.get(slot), Math.max(0, deadline.at - performance.now()))
    if (cached !== undefined) {
      try {
        return { backend, ok: true, reply: checkReply(cached, backend.name), cached: true }
      } catch {
        // An entry that does not read as a reply (a shared store written by something else): ask the backend.
      }
    }
    const answer = await this.#call(index, input, deadline)
    if (answer.ok) void cache.set(slot, answer.reply)
    return answer
  }

  /** One backend inside the decision's deadline, through its circuit breaker. */
  #call(index: number, input: DecisionInput, deadline: Deadline): Eventually<Answer> {
    const backend = this.#options.backends[index] as DecisionBackend
    const breaker = this.#breakers[index]
    // One clock read serves the breaker and the call's start (each read is ~75 ns).
    const started = performance.now()
    if (breaker !== undefined && !breaker.tryCall(started)) {
      this.#options.telemetry.backendCall(backend.name, 0, 'circuit_open')
      const failure = breaker.lastFailure
      return { backend, ok: false, failure, error: this.#openError(backend, failure), reason: 'circuit_open' }
    }
    // In a fan-out, a backend whose own `timeoutMs` is shorter than the decision's gets its own deadline.
    const own = this.#options.backends.length > 1 && backend.timeoutMs !== undefined && backend.timeoutMs < this.#options.timeoutMs
    const budget = own ? Deadline.in(backend.timeoutMs as number, deadline) : deadline
    return andThen(this.#attempt(backend, input, budget), (answer) => this.#settle(answer, breaker, budget, deadline, started))
  }

  /**
   * One call. A backend that answers without waiting (the embedded engine on its memory
   * store) gets its answer back as it is; the rest race the deadline.
   */
  #attempt(backend: DecisionBackend, input: DecisionInput, deadline: Deadline): Eventually<Answer> {
    const ctx = new CallContext(deadline, this.#options.retries)
    let decided: Eventually<BackendVerdict> | PromiseLike<BackendVerdict>
    try {
      decided = backend.decide(input, ctx)
    } catch (error) {
      return this.#failed(backend, deadline, error, ctx)
    }
    // Closures only for a call that has to wait: an answer in process costs none.
    if (typeof (decided as { then?: unknown } | null)?.then !== 'function') return this.#answered(backend, decided, deadline)
    return Promise.race([decided, deadline.expired]).then(
      (reply) => this.#answered(backend, reply, deadline),
      (error: unknown) => this.#failed(backend, deadline, error, ctx),
    )
  }

  /** A reply, checked like any untrusted input: a bad shape is an `invalid` failure. */
  #answered(backend: DecisionBackend, reply: unknown, deadline: Deadline): Answer {
    try {
      return { backend, ok: true, reply: checkReply(reply, backend.name) }
    } catch (error) {
      return this.#failed(backend, deadline, error)
    }
  }

  /** A failed call, classified; the first of its class per backend is logged at warn, with its host and cause. */
  #failed(backend: DecisionBackend, deadline: Deadline, error: unknown, ctx?: CallContext): Answer {
    if (deadline.timedOut && ctx?.queued === true) return this.#saturated(backend, ctx.waiting, error)
    const failure = deadline.timedOut ? 'timeout' : failureOf(error)
    const reason = error instanceof SallyportError ? error.reason : undefined
    // A client that left, or checkpoint data the app got wrong, says nothing about the backend.
    const notTheBackend =
      deadline.clientGone ||
      (error instanceof SallyportError && (error.code === 'SP_CLIENT_GONE' || error.code === 'SP_INVALID_CHECKPOINT'))
    if (notTheBackend) {
      this.#options.logger.debug?.(
        { code: 'SP_BACKEND_FAILED', backend: backend.name, failure, err: error },
        'Backend failed; using the fallback.',
      )
    } else this.#failureLog.report(backend, failure, error)
    return reason === undefined ? { backend, ok: false, failure, error } : { backend, ok: false, failure, error, reason }
  }

  /**
   * A call whose deadline passed while it waited for one of the transport's local connections
   * (or after waiting for one ate part of its budget): the backend never saw it, or saw it
   * late, so it is no evidence against the backend. It takes the `timeout` fallback, never
   * moves the breaker, and is reported on its own.
   */
  #saturated(backend: DecisionBackend, stillWaiting: boolean, error: unknown): Answer {
    this.#options.warnings.once(
      'SP_WARN_POOL_SATURATED',
      `Decisions waited for a connection to ${backend.name} until their deadline: more calls were under way than its connection pool holds. Those decisions took the timeout fallback (reason \`pool_saturated\`); the circuit breaker ignores them. Raise the backend's \`connections\` if this happens under normal load.`,
      { backend: backend.name },
    )
    return stillWaiting
      ? { backend, ok: false, failure: 'timeout', error, reason: 'pool_saturated', queued: true }
      : { backend, ok: false, failure: 'timeout', error, queued: true }
  }

  /** Records a finished call: its own deadline, its telemetry, and what it says to the breaker. */
  #settle(answer: Answer, breaker: CircuitBreaker | undefined, budget: Deadline, deadline: Deadline, started: number): Answer {
    if (budget !== deadline) budget.clear()
    const ended = performance.now()
    this.#options.telemetry.backendCall(
      answer.backend.name,
      ended - started,
      answer.ok ? 'ok' : answer.reason === 'pool_saturated' ? answer.reason : answer.failure,
    )
    if (breaker === undefined) return answer
    if (answer.ok) breaker.success(ended)
    else if (OUTAGES.has(answer.failure) && !deadline.clientGone && answer.queued !== true) breaker.failure(ended, answer.failure)
    // A refused or unreadable reply may be about this request's input: a client could craft
    // such requests to open the breaker for everyone, so they neither open nor close it.
    else breaker.abandon()
    return answer
  }

  /**
   * The error behind a decision that skipped an open breaker, made once per backend and
   * failure class: while a vendor is down every request takes this path, and an Error
   * with its stack trace per request is what it would cost.
   */
  #openError(backend: DecisionBackend, failure: FailureClass): SallyportError {
    let byFailure = this.#openErrors.get(backend)
    if (byFailure === undefined) {
      byFailure = {}
      this.#openErrors.set(backend, byFailure)
    }
    byFailure[failure] ??= SallyportError.backend(failure, `${backend.name} is not called while its circuit breaker is open.`)
    return byFailure[failure]
  }

  #breakerChanged(backend: DecisionBackend, index: number, state: BreakerState): void {
    const { logger, telemetry } = this.#options
    telemetry.breakerChanged(backend.name, state)
    // What opened it, and where: the failure of the class that tripped it last.
    const last = state === 'open' ? this.#failureLog.last(backend, this.#breakers[index]?.lastFailure ?? 'network') : undefined
    const message =
      state === 'open'
        ? `${backendAt(backend, last?.host)} keeps failing (last: ${last?.cause ?? 'unknown'}): decisions take the fallback without calling it until a probe succeeds.`
        : state === 'closed'
          ? `${backend.name} answers again: the circuit breaker closed.`
          : `${backend.name}: probing after the cool-down.`
    const cause = last === undefined ? {} : { host: last.host, cause: last.cause }
    logger.warn({ code: `SP_BREAKER_${state.toUpperCase().replace('-', '_')}`, backend: backend.name, state, ...cause }, message)
  }
}
