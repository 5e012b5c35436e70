import ipaddr from 'ipaddr.js'
import { type BreakerState, CircuitBreaker } from './breaker.js'
import { DecisionCache } from './cache.js'
import { type CheckpointSpec, type CompiledCheckpoint, compileCheckpoint } from './checkpoint.js'
import { resolveClientIp, resolveHost, resolveProtocol } from './client-ip.js'
import { type Budget, Deadline, InProcessBudget } from './deadline.js'
import { failureOf, GatehouseError } from './errors.js'
import { readCookies, sanitizeHeaders } from './headers.js'
import { Warnings } from './logger.js'
import { type GateOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { returnOrigin, returnUrl } from './redirect.js'
import { challengeRequired, forbidden, isNavigation, pageLocation, redirect } from './respond.js'
import { checkSetCookie } from './set-cookie.js'
import { pathOnly } from './skip.js'
import { createTelemetry, type Telemetry } from './telemetry.js'
import { ABORT_CLIENT_GONE, ABORT_TIMEOUT } from './transport.js'
import type {
  Action,
  BackendRoutes,
  BackendVerdict,
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
  /** Validates a checkpoint spec now, so a bad route fails at start-up. */
  checkpoint(spec: CheckpointSpec<Native>): CompiledCheckpoint<Native>
  /** Each backend's circuit breaker state (`closed` when breakers are off). */
  breakerStates(): Record<string, BreakerState>
  /** Releases the backends' connection pools. */
  close(): Promise<void>
}

const NEXT: Action = Object.freeze({ type: 'next' })
const NONE: Action = Object.freeze({ type: 'none' })
const STRICTNESS: Record<Verdict, number> = { allow: 0, review: 1, challenge: 2, deny: 3 }
const VERDICTS = new Set<unknown>(Object.keys(STRICTNESS))
const trustNone: TrustFunction = () => false
const noop = (): void => {}
/** Failure classes that say the backend itself is down or slow: only these move the breaker. */
const OUTAGES: ReadonlySet<FailureClass> = new Set(['timeout', 'network', 'server'])

/** What a backend call gets; a class so the lazily created signal costs no per-call accessor object. */
class CallContext implements DecideContext {
  readonly #budget: Budget
  readonly deadline: number
  readonly retries: number
  constructor(budget: Budget, retries: number) {
    this.#budget = budget
    this.deadline = budget.at
    this.retries = retries
  }
  get signal(): AbortSignal {
    return this.#budget.signal
  }
}

type Part =
  | { backend: DecisionBackend; ok: true; reply: BackendVerdict }
  | { backend: DecisionBackend; ok: false; failure: FailureClass; error: unknown; reason?: string }

function isInvalidCheckpoint(part: Part): boolean {
  return !part.ok && part.error instanceof GatehouseError && part.error.code === 'GH_INVALID_CHECKPOINT'
}

/** A backend's reply is checked like any untrusted input: a bad shape is an `invalid` failure. */
function checkReply(reply: unknown, backend: string): BackendVerdict {
  if (typeof reply !== 'object' || reply === null || !VERDICTS.has((reply as BackendVerdict).verdict)) {
    throw GatehouseError.backend('invalid', `${backend} returned no valid verdict.`)
  }
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
  const warnings = new Warnings(logger, config.disabledWarnings)
  const cookieAllowLists = new Map(backends.map((backend) => [backend, new Set(backend.cookies ?? [])]))
  const telemetry: Telemetry = config.telemetry === false ? createTelemetry(null) : createTelemetry(config.telemetry.api)
  const breakers = new Map<DecisionBackend, CircuitBreaker>()
  if (config.breaker !== false) {
    for (const backend of backends) {
      breakers.set(
        backend,
        new CircuitBreaker(config.breaker, (state) => {
          telemetry.breakerChanged(backend.name, state)
          const message =
            state === 'open'
              ? `${backend.name} keeps failing: decisions take the fallback without calling it until a probe succeeds.`
              : state === 'closed'
                ? `${backend.name} answers again: the circuit breaker closed.`
                : `${backend.name}: probing after the cool-down.`
          logger.warn({ code: `GH_BREAKER_${state.toUpperCase().replace('-', '_')}`, backend: backend.name, state }, message)
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
  const cache = config.cache === undefined ? undefined : new DecisionCache(config.cache, backends)
  const declaredCookies = new Set(backends.flatMap((backend) => backend.cookies ?? []))
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
      'GH_WARN_TRUST_ALL_PROXIES',
      inherited
        ? "The framework's proxy setting (Express `trust proxy: true`, or Koa `app.proxy` without `maxIpsCount`) trusts every X-Forwarded-For entry, so any client can choose its IP. Set `trustProxy` to your proxies (a hop count or their ranges)."
        : '`trustProxy: true` trusts every X-Forwarded-For entry, so any client can choose its IP. Name your proxies (a hop count or their ranges) instead.',
    )
  }
  if (config.trust !== undefined && process.env.NODE_ENV === 'production') checkTrust(config.trust, false)

  function notify(decision: Decision, request: Native): void {
    if (config.onDecision === undefined) return
    try {
      config.onDecision(decision, request)
    } catch (error) {
      logger.error({ code: 'GH_HOOK_FAILED', hook: 'onDecision', err: error }, 'onDecision threw; the request goes on.')
    }
  }

  /** Runs a user hook for at most `hookTimeoutMs`; its failure is logged, never thrown. */
  async function runHook(name: string, hook: () => unknown): Promise<unknown> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        logger.error(
          { code: 'GH_HOOK_TIMEOUT', hook: name },
          `${name} did not settle within ${config.hookTimeoutMs} ms; Gatehouse carried on.`,
        )
        resolve(undefined)
      }, config.hookTimeoutMs)
    })
    try {
      return await Promise.race([Promise.resolve().then(hook), timeout])
    } catch (error) {
      logger.error({ code: 'GH_HOOK_FAILED', hook: name, err: error }, `${name} threw; Gatehouse carried on.`)
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }

  async function attempt(backend: DecisionBackend, input: DecisionInput, deadline: Budget): Promise<Part> {
    try {
      const ctx = new CallContext(deadline, config.retries)
      const decided = backend.decide(input, ctx)
      const reply = deadline.expired === null ? await decided : await Promise.race([decided, deadline.expired])
      return { backend, ok: true, reply: checkReply(reply, backend.name) }
    } catch (error) {
      const failure = deadline.reason === ABORT_TIMEOUT ? 'timeout' : failureOf(error)
      if (failure === 'client' && error instanceof GatehouseError) {
        warnings.once(
          'GH_WARN_BACKEND_REFUSED',
          `${backend.name} refused Gatehouse's request: ${error.message} Check the backend's key and quota.`,
          {
            backend: backend.name,
            status: error.status,
          },
        )
      }
      logger.debug?.({ code: 'GH_BACKEND_FAILED', backend: backend.name, failure, err: error }, 'Backend failed; using the fallback.')
      return { backend, ok: false, failure, error }
    }
  }

  /** Calls one backend inside the decision's deadline, through its circuit breaker. */
  async function callBackend(backend: DecisionBackend, input: DecisionInput, deadline: Budget): Promise<Part> {
    const breaker = breakers.get(backend)
    if (breaker !== undefined && !breaker.tryCall(performance.now())) {
      telemetry.backendCall(backend.name, 0, 'circuit_open')
      const error = GatehouseError.backend(breaker.lastFailure, `${backend.name} is not called while its circuit breaker is open.`)
      return { backend, ok: false, failure: breaker.lastFailure, error, reason: 'circuit_open' }
    }
    // The budget was chosen before tryCall: if a cool-down ended in between, this is a probe
    // to an I/O backend and needs a real deadline.
    const budget =
      deadline instanceof InProcessBudget && backend.inProcess !== true ? new Deadline(deadline.at - performance.now()) : deadline
    const callStarted = performance.now()
    const part = await callWithinBudget(backend, input, budget)
    if (budget !== deadline) budget.clear()
    telemetry.backendCall(backend.name, performance.now() - callStarted, part.ok ? 'ok' : part.failure)
    if (breaker === undefined) return part
    if (part.ok) breaker.success(performance.now())
    else if (OUTAGES.has(part.failure) && deadline.reason !== ABORT_CLIENT_GONE) breaker.failure(performance.now(), part.failure)
    // A refused or unreadable reply may be about this request's input: a client could craft
    // such requests to open the breaker for everyone, so they neither open nor close it.
    else breaker.abandon()
    return part
  }

  /** In a fan-out, a backend whose own `timeoutMs` is shorter than the budget gets its own, shorter deadline. */
  function callWithinBudget(backend: DecisionBackend, input: DecisionInput, deadline: Budget): Promise<Part> {
    const own =
      backends.length > 1 && backend.timeoutMs !== undefined && backend.timeoutMs < config.timeoutMs ? backend.timeoutMs : undefined
    if (own === undefined) return attempt(backend, input, deadline)
    const shorter = new Deadline(own, deadline instanceof Deadline ? deadline : undefined)
    return attempt(backend, input, shorter).finally(() => shorter.clear())
  }

  function forwardCookies(part: Part, host: string | null, into: string[]): void {
    if (!part.ok || part.reply.setCookies === undefined) return
    const allowed = cookieAllowLists.get(part.backend) ?? new Set<string>()
    for (const value of part.reply.setCookies) {
      const check =
        typeof value === 'string' ? checkSetCookie(value, allowed, host) : ({ ok: false, reason: 'malformed', name: null } as const)
      if (check.ok) into.push(value)
      else {
        warnings.once('GH_WARN_COOKIE_REJECTED', `A Set-Cookie from ${part.backend.name} was dropped (${check.reason}).`, {
          backend: part.backend.name,
          reason: check.reason,
          cookie: check.name,
        })
      }
    }
  }

  function combine(parts: Part[], onError: Record<FailureClass, Verdict>, host: string | null, started: number): Decision {
    let winner = parts[0] as Part
    let winnerVerdict: Verdict = 'allow'
    let complete = true
    const setCookies: string[] = []
    const perBackend: Record<string, unknown> = {}
    parts.forEach((part, index) => {
      const verdict = part.ok ? part.reply.verdict : onError[part.failure]
      // On a tie, a backend that answered explains the decision better than one that fell back.
      const stricter = STRICTNESS[verdict] > STRICTNESS[winnerVerdict]
      const tieWithBetterSource = STRICTNESS[verdict] === STRICTNESS[winnerVerdict] && part.ok && !winner.ok
      if (index === 0 || stricter || tieWithBetterSource) {
        winner = part
        winnerVerdict = verdict
      }
      if (part.ok && part.reply.complete === false) complete = false
      forwardCookies(part, host, setCookies)
      if (parts.length > 1) {
        perBackend[part.backend.name] = part.ok
          ? { verdict, source: 'backend', reason: part.reply.reason ?? null, signals: part.reply.signals ?? {} }
          : { verdict, source: 'fallback', reason: part.reason ?? part.failure }
      }
    })
    const decision: Decision = {
      verdict: config.monitor ? 'allow' : winnerVerdict,
      wouldBe: winnerVerdict,
      reason: winner.ok ? (winner.reply.reason ?? null) : (winner.reason ?? winner.failure),
      source: winner.ok ? 'backend' : 'fallback',
      backend: winner.backend.name,
      requestId: winner.ok ? (winner.reply.requestId ?? null) : null,
      latencyMs: 0,
      complete,
      signals: parts.length > 1 ? perBackend : winner.ok ? (winner.reply.signals ?? {}) : {},
      setCookies,
    }
    decision.latencyMs = performance.now() - started
    return decision
  }

  /** The page and query for a challenge or block redirect, or `null` when there is none to use. */
  function pageFor(
    kind: 'challenge' | 'deny',
    decision: Decision,
    input: DecisionInput,
    protocol: 'http' | 'https',
    backend: DecisionBackend | undefined,
  ): string | null {
    const page = config[kind].url ?? backend?.pages?.[kind]
    if (page === undefined) return null
    const origin = returnOrigin(protocol, input.host, config.redirectHosts)
    if (origin === null) return null
    let query: Record<string, string> = {}
    try {
      query = backend?.pages?.query?.(decision, input) ?? {}
    } catch (error) {
      logger.error({ code: 'GH_BACKEND_FAILED', backend: backend?.name, err: error }, 'Building the page query failed.')
    }
    return pageLocation(page, { ...query, redirect_url: returnUrl(origin, input.path) }, origin)
  }

  async function act(
    decision: Decision,
    view: RequestView<Native>,
    input: DecisionInput,
    protocol: 'http' | 'https',
    checkpoint: CompiledCheckpoint<Native> | undefined,
  ): Promise<Action> {
    const { native } = view
    const backend = backends.find((candidate) => candidate.name === decision.backend)
    switch (decision.verdict) {
      case 'allow':
        return NEXT
      case 'review':
        if (config.onReview !== undefined) {
          const onReview = config.onReview
          await runHook('onReview', () => onReview(decision, native))
        }
        return view.responded() ? NONE : NEXT
      case 'challenge': {
        const hook = checkpoint?.challenge ?? config.challenge.hook
        if (hook !== undefined) {
          const result = await runHook('challenge.hook', () => hook(decision, native))
          if (result === 'continue') return NEXT
          return view.responded() ? NONE : challengeRequired(decision)
        }
        if (view.responded()) return NONE
        const location = isNavigation(view.method, view.headers) ? pageFor('challenge', decision, input, protocol, backend) : null
        return location === null ? challengeRequired(decision) : redirect(location)
      }
      case 'deny': {
        if (view.responded()) return NONE
        const location = isNavigation(view.method, view.headers) ? pageFor('deny', decision, input, protocol, backend) : null
        return location === null ? forbidden(decision, view.headers) : redirect(location)
      }
    }
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
      logger.error({ code: 'GH_ROUTE_FAILED', backend: backend.name, err: error }, `${backend.name} failed to answer ${path}.`)
      served = {
        status: 503,
        headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' },
        body: 'Service unavailable',
      }
    }
    const decision: Decision = {
      verdict: 'allow',
      wouldBe: 'allow',
      reason: 'gatehouse_route',
      source: 'skip',
      backend: backend.name,
      requestId: null,
      latencyMs: performance.now() - started,
      complete: true,
      signals: {},
      setCookies: served.setCookies ?? [],
    }
    const action: Action =
      'redirect' in served
        ? redirect(served.redirect, served.status)
        : { type: 'respond', status: served.status, headers: served.headers, body: served.body }
    notify(decision, view.native)
    return { decision, action }
  }

  async function decide(view: RequestView<Native>, checkpoint?: CompiledCheckpoint<Native>): Promise<Outcome> {
    const started = performance.now()
    const { native } = view

    if (checkpoint === undefined) {
      const path = pathOnly(view.url)
      for (const backend of routed) {
        const routes = backend.routes as BackendRoutes
        if (path.startsWith(routes.prefix)) return serve(view, backend, routes, path, started)
      }
      const skipped = config.skip(view.method, path, native)
      if (skipped !== null) {
        const decision: Decision = {
          verdict: 'allow',
          wouldBe: 'allow',
          reason: `skip:${skipped}`,
          source: 'skip',
          backend: backends[0]?.name ?? 'none',
          requestId: null,
          latencyMs: performance.now() - started,
          complete: true,
          signals: {},
          setCookies: [],
        }
        notify(decision, native)
        return { decision, action: NEXT }
      }
    }

    const finish = telemetry.startDecision(checkpoint?.event)
    const outcome = await decideWithBackends(view, checkpoint, started)
    finish(outcome.decision)
    return outcome
  }

  async function decideWithBackends(
    view: RequestView<Native>,
    checkpoint: CompiledCheckpoint<Native> | undefined,
    started: number,
  ): Promise<Outcome> {
    const { native } = view
    const trust = config.trust ?? view.frameworkTrust ?? trustNone
    if (config.trust === undefined && view.frameworkTrust !== undefined) checkTrust(view.frameworkTrust, true)
    const { ip, peerTrusted } = resolveClientIp(view.remoteAddress, view.headers, trust, config.clientIpHeader)
    if (!peerTrusted && view.headers['x-forwarded-for'] !== undefined && isPrivatePeer(view.remoteAddress)) {
      warnings.once(
        'GH_WARN_XFF_UNTRUSTED',
        'Requests carry X-Forwarded-For from a private address, but no proxy is trusted, so every visitor looks like the proxy. Set `trustProxy` (or the framework setting) to your proxies.',
        { peer: view.remoteAddress },
      )
    }
    const host = resolveHost(view.headers, peerTrusted)
    const protocol = resolveProtocol(view.encrypted, view.headers, peerTrusted)
    const cookies = readCookies(view.headers, config.limits.maxCookies)
    const headers = sanitizeHeaders(view.headers, config.sensitive, config.limits)
    const checkpointData = checkpoint === undefined ? null : checkpoint.extract(native)
    // A literal per backend (not a spread of a shared base): this runs on every request.
    const inputWith = (allowed: ReadonlySet<string> | undefined): DecisionInput => ({
      ip,
      method: view.method,
      path: view.url,
      host,
      headers,
      cookieNames: cookies.names,
      checkpoint: checkpointData,
      cookie: (name) => (allowed?.has(name) ? cookies.value(name) : undefined),
    })
    const inputs = backends.map((backend) => inputWith(cookieAllowLists.get(backend)))
    const inputFor = (backend: DecisionBackend): DecisionInput => inputs[backends.indexOf(backend)] ?? inputWith(undefined)

    const cacheKey =
      cache !== undefined && (checkpoint === undefined || cache.checkpoints) ? cache.keyFor(inputWith(declaredCookies)) : null
    if (cacheKey !== null) {
      const cached = await withinBudget(cache?.get(cacheKey), config.timeoutMs)
      if (cached !== undefined) {
        const decision: Decision = {
          ...cached,
          verdict: config.monitor ? 'allow' : cached.wouldBe,
          source: 'cache',
          latencyMs: performance.now() - started,
          setCookies: [],
        }
        notify(decision, native)
        const winner = backends.find((backend) => backend.name === decision.backend) ?? (backends[0] as DecisionBackend)
        return { decision, action: await act(decision, view, inputFor(winner), protocol, checkpoint) }
      }
    }

    // A backend behind an open breaker will not be called: if the rest decide in process,
    // this decision needs no timer either (a vendor outage should not cost the local engine).
    const now = performance.now()
    const local = inProcess || backends.every((backend) => backend.inProcess === true || breakers.get(backend)?.isOpen(now) === true)
    const deadline: Budget = local ? new InProcessBudget(config.timeoutMs) : new Deadline(config.timeoutMs)
    const stopListening = local ? noop : view.onClientGone(() => deadline.abort(ABORT_CLIENT_GONE))
    let parts: Part[]
    try {
      const [only] = backends
      parts =
        backends.length === 1 && only !== undefined
          ? [await callBackend(only, inputFor(only), deadline)]
          : await Promise.all(backends.map((backend) => callBackend(backend, inputFor(backend), deadline)))
    } finally {
      deadline.clear()
      stopListening()
    }

    const onError = checkpoint === undefined ? config.onError : onErrorFor(checkpoint)
    const decision = combine(parts, onError, host, started)
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
        logger.error({ code: 'GH_INVALID_CHECKPOINT', err: invalid.error }, 'A checkpoint sent data its backend cannot accept.')
        return { decision, action: NEXT }
      }
      return { decision, action: { type: 'error', error: invalid.error as Error } }
    }
    if (cacheKey !== null) void cache?.set(cacheKey, decision)
    notify(decision, native)
    // Most decisions allow: no hook, no page, no extra await on the way back to the adapter.
    if (decision.verdict === 'allow') return { decision, action: NEXT }
    const fullInput = inputFor(backends.find((backend) => backend.name === decision.backend) ?? (backends[0] as DecisionBackend))
    const action = await act(decision, view, fullInput, protocol, checkpoint)
    return { decision, action }
  }

  return {
    decide(view, checkpoint) {
      return decide(view, checkpoint).catch((error: unknown) => {
        // A bug here must not take the site down: log it and let the request through.
        logger.error({ code: 'GH_INTERNAL', err: error }, 'Gatehouse failed to decide; the request was let through.')
        const decision: Decision = {
          verdict: 'allow',
          wouldBe: 'allow',
          reason: 'internal_error',
          source: 'fallback',
          backend: backends[0]?.name ?? 'none',
          requestId: null,
          latencyMs: 0,
          complete: false,
          signals: {},
          setCookies: [],
        }
        return { decision, action: view.responded() ? NONE : NEXT }
      })
    },
    checkpoint: compileCheckpoint,
    breakerStates() {
      return Object.fromEntries(backends.map((backend) => [backend.name, breakers.get(backend)?.state ?? 'closed']))
    },
    async close() {
      await Promise.all(backends.map((backend) => backend.close?.()))
    },
  }
}
