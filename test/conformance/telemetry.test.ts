import type { DecisionBackend } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

type Attributes = Record<string, string | number | boolean>

/** Records what Sallyport hands to the OpenTelemetry API, shaped like the real one. */
function recordingApi() {
  const spans: Array<{ name: string; attributes: Attributes; ended: boolean }> = []
  const metrics: Array<{ name: string; value: number; attributes: Attributes }> = []
  const instrument = (name: string) => ({
    add: (value: number, attributes: Attributes = {}) => metrics.push({ name, value, attributes }),
    record: (value: number, attributes: Attributes = {}) => metrics.push({ name, value, attributes }),
  })
  const api = {
    trace: {
      getTracer: () => ({
        startSpan: (name: string, options: { attributes?: Attributes } = {}) => {
          const span = { name, attributes: { ...options.attributes }, ended: false }
          spans.push(span)
          return {
            setAttributes: (attributes: Attributes) => Object.assign(span.attributes, attributes),
            setStatus: () => {},
            end: () => {
              span.ended = true
            },
          }
        },
      }),
    },
    metrics: {
      getMeter: () => ({ createCounter: instrument, createHistogram: instrument, createUpDownCounter: instrument }),
    },
  }
  return { api, spans, metrics }
}

describe(`telemetry (${framework})`, () => {
  it('a span per decision and metrics by verdict, source and backend, with no personal data', async () => {
    const { api, spans, metrics } = recordingApi()
    const backend: DecisionBackend = { name: 'risk', decide: async () => ({ verdict: 'challenge', reason: 'velocity' }) }
    site = await startSite({ gate: { backend, telemetry: { api }, skip: ['/login'], staticPaths: ['/assets'] } })
    await request(site.url).post('/login').set('X-Forwarded-For', '9.9.9.9').send({ email: 'ada@example.com' }).expect(403)
    await request(site.url).get('/assets/style.css').expect(200)

    expect(spans).toHaveLength(1)
    expect(spans[0]).toMatchObject({
      name: 'sallyport.decision',
      ended: true,
      attributes: {
        'sallyport.checkpoint': 'login',
        'sallyport.verdict': 'challenge',
        'sallyport.source': 'backend',
        'sallyport.backend': 'risk',
      },
    })
    expect(metrics).toContainEqual({
      name: 'sallyport.decisions',
      value: 1,
      attributes: { 'sallyport.verdict': 'challenge', 'sallyport.source': 'backend', 'sallyport.backend': 'risk' },
    })
    expect(metrics.find((metric) => metric.name === 'sallyport.backend.duration')?.attributes).toEqual({
      'sallyport.backend': 'risk',
      'sallyport.outcome': 'ok',
    })
    const everything = JSON.stringify({ spans, metrics })
    for (const secret of ['ada@example.com', '127.0.0.1', '9.9.9.9']) expect(everything).not.toContain(secret)
  })

  it('counts fallbacks by class and follows the breaker state', async () => {
    const { api, metrics } = recordingApi()
    const failing: DecisionBackend = {
      name: 'down',
      decide: async () => {
        throw new Error('refused')
      },
    }
    site = await startSite({ gate: { backend: failing, telemetry: { api }, breaker: { consecutiveFailures: 2, cooldownMs: 60_000 } } })
    for (let i = 0; i < 3; i++) await request(site.url).get('/').expect(200)
    const fallbacks = metrics
      .filter((metric) => metric.name === 'sallyport.fallbacks')
      .map((metric) => metric.attributes['sallyport.failure'])
    expect(fallbacks).toEqual(['network', 'network', 'circuit_open'])
    expect(metrics).toContainEqual({
      name: 'sallyport.breaker.state',
      value: 1,
      attributes: { 'sallyport.backend': 'down', 'sallyport.state': 'open' },
    })
  })
})
