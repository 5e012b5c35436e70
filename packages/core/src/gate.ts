import { Act, INTERNAL_DENY, NEXT, NONE } from './act/action.js'
import { serveRoute } from './act/serve.js'
import { type Answers, Ask } from './ask/calls.js'
import type { BreakerState } from './breaker.js'
import { requestKind } from './cache.js'
import { type CheckpointSpec, type CompiledCheckpoint, compileCheckpoint } from './checkpoint.js'
import { conclude, decisionWithoutReply, type FailurePolicy, invalidCheckpointError, strictestFallback } from './conclude/decision.js'
import { type Identified, Identify } from './identify/request.js'
import { Warnings } from './logger.js'
import { type GateOptions, type ResolvedOptions, resolveOptions } from './options.js'
import { challengeRequired, isHtmlPageLoad } from './respond.js'
import { andThen, type Eventually } from './same-tick.js'
import { pathOnly } from './skip.js'
import { createTelemetry, NOOP_END } from './telemetry.js'
import { type BackendRoutes, type Decision, FAILURE_CLASSES, type Outcome, type RequestView } from './types.js'

/**
 * The gate: one request through the pipeline. Routes a backend serves and skipped requests
 * leave first; the rest are identified, asked about, concluded and acted on, each stage in its
 * own module (see the core README). The gate wires the stages, tells the app about each
 * decision, and keeps a failure of Sallyport's own from taking the site down.
 */
export interface Gate<Native = unknown> {
  /**
   * Decides one request (or one checkpoint) and says what the adapter must do. The outcome
   * comes without a promise when nothing in the decision had to wait (a skip, or backends
   * that decide in process, such as the embedded engine on its memory store), so an adapter
   * can answer in the same tick. Never throws, never rejects.
   */
  decide(view: RequestView<Native>, checkpoint?: CompiledCheckpoint<Native>): Eventually<Outcome>
  /** Validates a checkpoint spec now, so a bad route fails at start-up. */
  checkpoint(spec: CheckpointSpec<Native>): CompiledCheckpoint<Native>
  /** Each backend's circuit breaker state (`closed` when breakers are off). */
  breakerStates(): Record<string, BreakerState>
  /** Releases the backends' connection pools. */
  close(): Promise<void>
}

/** The core every adapter wraps: options are validated here, once. */
export function createGate<Native = unknown>(options?: GateOptions<Native>): Gate<Native> {
  const config: ResolvedOptions<Native> = resolveOptions(options)
  const { backends, logger, monitor } = config
  /** What a decision no backend made names as its backend. */
  const firstBackend = backends[0]?.name ?? 'none'
  const warnings = new Warnings(logger, config.disabledWarnings)
  const telemetry = createTelemetry(config.telemetry === false ? null : config.telemetry.api)
  for (const backend of backends) {
    for (const warning of backend.warnings ?? []) warnings.once(warning.code, warning.message, { backend: backend.name })
  }

  const identify = new Identify({ ...config, warnings })
  const ask = new Ask({ ...config, warnings, telemetry, reportFailures: !config.disabledWarnings.has('SP_WARN_BACKEND_REFUSED') })
  const act = new Act<Native>(config)
  const allowedCookies = backends.map((backend) => new Set(backend.cookies ?? []))
  const cookieRejected = (backend: string, reason: string, cookie: string | null): void =>
    warnings.once('SP_WARN_COOKIE_REJECTED', `A Set-Cookie from ${backend} was dropped (${reason}).`, { backend, reason, cookie })
  const routed = backends.filter((backend) => backend.routes !== undefined)

  const checkpointOnError = new WeakMap<CompiledCheckpoint<Native>, FailurePolicy>()
  /** A checkpoint's onError merged over the gate's, once per checkpoint rather than per request. */
  function onErrorFor(checkpoint: CompiledCheckpoint<Native> | undefined): FailurePolicy {
    if (checkpoint?.onError === undefined) return config.onError
    let merged = checkpointOnError.get(checkpoint)
    if (merged === undefined) {
      merged = { ...config.onError, ...checkpoint.onError }
      checkpointOnError.set(checkpoint, merged)
    }
    return merged
  }

  /**
   * Warns once when a failure policy fails closed for some classes and open for others: a
   * map such as `{ timeout: 'deny', server: 'deny' }` lets a vendor's 400 or 429 (`client`)
   * and an unreadable reply (`invalid`) through, which is rarely what a fail-closed route means.
   */
  function checkOnError(onError: FailurePolicy, whose: string): void {
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

  /** A decision no backend was asked about (a skip, a client already gone), told to the app. */
  function without(view: RequestView<Native>, decision: Decision, action: Outcome['action']): Outcome {
    notify(decision, view.native)
    return { decision, action }
  }

  function decide(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native> | undefined): Eventually<Outcome> {
    const started = performance.now()
    // A client that sent a whole request and reset the connection cannot read any answer:
    // its request is not passed on (it would otherwise be judged without an IP). Monitor
    // mode changes nothing, so there it is judged like any other.
    if (view.remoteAddress === undefined && !monitor && view.clientGone?.() === true) {
      // The peer is gone, and with it the address the client IP is resolved from.
      const gone = decisionWithoutReply('deny', 'deny', 'client_gone', 'fallback', firstBackend, null, performance.now() - started)
      return without(view, gone, NONE)
    }
    if (checkpoint === undefined) {
      const path = pathOnly(view.url)
      for (const backend of routed) {
        const routes = backend.routes as BackendRoutes
        if (path.startsWith(routes.prefix)) return serve(view, routes, backend.name, path, started)
      }
      const skipped = config.skip(view.method, path, view.native)
      if (skipped !== null) {
        const { ip } = identify.clientIp(view)
        return without(
          view,
          decisionWithoutReply('allow', 'allow', `skip:${skipped}`, 'skip', firstBackend, ip, performance.now() - started),
          NEXT,
        )
      }
    }

    const finish = telemetry.startDecision(checkpoint?.event)
    const identified = identify.identify(view, checkpoint)
    const cacheKind = ask.caches(checkpoint !== undefined)
      ? requestKind(view.method, isHtmlPageLoad(view.method, view.headers), identified.checkpoint)
      : null
    const answers = ask.ask(identified.inputs, started, cacheKind, view)
    const outcome = andThen(answers, (settled) => decided(view, checkpoint, identified, settled, started))
    if (finish === NOOP_END) return outcome
    return andThen(outcome, (settled) => {
      finish(settled.decision)
      return settled
    })
  }

  /** The answers, concluded and acted on. */
  function decided(
    view: RequestView<Native>,
    checkpoint: CompiledCheckpoint<Native> | undefined,
    identified: Identified,
    { answers, ended, clientGone }: Answers,
    started: number,
  ): Eventually<Outcome> {
    const decision = conclude({
      answers,
      onError: onErrorFor(checkpoint),
      monitor,
      ip: identified.ip,
      host: identified.host,
      latencyMs: ended - started,
      allowedCookies,
      cookieRejected,
    })
    if (clientGone) {
      decision.reason = 'client_gone'
      return { decision, action: NONE }
    }
    notify(decision, view.native)
    const invalid = invalidCheckpointError(answers)
    if (invalid !== undefined) {
      if (!monitor) return { decision, action: { type: 'error', error: invalid } }
      logger.error({ code: 'SP_INVALID_CHECKPOINT', err: invalid }, 'A checkpoint sent data its backend cannot accept.')
      return { decision, action: NEXT }
    }
    // Most decisions allow: no hook, no page, nothing to wait for on the way back to the adapter.
    if (decision.verdict === 'allow') return { decision, action: NEXT }
    // The winning backend's input, for the page a verdict may send the visitor to.
    const index = Math.max(
      0,
      backends.findIndex((backend) => backend.name === decision.backend),
    )
    const input = identified.inputs[index] ?? identified.inputs[0]
    if (input === undefined) return { decision, action: NEXT }
    return andThen(act.act(decision, view, input, identified.protocol, checkpoint), (action) => ({ decision, action }))
  }

  /** Answers a request to a backend's own route (the self-hosted challenge, say). */
  async function serve(view: RequestView<Native>, routes: BackendRoutes, backend: string, path: string, started: number): Promise<Outcome> {
    const { ip, peerTrusted } = identify.clientIp(view)
    const served = await serveRoute(view, routes, { backend, path, ip, peerTrusted, redirectHosts: config.redirectHosts, logger })
    const decision = decisionWithoutReply(
      'allow',
      'allow',
      'sallyport_route',
      'skip',
      backend,
      ip,
      performance.now() - started,
      served.setCookies,
    )
    return without(view, decision, served.action)
  }

  /**
   * Logs a failure of Sallyport itself. The request gets no more than its failure policy
   * allows: the strictest verdict `onError` gives any failure class, so a fail-open site lets
   * it through and a fail-closed checkpoint stays closed. The answer is the plainest one (no
   * hook, no page), built from nothing that could have failed.
   */
  function internalError(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native> | undefined, error: unknown): Outcome {
    const wouldBe = strictestFallback(onErrorFor(checkpoint))
    const verdict = monitor ? 'allow' : wouldBe
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
      // Never throws, never rejects: a bug in Sallyport must not take the site down.
      try {
        return andThen(
          decide(view, checkpoint),
          (outcome) => outcome,
          (error) => internalError(view, checkpoint, error),
        )
      } catch (error) {
        return internalError(view, checkpoint, error)
      }
    },
    checkpoint(spec) {
      const compiled = compileCheckpoint(spec)
      if (backends.every((backend) => backend.checkpoints === false)) {
        const names = backends.map((backend) => backend.name).join(', ')
        warnings.once(
          'SP_WARN_CHECKPOINT_UNREAD',
          `The \`${compiled.event}\` checkpoint's signals (email, phone, device token, transaction) reach no backend: ${names} judges requests, not checkpoints. Add a backend that reads them beside it (localPolicies() rules, tracenow(), ipqs(), tracer(), httpBackend()), e.g. \`backend: [trustedAccounts({ … }), tracenow({ … })]\`.`,
          { event: compiled.event, backends: backends.map((backend) => backend.name) },
        )
      }
      if (compiled.onError !== undefined) checkOnError(onErrorFor(compiled), `The \`${compiled.event}\` checkpoint's`)
      return compiled
    },
    breakerStates: () => ask.breakerStates(),
    async close() {
      await Promise.all(backends.map((backend) => backend.close?.()))
    },
  }
}
