import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import {
  type CheckpointSpec,
  createGate,
  type DecisionInput,
  type Gate,
  type GateOptions,
  type Logger,
  type RequestView,
  SallyportError,
} from '@sallyport/core'
import { type FakeTraceNow, fakeTraceNow } from '@sallyport/testing'
import { type TraceNowOptions, tracenow } from '@sallyport/tracenow'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const SECRET_KEY = 'tn_test_9f8e7d6c5b4a'
const DEVICE_TOKEN = 'dt_eyJhbGciOiJIUzI1NiJ9.eyJ2IjoiMSJ9.c2lnbmF0dXJl'

let fake: FakeTraceNow
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  fake = await fakeTraceNow({ secretKey: SECRET_KEY })
})

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
  await fake.close()
})

/** Every log line, objects and errors (with their causes) included, as a person would read them. */
function recordingLogger(): { logger: Logger; lines: string[]; codes: () => string[] } {
  const lines: string[] = []
  const entries: Array<Record<string, unknown>> = []
  const record = (level: string) => (object: Record<string, unknown>, message?: string) => {
    entries.push(object)
    lines.push(`${level} ${inspect(object, { depth: 10 })} ${message ?? ''}`)
  }
  return {
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    lines,
    codes: () => entries.map((e) => String(e.code)),
  }
}

function gateFor(options: Partial<TraceNowOptions> = {}, gateOptions: GateOptions<null> = {}): Gate<null> {
  const backend = tracenow({ secretKey: SECRET_KEY, baseUrl: fake.url, ...options })
  const gate = createGate<null>({ backend, logger: { warn() {}, error() {} }, ...gateOptions })
  cleanups.push(() => gate.close())
  return gate
}

function view(init: { method?: string; url?: string; remoteAddress?: string | undefined } = {}): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'POST',
    url: init.url ?? '/login',
    headers: { host: 'shop.example', accept: 'application/json', 'user-agent': 'Mozilla/5.0' },
    remoteAddress: 'remoteAddress' in init ? init.remoteAddress : '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

const login: CheckpointSpec<null> = { event: 'login', email: 'ada@example.com' }

async function decideAt(gate: Gate<null>, spec: CheckpointSpec<null> = login, init: Parameters<typeof view>[0] = {}) {
  return gate.decide(view(init), gate.checkpoint(spec))
}

function caught(run: () => unknown): SallyportError {
  try {
    run()
  } catch (error) {
    if (error instanceof SallyportError) return error
    throw error
  }
  throw new Error('expected a SallyportError')
}

/** A bare input for calling `decide` directly, as the gate would. */
function input(checkpoint: DecisionInput['checkpoint']): DecisionInput {
  return {
    ip: '203.0.113.9',
    method: 'POST',
    path: '/login',
    host: 'shop.example',
    headers: {},
    cookieNames: [],
    cookie: () => undefined,
    checkpoint,
  }
}

describe('options', () => {
  const good = { secretKey: SECRET_KEY }

  it.each<[string, string, Record<string, unknown>]>([
    ['a missing secretKey', 'secretKey', {}],
    ['an empty secretKey', 'secretKey', { secretKey: '' }],
    ['a secretKey that is not a string', 'secretKey', { secretKey: 42 }],
    ['a secretKey with a line break', 'secretKey', { secretKey: 'tn_live_abc\r\nx-injected: 1' }],
    ['a baseUrl that is not a URL', 'baseUrl', { ...good, baseUrl: 'api.tracenow.io' }],
    ['a non-http baseUrl', 'baseUrl', { ...good, baseUrl: 'ftp://api.tracenow.io' }],
    ['a baseUrl with credentials', 'baseUrl', { ...good, baseUrl: 'https://user:pass@api.tracenow.io' }],
    ['a baseUrl with a query', 'baseUrl', { ...good, baseUrl: 'https://api.tracenow.io/?key=1' }],
    ['a timeoutMs of 0', 'timeoutMs', { ...good, timeoutMs: 0 }],
    ['a fractional timeoutMs', 'timeoutMs', { ...good, timeoutMs: 1.5 }],
    ['a timeoutMs as a string', 'timeoutMs', { ...good, timeoutMs: '500' }],
    ['a maxResponseSize of 0', 'maxResponseSize', { ...good, maxResponseSize: 0 }],
    ['a dispatcher that is not one', 'dispatcher', { ...good, dispatcher: { connect: true } }],
    ['a connections of 0', 'connections', { ...good, connections: 0 }],
    ['a connections over 4096', 'connections', { ...good, connections: 4097 }],
    ['a fractional connections', 'connections', { ...good, connections: 2.5 }],
  ])('throws SP_INVALID_OPTION naming the option for %s', (_label, option, options) => {
    const error = caught(() => tracenow(options as unknown as TraceNowOptions))
    expect(error.code).toBe('SP_INVALID_OPTION')
    expect(error.option).toBe(option)
    expect(error.message).toContain(`\`${option}\``)
  })

  it('refuses the publishable key in place of the secret key, without repeating it', () => {
    const error = caught(() => tracenow({ secretKey: 'pk_live_publishable123' }))
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'secretKey' })
    expect(error.message).toContain('publishable key')
    expect(inspect(error, { depth: 10 })).not.toContain('publishable123')
  })

  it('never repeats a malformed secret key, even in the error cause', () => {
    const error = caught(() => tracenow({ secretKey: 'tn_live_abc\r\nsecret-tail' }))
    expect(error.option).toBe('secretKey')
    expect(inspect(error, { depth: 10 })).not.toContain('secret-tail')
  })

  it('refuses an unknown option, naming it', () => {
    const error = caught(() => tracenow({ ...good, apiKey: 'x' } as unknown as TraceNowOptions))
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'apiKey' })
    expect(error.message).toContain('apiKey')
  })

  it('refuses no options at all', () => {
    expect(caught(() => tracenow(undefined as unknown as TraceNowOptions)).code).toBe('SP_INVALID_OPTION')
  })

  it.each<[string, Record<string, unknown>]>([
    ['unset', {}],
    ['empty', { secretKey: '' }],
  ])('names TRACENOW_SECRET_KEY, as the README reads it, when secretKey is %s', (_label, options) => {
    const error = caught(() => tracenow(options as unknown as TraceNowOptions))
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'secretKey' })
    expect(error.message).toContain('set TRACENOW_SECRET_KEY or pass secretKey')
  })

  it('takes a number of keep-alive connections from 1 to 4096', async () => {
    for (const connections of [1, 4096]) await tracenow({ ...good, connections }).close?.()
  })

  it('recommends no budget of its own unless given one', () => {
    expect(tracenow(good).timeoutMs).toBeUndefined()
    expect(tracenow({ ...good, timeoutMs: 1200 }).timeoutMs).toBe(1200)
    expect(tracenow(good).name).toBe('tracenow')
  })
})

describe('the trace call', () => {
  it('posts event, status and every signal to /trace with the secret key as a Bearer token', async () => {
    const { decision } = await decideAt(gateFor(), {
      event: 'signup',
      status: 'succeeded',
      email: 'ada@example.com',
      phone: '+14155552671',
      deviceToken: DEVICE_TOKEN,
    })
    expect(decision.source).toBe('backend')
    expect(fake.checks()).toEqual([
      {
        event: 'signup',
        status: 'succeeded',
        ip: '203.0.113.9',
        email: 'ada@example.com',
        phone: '+14155552671',
        device_token: DEVICE_TOKEN,
      },
    ])
    const [request] = fake.requests
    expect(request?.path).toBe('/trace')
    expect(request?.headers.authorization).toBe(`Bearer ${SECRET_KEY}`)
    expect(request?.headers['content-type']).toMatch(/^application\/json/)
  })

  it("sends status 'attempted' when the checkpoint names none", async () => {
    await decideAt(gateFor())
    expect(fake.checks()[0]).toEqual({ event: 'login', status: 'attempted', ip: '203.0.113.9', email: 'ada@example.com' })
  })

  it("never sends the checkpoint's transaction or metadata, which TraceNow does not take", async () => {
    const { decision } = await decideAt(gateFor(), { ...login, transaction: { amount: '10.00' }, metadata: { plan: 'pro' } })
    expect(decision.source).toBe('backend')
    expect(Object.keys(fake.checks()[0] ?? {}).sort()).toEqual(['email', 'event', 'ip', 'status'])
  })

  it('keeps the path of a baseUrl that has one', async () => {
    await decideAt(gateFor({ baseUrl: `${fake.url}/v1/` }))
    expect(fake.requests[0]?.path).toBe('/v1/trace')
  })

  it.each([['undefined'], ['tok_123'], ['dt_ has spaces'], ['<script>']])(
    'leaves out a device token that is not one (%s)',
    async (token) => {
      const { decision } = await decideAt(gateFor(), { ...login, deviceToken: token })
      expect(decision.source).toBe('backend')
      expect(fake.checks()[0]).not.toHaveProperty('device_token')
    },
  )

  it('sends what it has when there is no client IP', async () => {
    const { decision } = await decideAt(gateFor(), login, { remoteAddress: undefined })
    expect(decision.source).toBe('backend')
    expect(fake.checks()).toEqual([{ event: 'login', status: 'attempted', email: 'ada@example.com' }])
  })

  it('makes no call at a checkpoint without a single signal, and says why', async () => {
    const { decision, action } = await decideAt(gateFor(), { event: 'login', deviceToken: 'not-a-token' }, { remoteAddress: undefined })
    expect(fake.requests).toHaveLength(0)
    expect(decision).toMatchObject({ verdict: 'allow', reason: 'no_signals', complete: false, backend: 'tracenow' })
    expect(action).toEqual({ type: 'next' })
  })

  it('makes no call outside a checkpoint: TraceNow judges events, not page loads', async () => {
    const gate = gateFor()
    const { decision, action } = await gate.decide(view({ method: 'GET', url: '/products' }))
    expect(fake.requests).toHaveLength(0)
    expect(decision).toMatchObject({ verdict: 'allow', reason: 'no_checkpoint', complete: true, source: 'backend' })
    expect(action).toEqual({ type: 'next' })
  })
})

describe('the verdict', () => {
  it.each([
    ['allow', null],
    ['challenge', 'Tor exit node'],
    ['deny', 'Disposable email'],
  ] as const)('%s maps one to one, with policy_triggered as the reason and request_id kept', async (verdict, policy) => {
    fake.reply({ verdict, policyTriggered: policy, requestId: 'tr_01J9ZQK2XVBP3N7M4FGHD8R5TW' })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({
      verdict,
      reason: policy,
      requestId: 'tr_01J9ZQK2XVBP3N7M4FGHD8R5TW',
      source: 'backend',
      backend: 'tracenow',
      complete: true,
    })
  })

  it('puts privacy_mode and the ip, email, phone and device objects in signals', async () => {
    const ip = { is_tor: true, is_anonymous: true, geo: { country: 'Germany', country_code: 'DE' } }
    fake.reply({ verdict: 'challenge', privacyMode: true, ip, email: { is_disposable: false }, device: { is_headless: false } })
    const { decision } = await decideAt(gateFor())
    expect(decision.signals).toEqual({
      privacy_mode: true,
      ip,
      email: { is_disposable: false },
      phone: null,
      device: { is_headless: false },
    })
  })

  it('bounds what it copies from the reply into signals and reason', async () => {
    const deep = { a: { b: { c: { d: { e: 'too deep' } } } } }
    const wide = Object.fromEntries(Array.from({ length: 80 }, (_, index) => [`k${index}`, index]))
    fake.reply({
      verdict: 'deny',
      policyTriggered: `Blocked\u0000\n${'x'.repeat(500)}`,
      ip: { isp: 'y'.repeat(5000), list: Array.from({ length: 100 }, (_, index) => index), [`${'k'.repeat(100)}`]: 1, deep },
      device: wide,
      extra: { email: JSON.parse('{"__proto__": {"polluted": true}, "ok": 1}') },
    })
    const { decision } = await decideAt(gateFor())
    const ip = decision.signals.ip as Record<string, unknown>
    expect((ip.isp as string).length).toBe(256)
    expect(ip.list).toHaveLength(20)
    expect(Object.keys(ip)).toEqual(['isp', 'list', 'deep'])
    expect(ip.deep).toEqual({ a: { b: {} } })
    expect(Object.keys(decision.signals.device as object)).toHaveLength(50)
    expect(decision.signals.email).toEqual({ ok: 1 })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(decision.reason?.length).toBe(128)
    expect(decision.reason).toMatch(/^Blocked x+$/)
  })

  it('a reply with signals_complete false is a partial verdict', async () => {
    fake.reply({ verdict: 'challenge', signalsComplete: false })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ verdict: 'challenge', source: 'backend', complete: false })
    expect(fake.requests).toHaveLength(1)
  })

  it.each([
    ['a numeric request_id', { request_id: 12345 }, { requestId: null }],
    ['a policy_triggered that is not a string', { policy_triggered: 42 }, { reason: null }],
    ['a signals_complete that is not a boolean', { signals_complete: 'no' }, { complete: true }],
    ['an ip block that is not an object', { ip: 'tor' }, { signals: expect.not.objectContaining({ ip: expect.anything() }) }],
    ['no request_id at all', { request_id: undefined }, { requestId: null }],
  ])('a deny stays a deny when a secondary field is malformed: %s', async (_label, extra, expected) => {
    fake.reply({ verdict: 'deny', extra })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend', ...expected })
  })

  it("never hands TraceNow's own Set-Cookie to the visitor", async () => {
    const { logger, codes } = recordingLogger()
    fake.reply({ verdict: 'allow', setCookies: ['AWSALB=abc; Path=/', 'session=vendor; Path=/; HttpOnly'] })
    const { decision } = await decideAt(gateFor({}, { logger }))
    expect(decision.source).toBe('backend')
    expect(decision.setCookies).toEqual([])
    expect(codes()).not.toContain('SP_WARN_COOKIE_REJECTED')
  })
})

describe('failures', () => {
  it.each([
    ['an unknown verdict word', { extra: { verdict: 'block' } }],
    ["'review', which TraceNow never sends", { extra: { verdict: 'review' } }],
    ['a reply without a verdict', { extra: { verdict: undefined } }],
    ['a body that is not JSON', { fault: 'bad-json' as const }],
    ['an error body under 200', { extra: { detail: 'Internal error' } }],
    ['a 10 MB body', { fault: 'huge-body' as const }],
    ['a JSON array', { fault: { status: 200, body: '[{"verdict":"deny"}]' } }],
  ])('%s is an invalid reply, never a verdict', async (_label, reply) => {
    fake.reply(reply)
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'invalid' })
  })

  it('a refused key is a client failure whose message names the key as the cause, never its value', async () => {
    const backend = tracenow({ secretKey: 'tn_live_wrongKEY_123456', baseUrl: fake.url })
    cleanups.push(() => backend.close?.() ?? Promise.resolve())
    const error = await backend
      .decide(input({ event: 'login', status: 'attempted' }), {
        signal: new AbortController().signal,
        deadline: performance.now() + 1000,
        retries: 1,
      })
      .then(
        () => {
          throw new Error('expected a failure')
        },
        (failure: unknown) => failure as SallyportError,
      )
    expect(error).toBeInstanceOf(SallyportError)
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 401, vendorCode: 'invalid_key' })
    expect(error.message).toMatch(/secret key/)
    expect(inspect(error, { depth: 10 })).not.toContain('wrongKEY')
    expect(fake.requests).toHaveLength(1)
  })

  it('a used-up quota is a client failure that says so', async () => {
    fake.reply({ refuse: 'quota' })
    const backend = tracenow({ secretKey: SECRET_KEY, baseUrl: fake.url })
    cleanups.push(() => backend.close?.() ?? Promise.resolve())
    const error = await backend
      .decide(input({ event: 'login', status: 'attempted' }), {
        signal: new AbortController().signal,
        deadline: performance.now() + 1000,
        retries: 1,
      })
      .catch((failure: unknown) => failure as SallyportError)
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 403, vendorCode: 'quota_exceeded' })
    expect((error as SallyportError).message).toMatch(/quota .*used up.*plan_quota_exhausted/)
  })

  it('a 403 without the quota body says the key may lack access', async () => {
    fake.reply({ fault: { status: 403, body: '{"detail":"Forbidden"}' } })
    const { logger, lines } = recordingLogger()
    const { decision } = await decideAt(gateFor({}, { logger }))
    expect(decision).toMatchObject({ source: 'fallback', reason: 'client' })
    expect(lines.find((line) => line.includes('SP_WARN_BACKEND_REFUSED'))).toMatch(/no access to \/trace/)
  })

  it('a malformed-request refusal names the fields at fault, never their values', async () => {
    fake.reply({
      fault: { status: 422, body: JSON.stringify({ detail: [{ loc: ['body', 'email'], msg: 'bad', input: 'ada@example.com' }] }) },
    })
    const { logger, lines } = recordingLogger()
    const { decision } = await decideAt(gateFor({}, { logger }))
    expect(decision).toMatchObject({ source: 'fallback', reason: 'client' })
    const warning = lines.find((line) => line.includes('SP_WARN_BACKEND_REFUSED'))
    expect(warning).toContain('HTTP 422 at body.email')
    expect(lines.join('\n')).not.toContain('ada@example.com')
  })

  it('a 429 is a client failure that keeps retry-after', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' })
      res.end('{"detail":"Rate limit exceeded"}')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve())))
    const backend = tracenow({ secretKey: SECRET_KEY, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })
    cleanups.push(() => backend.close?.() ?? Promise.resolve())
    const error = await backend
      .decide(input({ event: 'login', status: 'attempted' }), {
        signal: new AbortController().signal,
        deadline: performance.now() + 1000,
        retries: 1,
      })
      .catch((failure: unknown) => failure as SallyportError)
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 429, retryAfter: 2, vendorCode: 'rate_limited' })
    expect((error as SallyportError).message).toContain('rate limit')
  })

  it("the fake's rate-limit refusal is a client failure", async () => {
    fake.reply({ refuse: 'rate-limit' })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ source: 'fallback', reason: 'client' })
    expect(fake.requests).toHaveLength(1)
  })

  it('a 503 is a server failure after one retry', async () => {
    fake.reply({ fault: { status: 503 } })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ source: 'fallback', reason: 'server' })
    expect(fake.requests).toHaveLength(2)
  })

  it('a 503 followed by an answer uses the answer', async () => {
    fake.replyOnce({ fault: { status: 503 } })
    fake.reply({ verdict: 'deny', policyTriggered: 'Velocity' })
    const { decision } = await decideAt(gateFor())
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend', reason: 'Velocity' })
    expect(fake.requests).toHaveLength(2)
  })

  it('a reset connection is a network failure', async () => {
    fake.reply({ fault: 'reset' })
    const { decision } = await decideAt(gateFor({}, { retries: 0 }))
    expect(decision).toMatchObject({ source: 'fallback', reason: 'network' })
  })

  it('a hung API is a timeout at the budget', async () => {
    fake.reply({ fault: 'hang' })
    const started = performance.now()
    const { decision } = await decideAt(gateFor({ timeoutMs: 200 }))
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout' })
    expect(elapsed).toBeGreaterThanOrEqual(195)
    expect(elapsed).toBeLessThanOrEqual(200 + 30)
  })

  it('the backend timeoutMs is the budget when the gate sets none', async () => {
    fake.reply({ verdict: 'deny', delayMs: 400 })
    const { decision } = await decideAt(gateFor({ timeoutMs: 800 }))
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })
})

describe('awaitCompleteSignals', () => {
  it('asks again once after the delay when the first reply is partial, and uses the complete one', async () => {
    fake.replyOnce({ verdict: 'allow', signalsComplete: false, requestId: 'tr_first' })
    fake.reply({ verdict: 'challenge', policyTriggered: 'Risky email', requestId: 'tr_second' })
    const started = performance.now()
    const { decision } = await decideAt(gateFor({ timeoutMs: 1000 }), {
      ...login,
      deviceToken: DEVICE_TOKEN,
      awaitCompleteSignals: { delayMs: 150 },
    })
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({
      verdict: 'challenge',
      reason: 'Risky email',
      requestId: 'tr_second',
      complete: true,
      source: 'backend',
    })
    expect(fake.requests).toHaveLength(2)
    const [first, second] = fake.checks()
    expect(second).toEqual(first)
    expect(elapsed).toBeGreaterThanOrEqual(150)
  })

  it('waits 500 ms by default', async () => {
    fake.replyOnce({ signalsComplete: false })
    const started = performance.now()
    const { decision } = await decideAt(gateFor({ timeoutMs: 1500 }), { ...login, awaitCompleteSignals: true })
    expect(performance.now() - started).toBeGreaterThanOrEqual(500)
    expect(decision.complete).toBe(true)
    expect(fake.requests).toHaveLength(2)
  })

  it('asks only once, even when the second reply is partial too', async () => {
    fake.reply({ verdict: 'deny', signalsComplete: false })
    const { decision } = await decideAt(gateFor({ timeoutMs: 1000 }), { ...login, awaitCompleteSignals: { delayMs: 50 } })
    expect(decision).toMatchObject({ verdict: 'deny', complete: false, source: 'backend' })
    expect(fake.requests).toHaveLength(2)
  })

  it('keeps the partial verdict, with one call, when the budget has no room for the delay and a call', async () => {
    fake.reply({ verdict: 'challenge', signalsComplete: false })
    const started = performance.now()
    const { decision } = await decideAt(gateFor({ timeoutMs: 300 }), { ...login, awaitCompleteSignals: { delayMs: 500 } })
    expect(decision).toMatchObject({ verdict: 'challenge', complete: false, source: 'backend' })
    expect(fake.requests).toHaveLength(1)
    expect(performance.now() - started).toBeLessThan(300)
  })

  it('does not ask again unless the checkpoint asked for complete signals', async () => {
    fake.reply({ signalsComplete: false })
    const { decision } = await decideAt(gateFor({ timeoutMs: 2000 }))
    expect(decision.complete).toBe(false)
    expect(fake.requests).toHaveLength(1)
  })

  it.each([
    ['fails', { fault: { status: 503 } }],
    ['hangs', { fault: 'hang' as const }],
    ['answers nonsense', { fault: 'bad-json' as const }],
  ])('keeps the partial verdict when the second call %s, inside the budget', async (_label, second) => {
    fake.replyOnce({ verdict: 'challenge', policyTriggered: 'Tor exit node', signalsComplete: false })
    fake.reply(second)
    const started = performance.now()
    const { decision } = await decideAt(gateFor({ timeoutMs: 400 }), { ...login, awaitCompleteSignals: { delayMs: 50 } })
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({ verdict: 'challenge', reason: 'Tor exit node', complete: false, source: 'backend' })
    expect(fake.requests).toHaveLength(2)
    expect(elapsed).toBeLessThanOrEqual(400 + 30)
  })

  it('stops waiting as soon as the decision is aborted', async () => {
    fake.reply({ signalsComplete: false })
    const backend = tracenow({ secretKey: SECRET_KEY, baseUrl: fake.url })
    cleanups.push(() => backend.close?.() ?? Promise.resolve())
    const controller = new AbortController()
    const started = performance.now()
    const pending = backend.decide(input({ event: 'login', status: 'attempted', awaitCompleteSignals: { delayMs: 2000 } }), {
      signal: controller.signal,
      deadline: performance.now() + 5000,
      retries: 1,
    })
    setTimeout(() => controller.abort(), 100)
    await expect(pending).rejects.toBeInstanceOf(SallyportError)
    expect(performance.now() - started).toBeLessThan(100 + 100)
    expect(fake.requests).toHaveLength(1)
  })
})
