import ipaddr from 'ipaddr.js'
import { ABORT_SOURCE, type AbortSource, CONNECTION_WAIT } from './abort.js'
import { type BreakerState, CircuitBreaker } from './breaker.js'
import { type CacheSlot, DecisionCache, requestKind } from './cache.js'
import { type CheckpointSpec, type CompiledCheckpoint, compileCheckpoint, warnIfBodyUnparsed } from './checkpoint.js'
import { resolveClientIp, resolveHost, resolveProtocol } from './client-ip.js'
import { type Budget, Deadline, InProcessBudget } from './deadline.js'
import { failureOf, SallyportError } from './errors.js'
import { backendAt, FailureLog } from './failure-log.js'
import { HeaderViews, pathForBackends, type RequestCookies, readCookies } from './headers.js'
import { Warnings } from './logger.js'
import { decideNowOf, isPromiseLike, type MaybePromise } from './now.js'
import { type GateOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { returnOrigin, returnUrl, safeRedirectTarget } from './redirect.js'
import { challengeRequired, forbidden, isFormSubmission, isNavigation, pageLocation, redirect } from './respond.js'
import { checkSetCookie } from './set-cookie.js'
import { pathOnly } from './skip.js'
import { createTelemetry, NOOP_END, type Telemetry } from './telemetry.js'
import { ABORT_CLIENT_GONE, ABORT_TIMEOUT } from './transport.js'
import type {
  Action,
  BackendRoutes,
  BackendVerdict,
  Checkpoint,
  DecideContext,
  Decision,
  DecisionBackend,
  DecisionInput,
  FailureClass,
  Outcome,
  RequestView,
  ServedRequest,
  ServedResponse,
  TrustFunction,
  Verdict,
} from './types.js'

export interface Gate<Native = unknown> {
  /** Decides one request (or one checkpoint) and says what the adapter must do. Never rejects. */
  decide(view: RequestView<Native>, checkpoint?: CompiledCheckpoint<Native>): Promise<Outcome>
  /**
   * The same decision, handed back without a promise when nothing in it had to wait (a skip,
   * or backends that decide in process such as the local engine on its memory store), so an
   * adapter can answer in the same tick. Never throws, never rejects.
   */
  decideNow(view: RequestView<Native>, checkpoint?: CompiledCheckpoint<Native>): Outcome | Promise<Outcome>
  /** Validates a checkpoint spec now, so a bad route fails at start-up. */
  checkpoint(spec: CheckpointSpec<Native>): CompiledCheckpoint<Native>
  /** Each backend's circuit breaker state (`closed` when breakers are off). */
  breakerStates(): Record<string, BreakerState>
  /** Releases the backends' connection pools. */
  close(): Promise<void>
}

const NEXT: Action = Object.freeze({ type: 'next' })
const NONE: Action = Object.freeze({ type: 'none' })
/** The 403 of a fail-closed internal error: it reads nothing of the request, which may be what failed. */
const INTERNAL_DENY: Action = Object.freeze({
  type: 'respond',
  status: 403,
  headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  body: JSON.stringify({ error: 'forbidden', requestId: null }),
})
const STRICTNESS: Record<Verdict, number> = { allow: 0, review: 1, challenge: 2, deny: 3 }
const VERDICTS = new Set<unknown>(Object.keys(STRICTNESS))
const trustNone: TrustFunction = () => false
const FAILURE_CLASSES: readonly FailureClass[] = ['timeout', 'network', 'server', 'client', 'invalid']
const noop = (): void => {}

/**
 * A decision no backend's reply made: a skip, a route the middleware serves, a client already
 * gone, an internal failure. `wouldBe` is the verdict; monitor mode is the caller's to apply.
 */
function decisionWithoutReply(
  verdict: Verdict,
  wouldBe: Verdict,
  reason: string,
  source: Decision['source'],
  backend: string,
  ip: string | null,
  latencyMs: number,
  setCookies: string[] = [],
): Decision {
  return { verdict, wouldBe, reason, source, backend, ip, requestId: null, latencyMs, complete: source === 'skip', signals: {}, setCookies }
}

/** The decision's calls are over, however they ended: its timer and client-gone listener go. */
function endCalls(deadline: Budget, stopListening: () => void): void {
  deadline.clear()
  stopListening()
}
/** Failure classes that say the backend itself is down or slow: only these move the breaker. */
const OUTAGES: ReadonlySet<FailureClass> = new Set(['timeout', 'network', 'server'])

/** What a backend call gets; a class so the lazily created signal costs no per-call accessor object. */
class CallContext implements DecideContext {
  readonly #budget: Budget
  readonly deadline: number
  readonly retries: number
  /** The call is waiting for a local connection now. */
  waiting = false
  /** The call waited for a local connection at some point: part of its budget went to the queue. */
  queued = false
  constructor(budget: Budget, retries: number) {
    this.#budget = budget
    this.deadline = budget.at
    this.retries = retries
  }
  get signal(): AbortSignal {
    return this.#budget.signal
  }
  [ABORT_SOURCE](): AbortSource {
    return this.#budget.source()
  }
  [CONNECTION_WAIT](waiting: boolean): void {
    this.waiting = waiting
    if (waiting) this.queued = true
  }
}

/**
 * What one backend sees of a request. A class, so each backend's input is one object with
 * a shared `cookie` method rather than a literal and a closure per request.
 */
class Input implements DecisionInput {
  readonly ip: string | null
  readonly method: string
  readonly path: string
  readonly host: string | null
  readonly headers: Record<string, string>
  readonly cookieNames: string[]
  readonly checkpoint: Checkpoint | null
  readonly #cookies: RequestCookies
  readonly #readable: ReadonlySet<string> | undefined
  constructor(
    ip: string | null,
    method: string,
    path: string,
    host: string | null,
    headers: Record<string, string>,
    cookies: RequestCookies,
    checkpoint: Checkpoint | null,
    readable: ReadonlySet<string> | undefined,
  ) {
    this.ip = ip
    this.method = method
    this.path = path
    this.host = host
    this.headers = headers
    this.cookieNames = cookies.names
    this.checkpoint = checkpoint
    this.#cookies = cookies
    this.#readable = readable
  }
  /** The value of a cookie this backend declared it reads; `undefined` for any other. */
  cookie(name: string): string | undefined {
    return this.#readable?.has(name) === true ? this.#cookies.value(name) : undefined
  }
}

/** One decision on its way through the backends. */
interface Job<Native> {
  readonly view: RequestView<Native>
  readonly checkpoint: CompiledCheckpoint<Native> | undefined
  readonly started: number
  readonly inputs: readonly Input[]
  /** The client IP every backend was given. */
  readonly ip: string | null
  readonly host: string | null
  readonly protocol: 'http' | 'https'
  /** The kind of request for the decision cache (see `requestKind`); `null` when nothing is cached for it. */
  readonly cacheKind: string | null
}

type Part =
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

function isInvalidCheckpoint(part: Part): boolean {
  return !part.ok && part.error instanceof SallyportError && part.error.code === 'SP_INVALID_CHECKPOINT'
}

/** Longest `reason` or `requestId` a reply may carry: they end up in logs, pages and headers' neighbours. */
const MAX_REPLY_TEXT = 256

function optionalText(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.length <= MAX_REPLY_TEXT)
}

function allStrings(values: unknown): boolean {
  if (!Array.isArray(values)) return false
  for (const value of values) if (typeof value !== 'string') return false
  return true
}

/**
 * A backend's reply is checked like any untrusted input, every field of it: a bad shape is an
 * `invalid` failure that follows `onError`, never a verdict that breaks later (a numeric
 * request id on the block page, a `setCookies` that is not a list) and falls through to allow.
 */
function checkReply(reply: unknown, backend: string): BackendVerdict {
  if (typeof reply !== 'object' || reply === null) throw SallyportError.backend('invalid', `${backend} returned no reply object.`)
  const { verdict, reason, requestId, complete, signals, setCookies } = reply as Record<keyof BackendVerdict, unknown>
  const problem = !VERDICTS.has(verdict)
    ? 'verdict'
    : !optionalText(reason)
      ? 'reason'
      : !optionalText(requestId)
        ? 'requestId'
        : complete !== undefined && typeof complete !== 'boolean'
          ? 'complete'
          : signals !== undefined && (typeof signals !== 'object' || signals === null || Array.isArray(signals))
            ? 'signals'
            : setCookies !== undefined && !allStrings(setCookies)
              ? 'setCookies'
              : null
  if (problem !== null) throw SallyportError.backend('invalid', `${backend} returned a reply whose \`${problem}\` is not valid.`)
  return reply as BackendVerdict
}

/** Resolves to `undefined` if `promise` has not settled within `ms`: a slow cache is a miss. */
function withinBudget<T>(promise: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (promise === undefined) return Promise.resolve(undefined)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(resolve, ms, undefined)
  })
  return Promise.race([promise.catch(() => undefined), timeout]).finally(() => clearTimeout(timer))
}

/** Trusting two public addresses at the socket and far down the chain means trusting anyone. */
function trustsEveryone(trust: TrustFunction): boolean {
  try {
    return trust('203.0.113.7', 0) && trust('198.51.100.9', 3)
  } catch {
    return false
  }
}

function isPrivatePeer(address: string | undefined): boolean {
  if (address === undefined || !ipaddr.isValid(address)) return false
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  }
  const range = parsed.range()
  return range === 'loopback' || range === 'private' || range === 'uniqueLocal' || range === 'linkLocal'
}

/** The core every adapter wraps: options are validated here, once. */
export function createGate<Native = unknown>(options?: GateOptions<Native>): Gate<Native> {
  const config: ResolvedOptions<Native> = resolveOptions(options)
  const { backends, logger } = config
  /** What a decision no backend made names as its backend. */
  const firstBackend = backends[0]?.name ?? 'none'
  const warnings = new Warnings(logger, config.disabledWarnings)
  const cookieAllowLists = new Map(backends.map((backend) => [backend, new Set(backend.cookies ?? [])]))
  const headerViews = new HeaderViews(
    backends.map((backend) => backend.headers),
    config.sensitive,
    config.limits,
  )
  const telemetry: Telemetry = config.telemetry === false ? createTelemetry(null) : createTelemetry(config.telemetry.api)
  const failureLog = new FailureLog(logger, !config.disabledWarnings.has('SP_WARN_BACKEND_REFUSED'))
  const breakers = new Map<DecisionBackend, CircuitBreaker>()
  if (config.breaker !== false) {
    for (const backend of backends) {
      breakers.set(
        backend,
        new CircuitBreaker(config.breaker, (state) => {
          telemetry.breakerChanged(backend.name, state)
          // What opened it, and where: the failure of the class that tripped it last.
          const last = state === 'open' ? failureLog.last(backend, breakers.get(backend)?.lastFailure ?? 'network') : undefined
          const message =
            state === 'open'
              ? `${backendAt(backend, last?.host)} keeps failing (last: ${last?.cause ?? 'unknown'}): decisions take the fallback without calling it until a probe succeeds.`
              : state === 'closed'
                ? `${backend.name} answers again: the circuit breaker closed.`
                : `${backend.name}: probing after the cool-down.`
          const cause = last === undefined ? {} : { host: last.host, cause: last.cause }
          logger.warn({ code: `SP_BREAKER_${state.toUpperCase().replace('-', '_')}`, backend: backend.name, state, ...cause }, message)
        }),
      )
    }
  }

  for (const backend of backends) {
    for (const warning of backend.warnings ?? []) warnings.once(warning.code, warning.message, { backend: backend.name })
  }
  const routed = backends.filter((backend) => backend.routes !== undefined)
  // Backends that decide without I/O cannot be interrupted: they skip the deadline machinery.
  const inProcess = backends.every((backend) => backend.inProcess === true)
  const cache = config.cache === undefined ? undefined : new DecisionCache(config.cache)
  const redirectHostSet: ReadonlySet<string> = new Set(config.redirectHosts)

  const checkpointOnError = new WeakMap<CompiledCheckpoint<Native>, Record<FailureClass, Verdict>>()
  /** A checkpoint's onError merged over the gate's, once per checkpoint rather than per request. */
  function onErrorFor(checkpoint: CompiledCheckpoint<Native>): Record<FailureClass, Verdict> {
    if (checkpoint.onError === undefined) return config.onError
    let merged = checkpointOnError.get(checkpoint)
    if (merged === undefined) {
      merged = { ...config.onError, ...checkpoint.onError }
      checkpointOnError.set(checkpoint, merged)
    }
    return merged
  }

  const checkedTrust = new WeakSet<TrustFunction>()
  /** Warns once when the trust in force (ours or the framework's) believes any client. */
  function checkTrust(trust: TrustFunction, inherited: boolean): void {
    if (checkedTrust.has(trust)) return
    checkedTrust.add(trust)
    if (!trustsEveryone(trust)) return
    warnings.once(
      'SP_WARN_TRUST_ALL_PROXIES',
      inherited
        ? "The framework's proxy setting (Express `trust proxy: true`, or Koa `app.proxy` without `maxIpsCount`) trusts every X-Forwarded-For entry, so any client can choose its IP. Set `trustProxy` to your proxies (a hop count or their ranges)."
        : '`trustProxy: true` trusts every X-Forwarded-For entry, so any client can choose its IP. Name your proxies (a hop count or their ranges) instead.',
    )
  }
  if (config.trust !== undefined && process.env.NODE_ENV === 'production') checkTrust(config.trust, false)

  /**
   * Warns once when a failure policy fails closed for some classes and open for others: a
   * map such as `{ timeout: 'deny', server: 'deny' }` lets a vendor's 400 or 429 (`client`)
   * and an unreadable reply (`invalid`) through, which is rarely what a fail-closed route means.
   */
  function checkOnError(onError: Record<FailureClass, Verdict>, whose: string): void {
    const open = FAILURE_CLASSES.filter((failure) => onError[failure] === 'allow')
    if (open.length === 0 || open.length === FAILURE_CLASSES.length) return
    const closed = FAILURE_CLASSES.filter((failure) => onError[failure] === 'deny' || onError[failure] === 'challenge')
    if (closed.length === 0) return
    warnings.once(
      'SP_WARN_ON_ERROR_OPEN',
      `${whose} onError fails closed for ${closed.join(', ')} but lets ${open.join(', ')} failures through (unlisted classes allow). Use one verdict (\`onError: 'deny'\`) to cover every class, or list them all.`,
      { open, closed },
    )
  }
  checkOnError(config.onError, "The gate's")

  function notify(decision: Decision, request: Native): void {
    if (config.onDecision === undefined) return
    try {
      config.onDecision(decision, request)
    } catch (error) {
      logger.error({ code: 'SP_HOOK_FAILED', hook: 'onDecision', err: error }, 'onDecision threw; the request goes on.')
    }
  }

  /** Runs a user hook for at most `hookTimeoutMs`; its failure is logged, never thrown. */
  async function runHook(name: string, hook: () => unknown): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        logger.error(
          { code: 'SP_HOOK_TIMEOUT', hook: name },
          `${name} did not settle within ${config.hookTimeoutMs} ms; Sallyport carried on.`,
        )
        resolve(undefined)
      }, config.hookTimeoutMs)
    })
    try {
      return await Promise.race([Promise.resolve().then(hook), timeout])
    } catch (error) {
      logger.error({ code: 'SP_HOOK_FAILED', hook: name, err: error }, `${name} threw; Sallyport carried on.`)
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  /** A failed call, classified; the first of its class per backend is logged at warn, with its host and cause. */
  function failed(backend: DecisionBackend, deadline: Budget, error: unknown, ctx?: CallContext): Part {
    const timedOut = deadline.reason === ABORT_TIMEOUT
    if (timedOut && ctx?.queued === true) return saturated(backend, ctx.waiting, error)
    const failure = timedOut ? 'timeout' : failureOf(error)
    const reason = error instanceof SallyportError ? error.reason : undefined
    // A client that left, or checkpoint data the app got wrong, says nothing about the backend.
    const notTheBackend =
      deadline.reason === ABORT_CLIENT_GONE ||
      (error instanceof SallyportError && (error.code === 'SP_CLIENT_GONE' || error.code === 'SP_INVALID_CHECKPOINT'))
    if (notTheBackend) {
      logger.debug?.({ code: 'SP_BACKEND_FAILED', backend: backend.name, failure, err: error }, 'Backend failed; using the fallback.')
    } else failureLog.report(backend, failure, error)
    return reason === undefined ? { backend, ok: false, failure, error } : { backend, ok: false, failure, error, reason }
  }

  /**
   * A call whose deadline passed while it waited for one of the transport's local connections
   * (or after waiting for one ate part of its budget): the backend never saw it, or saw it
   * late, so it is no evidence against the backend. It takes the `timeout` fallback, never
   * moves the breaker, and is reported on its own.
   */
  function saturated(backend: DecisionBackend, stillWaiting: boolean, error: unknown): Part {
    warnings.once(
      'SP_WARN_POOL_SATURATED',
      `Decisions waited for a connection to ${backend.name} until their deadline: more calls were under way than its connection pool holds. Those decisions took the timeout fallback (reason \`pool_saturated\`); the circuit breaker ignores them. Raise the backend's \`connections\` if this happens under normal load.`,
      { backend: backend.name },
    )
    return stillWaiting
      ? { backend, ok: false, failure: 'timeout', error, reason: 'pool_saturated', queued: true }
      : { backend, ok: false, failure: 'timeout', error, queued: true }
  }

  function answered(backend: DecisionBackend, reply: unknown, deadline: Budget): Part {
    try {
      return { backend, ok: true, reply: checkReply(reply, backend.name) }
    } catch (error) {
      return failed(backend, deadline, error)
    }
  }

  /**
   * One call to one backend. A backend that answers without waiting (the local engine through
   * its same-tick `decide`) gets its part back without a promise; the rest race the deadline.
   */
  function attempt(backend: DecisionBackend, input: DecisionInput, deadline: Budget): MaybePromise<Part> {
    let decided: BackendVerdict | PromiseLike<BackendVerdict>
    const ctx = new CallContext(deadline, config.retries)
    try {
      const now = decideNowOf(backend)
      decided = now === undefined ? backend.decide(input, ctx) : now(input, ctx)
    } catch (error) {
      return failed(backend, deadline, error, ctx)
    }
    if (!isPromiseLike(decided)) return answered(backend, decided, deadline)
    const settled = deadline.expired === null ? Promise.resolve(decided) : Promise.race([decided, deadline.expired])
    return settled.then(
      (reply) => answered(backend, reply, deadline),
      (error: unknown) => failed(backend, deadline, error, ctx),
    )
  }

  /** Calls one backend inside the decision's deadline, through its circuit breaker. */
  function callBackend(backend: DecisionBackend, input: DecisionInput, deadline: Budget): MaybePromise<Part> {
    const breaker = breakers.get(backend)
    // One clock read serves the breaker and the call's start (each read is ~75 ns).
    const callStarted = performance.now()
    if (breaker !== undefined && !breaker.tryCall(callStarted)) {
      telemetry.backendCall(backend.name, 0, 'circuit_open')
      settledAt = callStarted
      const failure = breaker.lastFailure
      return { backend, ok: false, failure, error: openError(backend, failure), reason: 'circuit_open' }
    }
    // The budget was chosen before tryCall: if a cool-down ended in between, this is a probe
    // to an I/O backend and needs a real deadline.
    const budget = deadline instanceof InProcessBudget && backend.inProcess !== true ? new Deadline(deadline.at - callStarted) : deadline
    const call = callWithinBudget(backend, input, budget)
    if (call instanceof Promise) return call.then((part) => settle(part, breaker, budget, deadline, callStarted))
    return settle(call, breaker, budget, deadline, callStarted)
  }

  const openErrors = new Map<DecisionBackend, Partial<Record<FailureClass, SallyportError>>>()
  /**
   * The error behind a decision that skipped an open breaker, made once per backend and
   * failure class: while a vendor is down every request takes this path, and an Error
   * with its stack trace per request is what it would cost.
   */
  function openError(backend: DecisionBackend, failure: FailureClass): SallyportError {
    let byFailure = openErrors.get(backend)
    if (byFailure === undefined) {
      byFailure = {}
      openErrors.set(backend, byFailure)
    }
    byFailure[failure] ??= SallyportError.backend(failure, `${backend.name} is not called while its circuit breaker is open.`)
    return byFailure[failure]
  }

  /**
   * When the last call settled. A decision whose calls all returned in the same tick takes
   * its latency from it rather than reading the clock once more; nothing runs in between.
   */
  let settledAt = 0

  /** Records a finished call: its budget, its telemetry, and what it says to the breaker. */
  function settle(part: Part, breaker: CircuitBreaker | undefined, budget: Budget, deadline: Budget, callStarted: number): Part {
    if (budget !== deadline) budget.clear()
    const ended = performance.now()
    settledAt = ended
    telemetry.backendCall(
      part.backend.name,
      ended - callStarted,
      part.ok ? 'ok' : part.reason === 'pool_saturated' ? part.reason : part.failure,
    )
    if (breaker === undefined) return part
    if (part.ok) breaker.success(ended)
    else if (OUTAGES.has(part.failure) && deadline.reason !== ABORT_CLIENT_GONE && part.queued !== true)
      breaker.failure(ended, part.failure)
    // A refused or unreadable reply may be about this request's input: a client could craft
    // such requests to open the breaker for everyone, so they neither open nor close it.
    else breaker.abandon()
    return part
  }

  /** In a fan-out, a backend whose own `timeoutMs` is shorter than the budget gets its own, shorter deadline. */
  function callWithinBudget(backend: DecisionBackend, input: DecisionInput, deadline: Budget): MaybePromise<Part> {
    // A backend deciding in process cannot be interrupted: a deadline of its own would only cost a timer.
    const own =
      backends.length > 1 && backend.inProcess !== true && backend.timeoutMs !== undefined && backend.timeoutMs < config.timeoutMs
        ? backend.timeoutMs
        : undefined
    if (own === undefined) return attempt(backend, input, deadline)
    const shorter = new Deadline(own, deadline instanceof Deadline ? deadline : undefined)
    return Promise.resolve(attempt(backend, input, shorter)).finally(() => shorter.clear())
  }

  function forwardCookies(part: Part, host: string | null, into: string[]): void {
    if (!part.ok || part.reply.setCookies === undefined) return
    const allowed = cookieAllowLists.get(part.backend) ?? new Set<string>()
    for (const value of part.reply.setCookies) {
      const check =
        typeof value === 'string'
          ? checkSetCookie(value, allowed, host, into.length)
          : ({ ok: false, reason: 'malformed', name: null } as const)
      if (check.ok) into.push(value)
      else {
        warnings.once('SP_WARN_COOKIE_REJECTED', `A Set-Cookie from ${part.backend.name} was dropped (${check.reason}).`, {
          backend: part.backend.name,
          reason: check.reason,
          cookie: check.name,
        })
      }
    }
  }

  function combine(
    parts: Part[],
    onError: Record<FailureClass, Verdict>,
    ip: string | null,
    host: string | null,
    started: number,
    ended: number,
  ): Decision {
    let winner = parts[0] as Part
    let winnerVerdict: Verdict = 'allow'
    let complete = true
    const setCookies: string[] = []
    const perBackend: Record<string, unknown> | undefined = parts.length > 1 ? {} : undefined
    for (let index = 0; index < parts.length; index++) {
      const part = parts[index] as Part
      const verdict = part.ok ? part.reply.verdict : onError[part.failure]
      // On a tie, a backend that answered explains the decision better than one that fell back.
      const stricter = STRICTNESS[verdict] > STRICTNESS[winnerVerdict]
      const tieWithBetterSource = STRICTNESS[verdict] === STRICTNESS[winnerVerdict] && part.ok && !winner.ok
      if (index === 0 || stricter || tieWithBetterSource) {
        winner = part
        winnerVerdict = verdict
      }
      if (part.ok && part.reply.complete === false) complete = false
      if (part.ok && part.reply.setCookies !== undefined) forwardCookies(part, host, setCookies)
      if (perBackend !== undefined) {
        perBackend[part.backend.name] = part.ok
          ? { verdict, source: part.cached ? 'cache' : 'backend', reason: part.reply.reason ?? null, signals: part.reply.signals ?? {} }
          : { verdict, source: 'fallback', reason: part.reason ?? part.failure }
      }
    }
    return {
      verdict: config.monitor ? 'allow' : winnerVerdict,
      wouldBe: winnerVerdict,
      reason: winner.ok ? (winner.reply.reason ?? null) : (winner.reason ?? winner.failure),
      source: winner.ok ? (winner.cached ? 'cache' : 'backend') : 'fallback',
      backend: winner.backend.name,
      ip,
      requestId: winner.ok ? (winner.reply.requestId ?? null) : null,
      latencyMs: ended - started,
      complete,
      signals: perBackend ?? (winner.ok ? (winner.reply.signals ?? {}) : {}),
      setCookies,
    }
  }

  /**
   * The page and query for a challenge or block redirect, or `null` when there is none to use.
   * The visitor returns to `url`, or to `referer` when that names a page on the site.
   */
  function pageFor(
    kind: 'challenge' | 'deny',
    decision: Decision,
    input: DecisionInput,
    protocol: 'http' | 'https',
    backend: DecisionBackend | undefined,
    url: string,
    referer?: string,
  ): string | null {
    const page = config[kind].url ?? backend?.pages?.[kind]
    if (page === undefined) return null
    const origin = returnOrigin(protocol, input.host, config.redirectHosts)
    if (origin === null) return null
    let query: Record<string, string> = {}
    try {
      query = backend?.pages?.query?.(decision, input) ?? {}
    } catch (error) {
      logger.error({ code: 'SP_BACKEND_FAILED', backend: backend?.name, err: error }, 'Building the page query failed.')
    }
    // The Referer is the client's word: checked like a redirect_url that arrives from outside.
    const back = (referer === undefined ? null : safeRedirectTarget(referer, origin, redirectHostSet)) ?? returnUrl(origin, url)
    return pageLocation(page, { ...query, redirect_url: back }, origin)
  }

  /** What the adapter must do with a decision; waits only when a hook runs. */
  function act(
    decision: Decision,
    view: RequestView<Native>,
    input: DecisionInput,
    protocol: 'http' | 'https',
    checkpoint: CompiledCheckpoint<Native> | undefined,
  ): MaybePromise<Action> {
    const { native } = view
    switch (decision.verdict) {
      case 'allow':
        return NEXT
      case 'review': {
        const onReview = config.onReview
        if (onReview === undefined) return view.responded() ? NONE : NEXT
        return runHook('onReview', () => onReview(decision, native)).then(() => (view.responded() ? NONE : NEXT))
      }
      case 'challenge': {
        const hook = checkpoint?.challenge ?? config.challenge.hook
        if (hook !== undefined) {
          return runHook('challenge.hook', () => hook(decision, native)).then((result) => {
            if (result === 'continue') return NEXT
            return view.responded() ? NONE : challengeRequired(decision)
          })
        }
        if (view.responded()) return NONE
        if (isNavigation(view.method, view.headers)) {
          const location = pageFor('challenge', decision, input, protocol, backendNamed(decision), view.url)
          return location === null ? challengeRequired(decision) : redirect(location)
        }
        // A person's form post (a login past its limit) goes to the page too: a 303, which the
        // browser follows with a GET, and back to the page the form is on to submit it again.
        if (isFormSubmission(view.method, view.headers)) {
          const location = pageFor('challenge', decision, input, protocol, backendNamed(decision), view.url, view.headers.referer)
          return location === null ? challengeRequired(decision) : redirect(location, 303)
        }
        return challengeRequired(decision)
      }
      case 'deny': {
        if (view.responded()) return NONE
        const location = isNavigation(view.method, view.headers)
          ? pageFor('deny', decision, input, protocol, backendNamed(decision), view.url)
          : null
        return location === null ? forbidden(decision, view.headers) : redirect(location)
      }
    }
  }

  function backendNamed(decision: Decision): DecisionBackend | undefined {
    return backends.find((candidate) => candidate.name === decision.backend)
  }

  /** Answers a request to a backend's own route (the self-hosted challenge, say). */
  async function serve(
    view: RequestView<Native>,
    backend: DecisionBackend,
    routes: BackendRoutes,
    path: string,
    started: number,
  ): Promise<Outcome> {
    const trust = config.trust ?? view.frameworkTrust ?? trustNone
    const { ip, peerTrusted } = resolveClientIp(view.remoteAddress, view.headers, trust, config.clientIpHeader)
    const protocol = resolveProtocol(view.encrypted, view.headers, peerTrusted)
    const query = view.url.indexOf('?')
    const fragment = view.url.indexOf('#')
    const request: ServedRequest = {
      method: view.method,
      path,
      query: new URLSearchParams(query < 0 ? '' : view.url.slice(query + 1, fragment > query ? fragment : undefined)),
      headers: view.headers,
      ip,
      origin: returnOrigin(protocol, resolveHost(view.headers, peerTrusted), config.redirectHosts),
      secure: protocol === 'https',
      redirectHosts: redirectHostSet,
      async readForm(limit) {
        const type = view.headers['content-type'] ?? ''
        if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) return null
        // A body parser for another type (Express 4's json()) leaves `{}` and the stream
        // unread: only a parsed body that holds string fields is taken as the form.
        const parsed = view.body
        if (typeof parsed === 'object' && parsed !== null) {
          const fields = Object.entries(parsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string')
          if (fields.length > 0) return new URLSearchParams(fields)
        }
        const raw = await view.readBody(limit)
        return raw === null ? null : new URLSearchParams(raw)
      },
    }
    let served: ServedResponse
    try {
      served = await routes.handle(request)
    } catch (error) {
      logger.error({ code: 'SP_ROUTE_FAILED', backend: backend.name, err: error }, `${backend.name} failed to answer ${path}.`)
      served = {
        status: 503,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
        body: 'Service unavailable',
      }
    }
    const decision = decisionWithoutReply(
      'allow',
      'allow',
      'sallyport_route',
      'skip',
      backend.name,
      ip,
      performance.now() - started,
      served.setCookies ?? [],
    )
    const action: Action =
      'redirect' in served
        ? redirect(served.redirect, served.status)
        : { type: 'respond', status: served.status, headers: served.headers, body: served.body }
    notify(decision, view.native)
    return { decision, action }
  }

  function decide(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native> | undefined): MaybePromise<Outcome> {
    const started = performance.now()
    const { native } = view
    // A client that sent a whole request and reset the connection cannot read any answer:
    // its request is not passed on (it would otherwise be judged without an IP). Monitor
    // mode changes nothing, so there it is judged like any other.
    if (view.remoteAddress === undefined && !config.monitor && view.clientGone?.() === true) return clientGone(view, started)

    if (checkpoint === undefined) {
      const path = pathOnly(view.url)
      for (const backend of routed) {
        const routes = backend.routes as BackendRoutes
        if (path.startsWith(routes.prefix)) return serve(view, backend, routes, path, started)
      }
      const skipped = config.skip(view.method, path, native)
      if (skipped !== null) {
        const ip = resolveClientIp(
          view.remoteAddress,
          view.headers,
          config.trust ?? view.frameworkTrust ?? trustNone,
          config.clientIpHeader,
        ).ip
        const decision = decisionWithoutReply('allow', 'allow', `skip:${skipped}`, 'skip', firstBackend, ip, performance.now() - started)
        notify(decision, native)
        return { decision, action: NEXT }
      }
    }

    const finish = telemetry.startDecision(checkpoint?.event)
    const outcome = decideWithBackends(view, checkpoint, started)
    if (finish === NOOP_END) return outcome
    if (outcome instanceof Promise) {
      return outcome.then((settled) => {
        finish(settled.decision)
        return settled
      })
    }
    finish(outcome.decision)
    return outcome
  }

  function decideWithBackends(
    view: RequestView<Native>,
    checkpoint: CompiledCheckpoint<Native> | undefined,
    started: number,
  ): MaybePromise<Outcome> {
    const frameworkTrust = config.trust === undefined ? view.frameworkTrust : undefined
    if (frameworkTrust !== undefined) checkTrust(frameworkTrust, true)
    const trust = config.trust ?? frameworkTrust ?? trustNone
    const { ip, peerTrusted } = resolveClientIp(view.remoteAddress, view.headers, trust, config.clientIpHeader)
    if (!peerTrusted && view.headers['x-forwarded-for'] !== undefined && isPrivatePeer(view.remoteAddress)) {
      warnings.once(
        'SP_WARN_XFF_UNTRUSTED',
        'Requests carry X-Forwarded-For from a private address, but no proxy is trusted, so every visitor looks like the proxy. Set `trustProxy` (or the framework setting) to your proxies.',
        { peer: view.remoteAddress },
      )
    }
    const host = resolveHost(view.headers, peerTrusted)
    const protocol = resolveProtocol(view.encrypted, view.headers, peerTrusted)
    const cookies = readCookies(view.headers, config.limits.maxCookies)
    const headers = headerViews.select(view.headers)
    const path = pathForBackends(view.url, config.forwardQuery)
    if (checkpoint !== undefined) warnIfBodyUnparsed(view, checkpoint, warnings)
    const checkpointData = checkpoint === undefined ? null : checkpoint.extract(view.native)
    // Plain loops on this path: a closure or an array iterator per request shows in the profile.
    const inputs = new Array<Input>(backends.length)
    for (let index = 0; index < backends.length; index++) {
      const allowed = cookieAllowLists.get(backends[index] as DecisionBackend)
      const seen = headers[headerViews.viewOf[index] as number] as Record<string, string>
      inputs[index] = new Input(ip, view.method, path, host, seen, cookies, checkpointData, allowed)
    }
    const cacheKind =
      cache !== undefined && (checkpoint === undefined || cache.checkpoints)
        ? requestKind(view.method, isNavigation(view.method, view.headers), checkpointData)
        : null
    return callBackends({ view, checkpoint, started, inputs, ip, host, protocol, cacheKind })
  }

  /** One backend's verdict from the cache when there is one in time; else the backend, whose verdict is then kept. */
  async function callThroughCache(
    cache: DecisionCache,
    slot: CacheSlot,
    backend: DecisionBackend,
    input: DecisionInput,
    deadline: Budget,
  ): Promise<Part> {
    const cached = await withinBudget(cache.get(slot), Math.max(0, deadline.at - performance.now()))
    if (cached !== undefined) {
      try {
        return { backend, ok: true, reply: checkReply(cached, backend.name), cached: true }
      } catch {
        // An entry that does not read as a reply (a shared store written by something else): ask the backend.
      }
    }
    const part = await callBackend(backend, input, deadline)
    if (part.ok) void cache.set(slot, part.reply)
    return part
  }

  /** Calls one backend, through the decision cache when its verdicts may be reused for this request. */
  function callOne(job: Job<Native>, backend: DecisionBackend, input: Input, deadline: Budget): MaybePromise<Part> {
    if (job.cacheKind === null || cache === undefined || backend.cacheable === false) return callBackend(backend, input, deadline)
    const slot = cache.slotFor(backend, input, job.cacheKind)
    return slot === null ? callBackend(backend, input, deadline) : callThroughCache(cache, slot, backend, input, deadline)
  }

  /** The winning backend's input, for the redirect a verdict may need. */
  function inputOf(job: Job<Native>, decision: Decision): DecisionInput {
    const index = backends.findIndex((backend) => backend.name === decision.backend)
    return (job.inputs[Math.max(index, 0)] ?? job.inputs[0]) as DecisionInput
  }

  /** Every backend either decides in process or sits behind an open breaker. */
  function decidesInProcessNow(): boolean {
    let now: number | undefined
    for (const backend of backends) {
      if (backend.inProcess === true) continue
      now ??= performance.now()
      if (breakers.get(backend)?.isOpen(now) !== true) return false
    }
    return true
  }

  function callBackends(job: Job<Native>): MaybePromise<Outcome> {
    // A backend behind an open breaker will not be called: if the rest decide in process,
    // this decision needs no timer either (a vendor outage should not cost the local engine).
    const local = inProcess || decidesInProcessNow()
    const deadline: Budget = local ? new InProcessBudget(job.started + config.timeoutMs) : new Deadline(config.timeoutMs)
    const stopListening = local ? noop : job.view.onClientGone(() => deadline.abort(ABORT_CLIENT_GONE))
    const calls = new Array<MaybePromise<Part>>(backends.length)
    let waiting = false
    try {
      for (let index = 0; index < backends.length; index++) {
        const call = callOne(job, backends[index] as DecisionBackend, job.inputs[index] as Input, deadline)
        if (call instanceof Promise) waiting = true
        calls[index] = call
      }
    } catch (error) {
      endCalls(deadline, stopListening)
      throw error
    }
    if (!waiting) {
      endCalls(deadline, stopListening)
      // Every call settled in this tick, the last at `settledAt`.
      return conclude(job, calls as Part[], deadline, settledAt)
    }
    const done = (parts: Part[]): MaybePromise<Outcome> => {
      endCalls(deadline, stopListening)
      return conclude(job, parts, deadline, performance.now())
    }
    const rethrow = (error: unknown): never => {
      endCalls(deadline, stopListening)
      throw error
    }
    // One backend: its part goes straight on, without an array promise in between.
    if (calls.length === 1) return (calls[0] as Promise<Part>).then((part) => done([part]), rethrow)
    return Promise.all(calls).then(done, rethrow)
  }

  function conclude(job: Job<Native>, parts: Part[], deadline: Budget, ended: number): MaybePromise<Outcome> {
    const { view, checkpoint } = job
    const { native } = view
    const onError = checkpoint === undefined ? config.onError : onErrorFor(checkpoint)
    const decision = combine(parts, onError, job.ip, job.host, job.started, ended)
    if (deadline.reason === ABORT_CLIENT_GONE) {
      decision.reason = 'client_gone'
      return { decision, action: NONE }
    }
    const invalid = parts.find(isInvalidCheckpoint)
    if (invalid !== undefined && !invalid.ok) {
      Object.assign(decision, {
        verdict: config.monitor ? 'allow' : 'deny',
        wouldBe: 'deny',
        reason: 'invalid_checkpoint',
        source: 'fallback',
        backend: invalid.backend.name,
      })
      notify(decision, native)
      if (config.monitor) {
        logger.error({ code: 'SP_INVALID_CHECKPOINT', err: invalid.error }, 'A checkpoint sent data its backend cannot accept.')
        return { decision, action: NEXT }
      }
      return { decision, action: { type: 'error', error: invalid.error as Error } }
    }
    notify(decision, native)
    // Most decisions allow: no hook, no page, nothing to wait for on the way back to the adapter.
    if (decision.verdict === 'allow') return { decision, action: NEXT }
    const action = act(decision, view, inputOf(job, decision), job.protocol, checkpoint)
    return action instanceof Promise ? action.then((settled) => ({ decision, action: settled })) : { decision, action }
  }

  /** The outcome for a client already gone: recorded, nothing written, nothing passed on. */
  function clientGone(view: RequestView<Native>, started: number): Outcome {
    // The peer is gone, and with it the address the client IP is resolved from.
    const decision = decisionWithoutReply('deny', 'deny', 'client_gone', 'fallback', firstBackend, null, performance.now() - started)
    notify(decision, view.native)
    return { decision, action: NONE }
  }

  /** Never throws, never rejects: a bug in Sallyport must not take the site down. */
  function decideNow(view: RequestView<Native>, checkpoint?: CompiledCheckpoint<Native>): MaybePromise<Outcome> {
    let outcome: MaybePromise<Outcome>
    try {
      outcome = decide(view, checkpoint)
    } catch (error) {
      return internalError(view, checkpoint, error)
    }
    return outcome instanceof Promise ? outcome.catch((error: unknown) => internalError(view, checkpoint, error)) : outcome
  }

  /** The strictest verdict a failure policy gives any failure class: what a failure of unknown kind gets. */
  function strictestFallback(onError: Record<FailureClass, Verdict>): Verdict {
    let strictest: Verdict = 'allow'
    for (const failure in onError) {
      const verdict = onError[failure as FailureClass]
      if (STRICTNESS[verdict] > STRICTNESS[strictest]) strictest = verdict
    }
    return strictest
  }

  /**
   * Logs a failure of Sallyport itself. The request gets no more than its failure policy
   * allows: the strictest verdict `onError` gives any failure class, so a fail-open site lets
   * it through and a fail-closed checkpoint stays closed. The answer is the plainest one (no
   * hook, no page), built from nothing that could have failed.
   */
  function internalError(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native> | undefined, error: unknown): Outcome {
    const wouldBe = strictestFallback(checkpoint === undefined ? config.onError : onErrorFor(checkpoint))
    const verdict = config.monitor ? 'allow' : wouldBe
    logger.error(
      { code: 'SP_INTERNAL', err: error, verdict },
      verdict === 'allow'
        ? 'Sallyport failed to decide; the request was let through.'
        : `Sallyport failed to decide; the failure policy gave ${verdict}.`,
    )
    const decision = decisionWithoutReply(verdict, wouldBe, 'internal_error', 'fallback', firstBackend, null, 0)
    notify(decision, view.native)
    let responded = false
    try {
      responded = view.responded()
    } catch {}
    if (responded) return { decision, action: NONE }
    if (verdict === 'deny') return { decision, action: INTERNAL_DENY }
    if (verdict === 'challenge') return { decision, action: challengeRequired(decision) }
    return { decision, action: NEXT }
  }

  return {
    decide(view, checkpoint) {
      const outcome = decideNow(view, checkpoint)
      return outcome instanceof Promise ? outcome : Promise.resolve(outcome)
    },
    decideNow,
    checkpoint(spec) {
      const compiled = compileCheckpoint(spec)
      if (compiled.onError !== undefined) checkOnError(onErrorFor(compiled), `The \`${compiled.event}\` checkpoint's`)
      return compiled
    },
    breakerStates() {
      return Object.fromEntries(backends.map((backend) => [backend.name, breakers.get(backend)?.state ?? 'closed']))
    },
    async close() {
      await Promise.all(backends.map((backend) => backend.close?.()))
    },
  }
}
