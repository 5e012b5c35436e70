/**
 * Telemetry as a user gets it without passing `telemetry`: Sallyport loads the installed
 * `@opentelemetry/api` and reports through it only once an SDK has registered a provider,
 * whether that happened before the first decision or while the app was already serving.
 */

import * as api from '@opentelemetry/api'
import { createGate, type Decision, type DecisionBackend } from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'
import { silent as quiet, view } from './policies-helpers.js'

type Attributes = Record<string, unknown>

/** A tracer and meter provider standing in for an SDK, recording what reaches them. */
function recordingProviders() {
  const spans: Array<{ name: string; attributes: Attributes; ended: boolean }> = []
  const counts: Array<{ name: string; attributes: Attributes }> = []
  const context: api.SpanContext = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 }
  const tracerProvider: api.TracerProvider = {
    getTracer: () =>
      ({
        startSpan(name: string, options: api.SpanOptions = {}) {
          const span = { name, attributes: { ...options.attributes } as Attributes, ended: false }
          spans.push(span)
          const handle = {
            spanContext: () => context,
            setAttribute: () => handle,
            setAttributes(attributes: Attributes) {
              Object.assign(span.attributes, attributes)
              return handle
            },
            addEvent: () => handle,
            addLink: () => handle,
            addLinks: () => handle,
            setStatus: () => handle,
            updateName: () => handle,
            end() {
              span.ended = true
            },
            isRecording: () => true,
            recordException: () => {},
          }
          return handle as unknown as api.Span
        },
      }) as unknown as api.Tracer,
  }
  const instrument = (name: string) => ({
    add: (_value: number, attributes: Attributes = {}) => counts.push({ name, attributes }),
    record: (_value: number, attributes: Attributes = {}) => counts.push({ name, attributes }),
  })
  const meterProvider = {
    getMeter: () => ({ createCounter: instrument, createHistogram: instrument, createUpDownCounter: instrument }),
  } as unknown as api.MeterProvider
  return { tracerProvider, meterProvider, spans, counts }
}

const allow: DecisionBackend = { name: 'rules', decide: async () => ({ verdict: 'allow', reason: 'ok' }) }

/** The gate loads the API with a dynamic import: let it settle before the first decision. */
async function loaded(): Promise<void> {
  await import('@opentelemetry/api')
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve))
}

afterEach(() => {
  api.trace.disable()
  api.metrics.disable()
})

describe('telemetry through the installed @opentelemetry/api', () => {
  it('reports every decision when an SDK registered before the gate decided', async () => {
    const sdk = recordingProviders()
    api.trace.setGlobalTracerProvider(sdk.tracerProvider)
    api.metrics.setGlobalMeterProvider(sdk.meterProvider)
    const gate = createGate({ logger: quiet, backend: allow })
    await loaded()
    const decisions: Decision[] = []
    for (let index = 0; index < 3; index++) decisions.push((await gate.decide(view())).decision)
    expect(decisions.every((decision) => decision.verdict === 'allow')).toBe(true)
    expect(sdk.spans).toHaveLength(3)
    expect(sdk.spans[0]).toMatchObject({
      name: 'sallyport.decision',
      ended: true,
      attributes: { 'sallyport.verdict': 'allow', 'sallyport.source': 'backend', 'sallyport.backend': 'rules' },
    })
    expect(sdk.counts.filter((count) => count.name === 'sallyport.decisions')).toHaveLength(3)
    // What Sallyport reports is about decisions, never about the visitor.
    expect(JSON.stringify(sdk.spans)).not.toContain('203.0.113.9')
  })

  it('stays silent while no SDK is registered, and starts reporting soon after one is', async () => {
    const gate = createGate({ logger: quiet, backend: allow })
    await loaded()
    for (let index = 0; index < 10; index++) await gate.decide(view())
    const sdk = recordingProviders()
    api.trace.setGlobalTracerProvider(sdk.tracerProvider)
    api.metrics.setGlobalMeterProvider(sdk.meterProvider)
    // Sallyport looks for an SDK again every 1024 calls; a decision makes two (span, backend call).
    for (let index = 0; index < 600; index++) await gate.decide(view())
    expect(sdk.spans.length).toBeGreaterThan(0)
    const first = sdk.spans.length
    await gate.decide(view())
    expect(sdk.spans).toHaveLength(first + 1)
    expect(sdk.spans.at(-1)).toMatchObject({ name: 'sallyport.decision', ended: true, attributes: { 'sallyport.verdict': 'allow' } })
    // Metrics too: instruments are made once the SDK is there, not as no-ops beforehand.
    expect(sdk.counts.filter((count) => count.name === 'sallyport.decisions').length).toBe(sdk.spans.length)
  })

  it('`telemetry: false` reports nothing even with an SDK registered', async () => {
    const sdk = recordingProviders()
    api.trace.setGlobalTracerProvider(sdk.tracerProvider)
    const gate = createGate({ logger: quiet, backend: allow, telemetry: false })
    await loaded()
    await gate.decide(view())
    expect(sdk.spans).toHaveLength(0)
  })
})
