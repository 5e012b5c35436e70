import type { BreakerState } from './breaker.js'
import type { Decision, FailureClass } from './types.js'

/**
 * OpenTelemetry through `@opentelemetry/api`, an optional peer dependency: when it is not
 * installed every call here is a no-op. Attributes name verdicts, sources, backends and
 * failure classes only — never an IP, an email, a header or a key.
 */
export interface Telemetry {
  /** Starts a span for one decision; the returned function ends it with the decision. */
  startDecision(checkpointEvent: string | undefined): (decision: Decision) => void
  backendCall(backend: string, durationMs: number, outcome: 'ok' | FailureClass | 'circuit_open' | 'pool_saturated'): void
  breakerChanged(backend: string, state: BreakerState): void
}

interface Attributes {
  [name: string]: string | number | boolean
}
interface SpanLike {
  setAttributes(attributes: Attributes): unknown
  setStatus(status: { code: number }): unknown
  end(): void
}
interface OtelApi {
  trace: { getTracer(name: string, version?: string): { startSpan(name: string, options?: { attributes?: Attributes }): SpanLike } }
  metrics: {
    getMeter(
      name: string,
      version?: string,
    ): {
      createCounter(name: string, options?: { description?: string; unit?: string }): { add(value: number, attributes?: Attributes): void }
      createHistogram(
        name: string,
        options?: { description?: string; unit?: string },
      ): { record(value: number, attributes?: Attributes): void }
      createUpDownCounter(name: string, options?: { description?: string }): { add(value: number, attributes?: Attributes): void }
    }
  }
}

/** What `startDecision` returns while telemetry is off: callers may skip calling it. */
export const NOOP_END = (_decision: Decision): void => {}
const STATES: BreakerState[] = ['closed', 'open', 'half-open']

function build(api: OtelApi): Telemetry {
  const tracer = api.trace.getTracer('sallyport')
  const meter = api.metrics.getMeter('sallyport')
  const decisions = meter.createCounter('sallyport.decisions', { description: 'Decisions by verdict, source and backend' })
  const latency = meter.createHistogram('sallyport.backend.duration', { description: 'Backend call duration', unit: 'ms' })
  const fallbacks = meter.createCounter('sallyport.fallbacks', { description: 'Fallback decisions by failure class' })
  const breaker = meter.createUpDownCounter('sallyport.breaker.state', {
    description: '1 for the current circuit breaker state of each backend, 0 for the others',
  })
  const current = new Map<string, BreakerState>()
  return {
    startDecision(checkpointEvent) {
      const span = tracer.startSpan(
        'sallyport.decision',
        checkpointEvent === undefined ? {} : { attributes: { 'sallyport.checkpoint': checkpointEvent } },
      )
      return (decision) => {
        const attributes = {
          'sallyport.verdict': decision.verdict,
          'sallyport.source': decision.source,
          'sallyport.backend': decision.backend,
        }
        span.setAttributes({
          ...attributes,
          'sallyport.would_be': decision.wouldBe,
          'sallyport.complete': decision.complete,
          ...(decision.reason === null ? {} : { 'sallyport.reason': decision.reason.slice(0, 64) }),
        })
        span.end()
        decisions.add(1, attributes)
        if (decision.source === 'fallback' && decision.reason !== null) {
          fallbacks.add(1, { 'sallyport.backend': decision.backend, 'sallyport.failure': decision.reason.slice(0, 32) })
        }
      }
    },
    backendCall(backend, durationMs, outcome) {
      latency.record(durationMs, { 'sallyport.backend': backend, 'sallyport.outcome': outcome })
    },
    breakerChanged(backend, state) {
      const previous = current.get(backend) ?? 'closed'
      current.set(backend, state)
      for (const candidate of STATES) {
        const delta = (candidate === state ? 1 : 0) - (candidate === previous ? 1 : 0)
        if (delta !== 0) breaker.add(delta, { 'sallyport.backend': backend, 'sallyport.state': candidate })
      }
    },
  }
}

/** The parts of the installed `@opentelemetry/api` module that say whether an SDK is registered. */
interface InstalledApi extends OtelApi {
  trace: OtelApi['trace'] & { getTracerProvider?(): unknown }
  ProxyTracerProvider?: new () => { getDelegate(): unknown }
  createNoopMeter?(): unknown
}

/**
 * Whether an OpenTelemetry SDK has registered a tracer or meter provider. Until one does,
 * the API answers with no-op providers, and calling them still costs a decision several
 * microseconds (a span object, attribute objects, a context lookup) for nothing.
 */
function sdkRegistered(api: InstalledApi): boolean {
  const ProxyProvider = api.ProxyTracerProvider
  const provider = api.trace.getTracerProvider?.()
  // The API hands out one ProxyTracerProvider; an SDK registers itself as its delegate.
  const tracing =
    ProxyProvider === undefined ||
    !(provider instanceof ProxyProvider) ||
    (provider as { getDelegate(): unknown }).getDelegate() !== new ProxyProvider().getDelegate()
  const metering = api.createNoopMeter === undefined || api.metrics.getMeter('sallyport') !== api.createNoopMeter()
  return tracing || metering
}

/** Calls between two looks for an SDK registered after `@opentelemetry/api` loaded. */
const SDK_CHECK_INTERVAL = 1024

/**
 * Telemetry through the installed API, switched on once an SDK is registered: at the first
 * call, then every {@link SDK_CHECK_INTERVAL} calls until one is. An SDK registered when the
 * process starts is seen by the first decision; one registered later, soon after.
 */
function whenRegistered(api: InstalledApi): Telemetry {
  let active: Telemetry | undefined
  let untilCheck = 0
  const current = (): Telemetry | undefined => {
    if (active !== undefined || untilCheck-- > 0) return active
    untilCheck = SDK_CHECK_INTERVAL
    if (sdkRegistered(api)) active = build(api)
    return active
  }
  return {
    startDecision: (event) => current()?.startDecision(event) ?? NOOP_END,
    backendCall: (backend, duration, outcome) => current()?.backendCall(backend, duration, outcome),
    breakerChanged: (backend, state) => current()?.breakerChanged(backend, state),
  }
}

/**
 * Telemetry that starts as a no-op and switches to OpenTelemetry once `@opentelemetry/api`
 * has loaded (asynchronously, so ESM and CJS builds behave alike) and an SDK is registered
 * with it. `api` may be passed in directly (tests, or an app bundling its own copy) and is
 * then used as it is; `null` keeps it off.
 */
export function createTelemetry(api: unknown): Telemetry {
  // `null`: telemetry switched off.
  let active: Telemetry | undefined = api === undefined || api === null ? undefined : build(api as OtelApi)
  if (api === undefined) {
    import('@opentelemetry/api')
      .then((loaded) => {
        // The module's own named exports, where they exist: its ESM `default` carries only
        // the five API objects, not the classes the SDK check needs.
        const named = loaded as Partial<InstalledApi> & { default?: unknown }
        active = whenRegistered((named.trace === undefined ? named.default : named) as InstalledApi)
      })
      .catch(() => {
        // Not installed: telemetry stays off.
      })
  }
  return {
    startDecision: (event) => active?.startDecision(event) ?? NOOP_END,
    backendCall: (backend, duration, outcome) => active?.backendCall(backend, duration, outcome),
    breakerChanged: (backend, state) => active?.breakerChanged(backend, state),
  }
}
