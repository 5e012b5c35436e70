import type { IncomingHttpHeaders } from 'node:http'
import {
  type BackendVerdict,
  createGate,
  type DecisionBackend,
  type DecisionInput,
  type GateOptions,
  type Logger,
  localPolicies,
  type RequestView,
  SallyportError,
  type TrustFunction,
} from '@sallyport/core'
import { describe, expect, it } from 'vitest'

interface ViewInit {
  method?: string
  url?: string
  headers?: IncomingHttpHeaders
  remoteAddress?: string
  frameworkTrust?: TrustFunction
  encrypted?: boolean
  /** Calls the client-gone listener after this many ms. */
  goneAfterMs?: number
}

function view(init: ViewInit = {}): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'GET',
    url: init.url ?? '/',
    headers: init.headers ?? { host: 'site.example' },
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: init.encrypted ?? false,
    frameworkTrust: init.frameworkTrust,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone(listener) {
      if (init.goneAfterMs === undefined) return () => {}
      const timer = setTimeout(listener, init.goneAfterMs)
      return () => clearTimeout(timer)
    },
  }
}

interface Recorded {
  warnings: Array<Record<string, unknown>>
  errors: Array<Record<string, unknown>>
}

function recordingLogger(): Logger & Recorded {
  const warnings: Array<Record<string, unknown>> = []
  const errors: Array<Record<string, unknown>> = []
  return { warnings, errors, warn: (object) => void warnings.push(object), error: (object) => void errors.push(object) }
}

/** A backend answering with `reply` (or running it), recording every input. */
function stub(
  reply: BackendVerdict | ((input: DecisionInput, signal: AbortSignal) => Promise<unknown>),
  extra: Partial<DecisionBackend> = {},
) {
  const inputs: DecisionInput[] = []
  const backend: DecisionBackend = {
    name: 'stub',
    ...extra,
    async decide(input, ctx) {
      inputs.push(input)
      return typeof reply === 'function' ? ((await reply(input, ctx.signal)) as BackendVerdict) : reply
    },
  }
  return { backend, inputs }
}

const hang = (_input: DecisionInput, signal: AbortSignal) =>
  new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }))

function gateWith(backend: DecisionBackend | DecisionBackend[], options: GateOptions<null> = {}) {
  return createGate<null>({ backend, logger: recordingLogger(), ...options })
}

const html = { host: 'site.example', accept: 'text/html,application/xhtml+xml,*/*;q=0.8' }

describe('client IP through createGate', () => {
  const ipFor = async (options: GateOptions<null>, init: ViewInit) => {
    const { backend, inputs } = stub({ verdict: 'allow' })
    await gateWith(backend, options).decide(view(init))
    return inputs[0]?.ip
  }
  const proxied = { remoteAddress: '127.0.0.1', headers: { host: 'site.example', 'x-forwarded-for': '6.6.6.6, 198.51.100.4' } }

  it('trusts no proxy by default', async () => {
    expect(await ipFor({}, proxied)).toBe('127.0.0.1')
  })

  it('walks X-Forwarded-For through trusted proxies only', async () => {
    expect(await ipFor({ trustProxy: 'loopback' }, proxied)).toBe('198.51.100.4')
    expect(await ipFor({ trustProxy: 1 }, proxied)).toBe('198.51.100.4')
    expect(await ipFor({ trustProxy: 2 }, proxied)).toBe('6.6.6.6')
    expect(await ipFor({ trustProxy: ['10.0.0.0/8'] }, proxied)).toBe('127.0.0.1')
  })

  it("uses the framework's trust setting when trustProxy is not set, and trustProxy when it is", async () => {
    const frameworkTrust: TrustFunction = (address) => address === '127.0.0.1'
    expect(await ipFor({}, { ...proxied, frameworkTrust })).toBe('198.51.100.4')
    expect(await ipFor({ trustProxy: false }, { ...proxied, frameworkTrust })).toBe('127.0.0.1')
  })

  it('believes clientIpHeader, in any case, only from a trusted peer', async () => {
    const headers = { host: 'site.example', 'cf-connecting-ip': '203.0.113.50' }
    expect(await ipFor({ trustProxy: 'loopback', clientIpHeader: 'CF-Connecting-IP' }, { remoteAddress: '127.0.0.1', headers })).toBe(
      '203.0.113.50',
    )
    expect(await ipFor({ trustProxy: 'loopback', clientIpHeader: 'cf-connecting-ip' }, { remoteAddress: '198.51.100.66', headers })).toBe(
      '198.51.100.66',
    )
  })

  it('sends null, never the raw text, when a trusted proxy forwarded garbage', async () => {
    expect(await ipFor({ trustProxy: true }, { headers: { 'x-forwarded-for': '<script>alert(1)</script>' } })).toBeNull()
  })

  it('warns once when X-Forwarded-For arrives from a private peer and no proxy is trusted', async () => {
    const logger = recordingLogger()
    const { backend } = stub({ verdict: 'allow' })
    const gate = createGate<null>({ backend, logger })
    await gate.decide(view({ remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '203.0.113.9' } }))
    await gate.decide(view({ remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '203.0.113.10' } }))
    expect(logger.warnings.filter((warning) => warning.code === 'SP_WARN_XFF_UNTRUSTED')).toHaveLength(1)
  })
})

describe('verdicts and responses', () => {
  it('allow continues the request', async () => {
    const { backend } = stub({ verdict: 'allow', requestId: 'r1', signals: { score: 1 } })
    const { decision, action } = await gateWith(backend).decide(view())
    expect(action).toEqual({ type: 'next' })
    expect(decision).toMatchObject({ verdict: 'allow', wouldBe: 'allow', source: 'backend', backend: 'stub', requestId: 'r1' })
    expect(decision.signals).toEqual({ score: 1 })
    expect(decision.complete).toBe(true)
  })

  it('deny answers 403 JSON to API clients', async () => {
    const { backend } = stub({ verdict: 'deny', reason: 'deny_ip', requestId: 'req-7' })
    const { decision, action } = await gateWith(backend).decide(view({ headers: { accept: 'application/json' } }))
    expect(decision).toMatchObject({ verdict: 'deny', reason: 'deny_ip' })
    expect(action).toMatchObject({ type: 'respond', status: 403 })
    if (action.type !== 'respond') throw new Error('unreachable')
    expect(action.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(action.body)).toEqual({ error: 'forbidden', requestId: 'req-7' })
  })

  it('deny answers an HTML 403 to browsers, escaping what the backend said', async () => {
    const { backend } = stub({ verdict: 'deny', requestId: '<img src=x onerror=alert(1)>' })
    const { action } = await gateWith(backend).decide(view({ headers: html }))
    if (action.type !== 'respond') throw new Error(`expected a response, got ${action.type}`)
    expect(action.status).toBe(403)
    expect(action.headers['content-type']).toMatch(/^text\/html/)
    expect(action.body).not.toContain('<img')
    expect(action.body).toContain('&#60;img')
  })

  it('challenge without a page answers 403 challenge_required', async () => {
    const { backend } = stub({ verdict: 'challenge', reason: 'bot' })
    const { action } = await gateWith(backend).decide(view({ headers: html }))
    if (action.type !== 'respond') throw new Error(`expected a response, got ${action.type}`)
    expect(action.status).toBe(403)
    expect(JSON.parse(action.body)).toEqual({ error: 'challenge_required', reason: 'bot' })
  })

  it('challenge redirects a page load to challenge.url with the page to return to', async () => {
    const { backend } = stub({ verdict: 'challenge' })
    const gate = gateWith(backend, { challenge: { url: 'https://challenge.example/verify?lang=en' } })
    const { action } = await gate.decide(view({ url: '/cart?item=1', headers: html, encrypted: true }))
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    const location = new URL(action.location)
    expect(location.origin + location.pathname).toBe('https://challenge.example/verify')
    expect(location.searchParams.get('lang')).toBe('en')
    expect(location.searchParams.get('redirect_url')).toBe('https://site.example/cart?item=1')
    expect(action.headers['cache-control']).toBe('no-store')
  })

  it('challenge does not redirect a non-navigation (POST, fetch) request', async () => {
    const { backend } = stub({ verdict: 'challenge' })
    const gate = gateWith(backend, { challenge: { url: 'https://challenge.example/verify' } })
    expect((await gate.decide(view({ method: 'POST', headers: html }))).action).toMatchObject({ type: 'respond', status: 403 })
    expect((await gate.decide(view({ headers: { accept: 'application/json' } }))).action).toMatchObject({ type: 'respond', status: 403 })
  })

  it('redirect_url never names a host outside redirectHosts', async () => {
    const { backend } = stub({ verdict: 'challenge' })
    const gate = gateWith(backend, { challenge: { url: 'https://challenge.example/' }, redirectHosts: ['site.example'] })
    const { action } = await gate.decide(view({ url: '//evil.com/x', headers: { ...html, host: 'evil.com' } }))
    if (action.type !== 'redirect') throw new Error(`expected a redirect, got ${action.type}`)
    const back = new URL(new URL(action.location).searchParams.get('redirect_url') ?? '')
    expect(back.host).toBe('site.example')
  })

  it('a challenge hook answering "continue" lets the request through', async () => {
    const { backend } = stub({ verdict: 'challenge' })
    const gate = gateWith(backend, { challenge: { hook: () => 'continue' } })
    expect((await gate.decide(view({ headers: html }))).action).toEqual({ type: 'next' })
  })

  it('monitor mode enforces allow and keeps what would have happened', async () => {
    const { backend } = stub({ verdict: 'deny', reason: 'deny_ip' })
    const { decision, action } = await gateWith(backend, { mode: 'monitor' }).decide(view())
    expect(action).toEqual({ type: 'next' })
    expect(decision).toMatchObject({ verdict: 'allow', wouldBe: 'deny', reason: 'deny_ip' })
  })

  it('with several backends the strictest verdict wins', async () => {
    const a = stub({ verdict: 'allow' }, { name: 'a' })
    const b = stub({ verdict: 'challenge', reason: 'b-rule' }, { name: 'b' })
    const c = stub({ verdict: 'review' }, { name: 'c' })
    const { decision } = await gateWith([a.backend, b.backend, c.backend]).decide(view())
    expect(decision).toMatchObject({ verdict: 'challenge', backend: 'b', reason: 'b-rule' })
    expect(Object.keys(decision.signals).sort()).toEqual(['a', 'b', 'c'])
  })

  it('marks a decision incomplete when the backend says its signals were partial', async () => {
    const { backend } = stub({ verdict: 'allow', complete: false })
    expect((await gateWith(backend).decide(view())).decision.complete).toBe(false)
  })

  it('a throwing onDecision hook is logged and the request goes on', async () => {
    const logger = recordingLogger()
    const { backend } = stub({ verdict: 'allow' })
    const gate = createGate<null>({
      backend,
      logger,
      onDecision: () => {
        throw new Error('hook bug')
      },
    })
    expect((await gate.decide(view())).action).toEqual({ type: 'next' })
    expect(logger.errors.length).toBeGreaterThan(0)
  })
})

describe('skip', () => {
  it('makes no backend call for static assets under staticPaths, OPTIONS and skip paths', async () => {
    const { backend, inputs } = stub({ verdict: 'deny' })
    const gate = gateWith(backend, { skip: '/health', staticPaths: ['/static', '/img/'] })
    for (const [method, url] of [
      ['GET', '/static/app.js?v=3'],
      ['HEAD', '/img/logo.PNG'],
      ['OPTIONS', '/api/login'],
      ['GET', '/health'],
      ['GET', '/health/db'],
    ] as const) {
      const { decision, action } = await gate.decide(view({ method, url }))
      expect(action, `${method} ${url}`).toEqual({ type: 'next' })
      expect(decision.source).toBe('skip')
    }
    expect(inputs).toHaveLength(0)
  })

  it('does not skip look-alikes, data formats, or asset names outside staticPaths', async () => {
    const { backend, inputs } = stub({ verdict: 'deny' })
    const gate = gateWith(backend, { skip: '/health', staticPaths: ['/static'] })
    const urls = ['/healthz', '/static/users.json', '/admin?file=x.css', '/admin/users.css', '/staticx/app.js', '/static/../admin.css']
    for (const url of urls) {
      expect((await gate.decide(view({ url, headers: { accept: 'application/json' } }))).decision.verdict, url).toBe('deny')
    }
    const { decision } = await gate.decide(view({ method: 'POST', url: '/static/app.js' }))
    expect(decision.verdict).toBe('deny')
    expect(inputs).toHaveLength(urls.length + 1)
  })

  it('without staticPaths, judges every asset-looking path', async () => {
    const { backend, inputs } = stub({ verdict: 'deny' })
    const gate = gateWith(backend)
    for (const url of ['/app.css', '/assets/app.js', '/favicon.ico']) {
      expect((await gate.decide(view({ url }))).decision.verdict, url).toBe('deny')
    }
    expect(inputs).toHaveLength(3)
  })
})

describe('backend failures and fallbacks', () => {
  it('a hanging backend times out within the budget and fails open by default', async () => {
    const { backend } = stub(hang)
    const started = performance.now()
    const { decision, action } = await gateWith(backend, { timeoutMs: 100 }).decide(view())
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout', backend: 'stub' })
    expect(action).toEqual({ type: 'next' })
    expect(elapsed).toBeGreaterThanOrEqual(95)
    expect(elapsed).toBeLessThan(100 + 50)
  })

  it('a backend that ignores its signal still cannot hold the request past the budget', async () => {
    const { backend } = stub(() => new Promise(() => {}))
    const started = performance.now()
    const { decision } = await gateWith(backend, { timeoutMs: 80 }).decide(view())
    expect(decision.reason).toBe('timeout')
    expect(performance.now() - started).toBeLessThan(80 + 50)
  })

  it.each<[string, () => Promise<unknown>, string]>([
    ['a plain Error', () => Promise.reject(new Error('boom')), 'network'],
    ['a TypeError (a bug in the backend)', () => Promise.reject(new TypeError('x is undefined')), 'network'],
    ['SP_BACKEND_SERVER', () => Promise.reject(SallyportError.backend('server', 'HTTP 503')), 'server'],
    ['SP_BACKEND_CLIENT', () => Promise.reject(SallyportError.backend('client', 'HTTP 401')), 'client'],
    ['a reply without a verdict', async () => ({ reason: 'x' }), 'invalid'],
    ['an unknown verdict word', async () => ({ verdict: 'block' }), 'invalid'],
    ['a reply that is not an object', async () => 'allow', 'invalid'],
  ])('%s becomes the %s fallback', async (_label, reply, failure) => {
    const { backend } = stub(reply)
    const { decision } = await gateWith(backend).decide(view())
    expect(decision).toMatchObject({ verdict: 'allow', wouldBe: 'allow', source: 'fallback', reason: failure })
  })

  it('a backend whose decide() throws synchronously falls back instead of failing the request', async () => {
    const backend: DecisionBackend = {
      name: 'sync',
      decide() {
        throw new TypeError('x is undefined')
      },
    }
    const { decision, action } = await gateWith(backend).decide(view())
    expect(decision).toMatchObject({ source: 'fallback', reason: 'network', backend: 'sync' })
    expect(action).toEqual({ type: 'next' })
  })

  it('onError maps every failure, or each class, to a verdict', async () => {
    const failing = stub(() => Promise.reject(SallyportError.backend('server', 'HTTP 500'))).backend
    expect((await gateWith(failing, { onError: 'deny' }).decide(view())).decision).toMatchObject({ verdict: 'deny', reason: 'server' })
    const perClass = gateWith(failing, { onError: { server: 'challenge', timeout: 'deny' } })
    expect((await perClass.decide(view())).decision).toMatchObject({ verdict: 'challenge', source: 'fallback' })
    const other = gateWith(stub(() => Promise.reject(new Error('x'))).backend, { onError: { server: 'deny' } })
    expect((await other.decide(view())).decision.verdict).toBe('allow')
  })

  it("a checkpoint's onError overrides the gate's, for that route only", async () => {
    const { backend, inputs } = stub(() => Promise.reject(SallyportError.backend('server', 'HTTP 500')))
    const gate = gateWith(backend)
    const checkout = gate.checkpoint({ event: 'checkout', email: 'buyer@example.com', onError: 'deny' })
    const { decision } = await gate.decide(view({ method: 'POST', url: '/checkout' }), checkout)
    expect(decision).toMatchObject({ verdict: 'deny', source: 'fallback', reason: 'server' })
    expect(inputs[0]?.checkpoint).toEqual({ event: 'checkout', status: 'attempted', email: 'buyer@example.com' })
    expect((await gate.decide(view())).decision.verdict).toBe('allow')
  })

  it('a client that goes away ends the decision at once and nothing is written', async () => {
    const { backend } = stub(hang)
    const started = performance.now()
    const { decision, action } = await gateWith(backend, { timeoutMs: 5000 }).decide(view({ goneAfterMs: 20 }))
    expect(action).toEqual({ type: 'none' })
    expect(decision.reason).toBe('client_gone')
    expect(performance.now() - started).toBeLessThan(1000)
  })
})

describe('Set-Cookie from backends', () => {
  it('forwards only valid cookies the backend declared, and warns about the rest once', async () => {
    const logger = recordingLogger()
    const { backend } = stub(
      {
        verdict: 'allow',
        setCookies: [
          'trusted_id=tid_1; Path=/; HttpOnly',
          'session=hijack; Path=/',
          'trusted_id=x; Domain=evil.com',
          'trusted_id=a\r\nX: y',
        ],
      },
      { cookies: ['trusted_id'] },
    )
    const gate = createGate<null>({ backend, logger })
    const { decision } = await gate.decide(view({ headers: { host: 'www.site.example' } }))
    expect(decision.setCookies).toEqual(['trusted_id=tid_1; Path=/; HttpOnly'])
    expect(logger.warnings.filter((warning) => warning.code === 'SP_WARN_COOKIE_REJECTED')).toHaveLength(1)
  })
})

describe('decide: the outcome in the same tick when nothing waits', () => {
  it('hands back the local engine’s outcome itself, the same as awaiting it gives', async () => {
    const gate = createGate<null>({ logger: recordingLogger() })
    const now = gate.decide(view({ headers: { ...html, 'user-agent': 'curl/8.5.0' } }))
    expect(now).not.toBeInstanceOf(Promise)
    const later = await gate.decide(view({ headers: { ...html, 'user-agent': 'curl/8.5.0' } }))
    expect((now as Awaited<typeof now>).decision).toMatchObject({
      verdict: 'challenge',
      reason: 'automation-user-agent',
      source: 'backend',
    })
    expect(later.decision).toMatchObject({ verdict: 'challenge', reason: 'automation-user-agent', source: 'backend' })
    expect((now as Awaited<typeof now>).action).toEqual(later.action)
    await gate.close()
  })

  it('answers a skip in the same tick, and waits for a backend that does I/O', async () => {
    const { backend } = stub({ verdict: 'deny', reason: 'remote' })
    const gate = gateWith(backend, { staticPaths: ['/assets'] })
    const skipped = gate.decide(view({ url: '/assets/app.css' }))
    expect(skipped).not.toBeInstanceOf(Promise)
    const remote = gate.decide(view())
    expect(remote).toBeInstanceOf(Promise)
    expect((await remote).decision).toMatchObject({ verdict: 'deny', reason: 'remote' })
  })

  it('measures a same-tick decision from its own start, also when a breaker is open', async () => {
    const elapsedSince = (start: number) => performance.now() - start
    const gate = createGate<null>({ logger: recordingLogger() })
    await gate.decide(view())
    const start = performance.now()
    const quick = gate.decide(view())
    expect(quick).not.toBeInstanceOf(Promise)
    const latency = (quick as Awaited<typeof quick>).decision.latencyMs
    expect(latency).toBeGreaterThanOrEqual(0)
    expect(latency).toBeLessThanOrEqual(elapsedSince(start))

    // The breaker opens on the first failure; the next decision skips the call in the same tick.
    const failing: DecisionBackend = {
      name: 'down',
      decide: () => {
        throw new Error('down')
      },
    }
    const broken = createGate<null>({
      logger: recordingLogger(),
      backend: failing,
      breaker: { consecutiveFailures: 1, cooldownMs: 60_000 },
    })
    await broken.decide(view())
    await new Promise((resolve) => setTimeout(resolve, 5))
    const before = performance.now()
    const open = broken.decide(view())
    expect(open).not.toBeInstanceOf(Promise)
    const decision = (open as Awaited<typeof open>).decision
    expect(decision.reason).toBe('circuit_open')
    expect(decision.latencyMs).toBeGreaterThanOrEqual(0)
    expect(decision.latencyMs).toBeLessThanOrEqual(elapsedSince(before))
  })

  it('calls a wrapper that replaces the local engine’s decide, not the engine behind it', async () => {
    const engine = localPolicies({ logger: recordingLogger() })
    const seen: Array<string | null> = []
    const wrapped: DecisionBackend = {
      ...engine,
      decide(input, ctx) {
        seen.push(input.ip)
        return engine.decide(input, ctx)
      },
    }
    const gate = gateWith(wrapped)
    const { decision } = await gate.decide(view())
    expect(seen).toEqual(['203.0.113.9'])
    expect(decision).toMatchObject({ verdict: 'allow', backend: 'local', source: 'backend' })
    await engine.close()
  })

  it('turns a throw inside the gate into an allow that is logged, in the same tick', () => {
    const logger = recordingLogger()
    const gate = createGate<null>({ logger, onDecision: () => undefined })
    const broken = {
      ...view(),
      get headers(): IncomingHttpHeaders {
        throw new Error('broken view')
      },
    } as RequestView<null>
    const outcome = gate.decide(broken)
    expect(outcome).not.toBeInstanceOf(Promise)
    expect((outcome as Awaited<typeof outcome>).decision).toMatchObject({ verdict: 'allow', reason: 'internal_error' })
    expect(logger.errors.map((error) => error.code)).toContain('SP_INTERNAL')
  })
})
