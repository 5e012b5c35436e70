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
  backendCall(backend: string, durationMs: number, outcome: 'ok' | FailureClass | 'circuit_open'): void
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
  const tracer = api.trace.getTracer('gatehouse')
  const meter = api.metrics.getMeter('gatehouse')
  const decisions = meter.createCounter('gatehouse.decisions', { description: 'Decisions by verdict, source and backend' })
  const latency = meter.createHistogram('gatehouse.backend.duration', { description: 'Backend call duration', unit: 'ms' })
  const fallbacks = meter.createCounter('gatehouse.fallbacks', { description: 'Fallback decisions by failure class' })
  const breaker = meter.createUpDownCounter('gatehouse.breaker.state', {
    description: '1 for the current circuit breaker state of each backend, 0 for the others',
  })
  const current = new Map<string, BreakerState>()
  return {
    startDecision(checkpointEvent) {
      const span = tracer.startSpan(
        'gatehouse.decision',
        checkpointEvent === undefined ? {} : { attributes: { 'gatehouse.checkpoint': checkpointEvent } },
      )
      return (decision) => {
        const attributes = {
          'gatehouse.verdict': decision.verdict,
          'gatehouse.source': decision.source,
          'gatehouse.backend': decision.backend,
        }
        span.setAttributes({
          ...attributes,
          'gatehouse.would_be': decision.wouldBe,
          'gatehouse.complete': decision.complete,
          ...(decision.reason === null ? {} : { 'gatehouse.reason': decision.reason.slice(0, 64) }),
        })
        span.end()
        decisions.add(1, attributes)
        if (decision.source === 'fallback' && decision.reason !== null) {
          fallbacks.add(1, { 'gatehouse.backend': decision.backend, 'gatehouse.failure': decision.reason.slice(0, 32) })
        }
      }
    },
    backendCall(backend, durationMs, outcome) {
      latency.record(durationMs, { 'gatehouse.backend': backend, 'gatehouse.outcome': outcome })
    },
    breakerChanged(backend, state) {
      const previous = current.get(backend) ?? 'closed'
      current.set(backend, state)
      for (const candidate of STATES) {
        const delta = (candidate === state ? 1 : 0) - (candidate === previous ? 1 : 0)
        if (delta !== 0) breaker.add(delta, { 'gatehouse.backend': backend, 'gatehouse.state': candidate })
      }
    },
  }
}

/**
 * Telemetry that starts as a no-op and switches to OpenTelemetry once `@opentelemetry/api`
 * has loaded (asynchronously, so ESM and CJS builds behave alike). `api` may be passed in
 * directly (tests, or an app bundling its own copy); `null` keeps it off.
 */
export function createTelemetry(api: unknown): Telemetry {
  // `null`: telemetry switched off.
  let active: Telemetry | undefined = api === undefined || api === null ? undefined : build(api as OtelApi)
  if (api === undefined) {
    import('@opentelemetry/api')
      .then((loaded) => {
        active = build(((loaded as { default?: unknown }).default ?? loaded) as OtelApi)
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
