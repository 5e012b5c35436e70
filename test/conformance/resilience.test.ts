import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { connect } from 'node:net'
import { type DecisionBackend, httpBackend } from '@sallyport/core'
import { type FakeTrustedAccounts, type Fault, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, hookRespond, type Site, type SiteOptions, startSite } from './harness.js'

let fake: FakeTrustedAccounts
let site: Site | undefined

beforeAll(async () => {
  fake = await fakeTrustedAccounts()
})
afterAll(() => fake.close())
afterEach(async () => {
  await site?.close()
  site = undefined
  fake.reset()
})

/** Slack for the deadline: the budget is enforced by one timer, this is only scheduling noise. */
const SLACK_MS = 20

async function siteWith(gate: SiteOptions['gate'] = {}): Promise<Site> {
  site = await startSite({
    gate: { backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url }), ...gate },
  })
  return site
}

describe(`a slow or broken backend (${framework})`, () => {
  it.each<[string, Fault]>([
    ['hangs', 'hang'],
    ['hangs after the headers', 'hang-after-headers'],
    ['trickles its body', 'trickle'],
  ])('that %s: the fallback verdict within the budget', async (_name, fault) => {
    const current = await siteWith({ timeoutMs: 120 })
    fake.reply({ fault, trickleMs: 30 })
    const response = await request(current.url).get('/').expect(200)
    const decision = current.decisions.at(-1)
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout' })
    expect(decision?.latencyMs).toBeGreaterThanOrEqual(115)
    expect(decision?.latencyMs).toBeLessThanOrEqual(120 + SLACK_MS)
    expect(response.body.decision.reason).toBe('timeout')
  })

  it.each<[string, Fault, string]>([
    ['bad JSON', 'bad-json', 'invalid'],
    ['a 10 MB body', 'huge-body', 'invalid'],
    ['a reset connection', 'reset', 'network'],
    ['a 401', { status: 401 }, 'client'],
    ['a reply with an unknown decision word', { status: 200, body: '{"decision":"maybe"}' }, 'invalid'],
    ['a reply without a decision', { status: 200, body: '{"ok":true}' }, 'invalid'],
  ])('answering %s: fails open with the failure class as reason', async (_name, fault, reason) => {
    const current = await siteWith({ retries: 0 })
    fake.reply({ fault })
    await request(current.url).get('/').expect(200)
    expect(current.decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'fallback', reason })
  })

  it('fails closed when asked to, per failure class', async () => {
    const current = await siteWith({ onError: { server: 'deny' }, retries: 0 })
    fake.reply({ fault: { status: 503 } })
    await request(current.url).get('/api').expect(403)
    fake.reply({ fault: 'bad-json' })
    await request(current.url).get('/api').expect(200)
  })

  it('retries a 5xx once, inside the budget', async () => {
    const current = await siteWith()
    fake.replyOnce({ fault: { status: 502 } })
    fake.reply({ decision: 'challenge' })
    await request(current.url).get('/api').expect(403)
    expect(fake.requests).toHaveLength(2)
    expect(current.decisions.at(-1)).toMatchObject({ source: 'backend', verdict: 'challenge' })
  })

  it('gives up after one retry', async () => {
    const current = await siteWith()
    fake.reply({ fault: { status: 500 } })
    await request(current.url).get('/').expect(200)
    expect(fake.requests).toHaveLength(2)
    expect(current.decisions.at(-1)).toMatchObject({ source: 'fallback', reason: 'server' })
  })

  it('does not retry when the budget has no room left', async () => {
    const current = await siteWith({ timeoutMs: 150 })
    fake.replyOnce({ fault: { status: 503 }, delayMs: 130 })
    await request(current.url).get('/').expect(200)
    // Under load the late 503 may land after the deadline: either way there is no second call.
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(fake.requests).toHaveLength(1)
    expect(current.decisions.at(-1)?.source).toBe('fallback')
    expect(['server', 'timeout']).toContain(current.decisions.at(-1)?.reason)
    expect(current.decisions.at(-1)?.latencyMs).toBeLessThanOrEqual(150 + SLACK_MS)
  })

  it('does not retry a 4xx', async () => {
    const current = await siteWith()
    fake.reply({ fault: { status: 429 } })
    await request(current.url).get('/').expect(200)
    expect(fake.requests).toHaveLength(1)
    expect(current.logs).toContainEqual(['warn', 'SP_WARN_BACKEND_REFUSED'])
  })

  it('bounds a backend that ignores its abort signal', async () => {
    const stuck: DecisionBackend = { name: 'stuck', decide: () => new Promise(() => {}) }
    site = await startSite({ gate: { backend: stuck, timeoutMs: 80 } })
    await request(site.url).get('/').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'fallback', reason: 'timeout' })
  })

  it('a backend that throws something that is not an error still falls back', async () => {
    const broken: DecisionBackend = {
      name: 'broken',
      decide: () => {
        throw 'nope'
      },
    }
    site = await startSite({ gate: { backend: broken, onError: { network: 'challenge' } } })
    await request(site.url).get('/').expect(403)
  })
})

describe(`hooks that misbehave (${framework})`, () => {
  const fixed = (verdict: 'challenge' | 'review'): DecisionBackend => ({ name: 'fixed', decide: async () => ({ verdict }) })

  it('a throwing onDecision never breaks the request', async () => {
    site = await startSite({
      gate: {
        backend: fixed('review'),
        onDecision: () => {
          throw new Error('hook bug')
        },
        onReview: async () => {
          throw new Error('queue down')
        },
      },
    })
    await request(site.url).get('/').expect(200)
    expect(site.logs.filter(([level]) => level === 'error')).toHaveLength(2)
  })

  it('a throwing challenge hook leaves the default 403', async () => {
    site = await startSite({
      gate: {
        backend: fixed('challenge'),
        challenge: {
          hook: () => {
            throw new Error('2FA service down')
          },
        },
      },
    })
    const response = await request(site.url).get('/').expect(403)
    expect(response.body.error).toBe('challenge_required')
  })

  it('a hanging hook is cut off once, and a late answer from it does not reach the client', async () => {
    site = await startSite({
      gate: {
        backend: fixed('challenge'),
        hookTimeoutMs: 50,
        challenge: {
          hook: (_decision, native) =>
            new Promise((resolve) => {
              setTimeout(() => {
                try {
                  hookRespond(native, 200, { late: true })
                } catch {}
                resolve(undefined)
              }, 150)
            }),
        },
      },
    })
    const response = await request(site.url).get('/').expect(403)
    expect(response.body.error).toBe('challenge_required')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(site.logs).toContainEqual(['error', 'SP_HOOK_TIMEOUT'])
    expect(site.handled()).toBe(0)
  })

  it('a step-up hook that answers is the only answer', async () => {
    site = await startSite({
      gate: { backend: fixed('challenge'), challenge: { hook: (_decision, native) => hookRespond(native, 401, { step: 'otp' }) } },
    })
    const response = await request(site.url).get('/').expect(401)
    expect(response.body).toEqual({ step: 'otp' })
    expect(site.handled()).toBe(0)
  })
})

describe(`a client that leaves mid-decision (${framework})`, () => {
  let backend: Server
  let url = ''
  const backendClosed: number[] = []
  const sockets = new Set<Socket>()

  beforeAll(async () => {
    backend = createServer((req) => {
      req.resume()
      req.socket.once('close', () => backendClosed.push(Date.now()))
    })
    backend.on('connection', (socket) => {
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}/decide`
  })
  afterAll(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => backend.close(() => resolve()))
  })

  it('aborts the backend call and neither answers nor calls the route', async () => {
    site = await startSite({ gate: { backend: httpBackend({ url }), timeoutMs: 5000 } })
    const client = connect(site.port, '127.0.0.1')
    client.on('error', () => {})
    await new Promise<void>((resolve) => client.once('connect', resolve))
    client.write('GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n')
    await new Promise((resolve) => setTimeout(resolve, 50))
    const leftAt = Date.now()
    client.destroy()
    await expect.poll(() => backendClosed.length, { timeout: 2000, interval: 10 }).toBe(1)
    expect((backendClosed[0] ?? Number.POSITIVE_INFINITY) - leftAt).toBeLessThan(1000)
    expect(site.handled()).toBe(0)
    expect(site.decisions).toHaveLength(0)
  })
})

describe(`the circuit breaker (${framework})`, () => {
  it('opens after repeated failures, stops calling, and closes after a successful probe', async () => {
    const current = await siteWith({ retries: 0, breaker: { consecutiveFailures: 3, cooldownMs: 150 } })
    fake.reply({ fault: { status: 503 } })
    for (let i = 0; i < 3; i++) await request(current.url).get('/').expect(200)
    expect(fake.requests).toHaveLength(3)
    expect(current.logs).toContainEqual(['warn', 'SP_BREAKER_OPEN'])

    const started = performance.now()
    await request(current.url).get('/').expect(200)
    expect(fake.requests).toHaveLength(3)
    expect(current.decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'circuit_open' })
    expect(performance.now() - started).toBeLessThan(100)

    fake.reply({ decision: 'challenge' })
    await new Promise((resolve) => setTimeout(resolve, 200))
    await request(current.url).get('/api').expect(403)
    expect(fake.requests).toHaveLength(4)
    expect(current.logs).toContainEqual(['warn', 'SP_BREAKER_CLOSED'])
    await request(current.url).get('/api').expect(403)
    expect(fake.requests).toHaveLength(5)
  })

  it('a failed probe opens it again; an open breaker falls back as the failure that opened it', async () => {
    const current = await siteWith({ retries: 0, onError: { server: 'deny' }, breaker: { consecutiveFailures: 2, cooldownMs: 100 } })
    fake.reply({ fault: { status: 500 } })
    await request(current.url).get('/api').expect(403)
    await request(current.url).get('/api').expect(403)
    await request(current.url).get('/api').expect(403)
    expect(current.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'circuit_open' })
    await new Promise((resolve) => setTimeout(resolve, 150))
    await request(current.url).get('/api').expect(403)
    expect(fake.requests).toHaveLength(3)
    await request(current.url).get('/api').expect(403)
    expect(fake.requests).toHaveLength(3)
    expect(current.decisions.at(-1)?.reason).toBe('circuit_open')
  })

  it('can be turned off', async () => {
    const current = await siteWith({ retries: 0, breaker: false })
    fake.reply({ fault: { status: 503 } })
    for (let i = 0; i < 8; i++) await request(current.url).get('/').expect(200)
    expect(fake.requests).toHaveLength(8)
  })
})
