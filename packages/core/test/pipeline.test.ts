import type { IncomingHttpHeaders } from 'node:http'
import { describe, expect, it } from 'vitest'
import { Act, NEXT } from '../src/act/action.js'
import { type Answer, Ask } from '../src/ask/calls.js'
import { conclude, strictestFallback } from '../src/conclude/decision.js'
import { ABORT_CLIENT_GONE, ABORT_TIMEOUT, Deadline } from '../src/deadline.js'
import { DEFAULT_SANITIZE_LIMITS } from '../src/headers.js'
import { Identify } from '../src/identify/request.js'
import { type Logger, Warnings } from '../src/logger.js'
import { createTelemetry } from '../src/telemetry.js'
import type { BackendVerdict, Decision, DecisionBackend, FailureClass, RequestView, Verdict } from '../src/types.js'

/** Each stage of the pipeline alone, with plain values: no gate, no framework, no server. */

const quiet: Logger = { warn: () => {}, error: () => {} }
const allowAll = Object.fromEntries(['timeout', 'network', 'server', 'client', 'invalid'].map((failure) => [failure, 'allow'])) as Record<
  FailureClass,
  Verdict
>

function view(init: { url?: string; method?: string; headers?: IncomingHttpHeaders; remoteAddress?: string } = {}): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'GET',
    url: init.url ?? '/',
    headers: init.headers ?? { host: 'site.example' },
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

function backend(name: string, decide: DecisionBackend['decide'], extra: Partial<DecisionBackend> = {}): DecisionBackend {
  return { name, decide, ...extra }
}

describe('identify', () => {
  const identify = (backends: DecisionBackend[], trust?: (address: string, hop: number) => boolean) =>
    new Identify({
      backends,
      trust,
      clientIpHeader: undefined,
      sensitive: new Set(['authorization', 'cookie', 'x-secret']),
      forwardQuery: new Set(['page']),
      limits: DEFAULT_SANITIZE_LIMITS,
      warnings: new Warnings(quiet, new Set()),
    })

  it('gives each backend the client IP through trusted proxies, the path with only forwarded query parameters, and its cookies', () => {
    const reads = backend('reads', () => ({ verdict: 'allow' }), { cookies: ['sid'], headers: ['x-device'] })
    const other = backend('other', () => ({ verdict: 'allow' }))
    const request = view({
      url: '/list?page=2&token=secret',
      remoteAddress: '10.0.0.2',
      headers: {
        host: 'site.example',
        'x-forwarded-for': '198.51.100.7',
        cookie: 'sid=abc; theme=dark',
        'x-device': 'd1',
        'x-secret': 'never',
        'user-agent': 'Mozilla/5.0',
      },
    })
    const { ip, inputs } = identify([reads, other], (address) => address === '10.0.0.2').identify(request, undefined)
    expect(ip).toBe('198.51.100.7')
    const [first, second] = inputs
    expect(first?.path).toBe('/list?page=2')
    expect(first?.cookieNames).toEqual(['sid', 'theme'])
    expect(first?.cookie('sid')).toBe('abc')
    expect(first?.cookie('theme')).toBeUndefined()
    expect(second?.cookie('sid')).toBeUndefined()
    expect(first?.headers['x-device']).toBe('d1')
    expect(second?.headers['x-device']).toBeUndefined()
    expect(first?.headers['x-secret']).toBeUndefined()
    expect(first?.headers['user-agent']).toBe('Mozilla/5.0')
  })

  it('believes no X-Forwarded-For when no proxy is trusted', () => {
    const request = view({ headers: { host: 'site.example', 'x-forwarded-for': '198.51.100.7' } })
    const { ip } = identify([backend('b', () => ({ verdict: 'allow' }))]).identify(request, undefined)
    expect(ip).toBe('203.0.113.9')
  })
})

describe('ask', () => {
  const ask = (backends: DecisionBackend[], timeoutMs = 50) =>
    new Ask({
      backends,
      timeoutMs,
      retries: 0,
      breaker: false,
      cache: undefined,
      logger: quiet,
      warnings: new Warnings(quiet, new Set()),
      telemetry: createTelemetry(null),
      reportFailures: false,
    })
  const input = new Identify({
    backends: [backend('x', () => ({ verdict: 'allow' }))],
    trust: undefined,
    clientIpHeader: undefined,
    sensitive: new Set(),
    forwardQuery: new Set(),
    limits: DEFAULT_SANITIZE_LIMITS,
    warnings: new Warnings(quiet, new Set()),
  }).identify(view(), undefined).inputs[0]
  const client = { onClientGone: () => () => {} }

  it('hands back answers without a promise when every backend answered in process', () => {
    const answers = ask([backend('a', () => ({ verdict: 'deny', reason: 'now' }))]).ask([input as never], performance.now(), null, client)
    expect(answers).not.toBeInstanceOf(Promise)
    expect((answers as { answers: Answer[] }).answers[0]).toMatchObject({ ok: true, reply: { verdict: 'deny', reason: 'now' } })
  })

  it('classifies a hanging call as a timeout at the deadline, a throw by its error, and a bad reply as invalid', async () => {
    const hanging = backend('hanging', () => new Promise<BackendVerdict>(() => {}))
    const throwing = backend('throwing', () => {
      throw new Error('boom')
    })
    const bad = backend('bad', () => ({ verdict: 'maybe' }) as unknown as BackendVerdict)
    const started = performance.now()
    const { answers } = await ask([hanging, throwing, bad], 30).ask([input, input, input] as never, started, null, client)
    expect(performance.now() - started).toBeGreaterThanOrEqual(25)
    expect(answers.map((answer) => (answer.ok ? 'ok' : answer.failure))).toEqual(['timeout', 'network', 'invalid'])
  })

  it('says the client left when it leaves while a call waits', async () => {
    let leave = () => {}
    const leaving = {
      onClientGone: (listener: () => void) => {
        leave = listener
        return () => {}
      },
    }
    const pending = ask([backend('slow', () => new Promise<BackendVerdict>(() => {}))], 1000).ask(
      [input as never],
      performance.now(),
      null,
      leaving,
    )
    leave()
    expect((await pending).clientGone).toBe(true)
  })
})

describe('conclude', () => {
  const a = backend('a', () => ({ verdict: 'allow' }))
  const b = backend('b', () => ({ verdict: 'allow' }))
  const base = { monitor: false, ip: '203.0.113.9', host: 'site.example', latencyMs: 3, cookieRejected: () => {} }

  it('lets the strictest verdict win, counting a failure as its failure policy says', () => {
    const answers: Answer[] = [
      { backend: a, ok: true, reply: { verdict: 'challenge', reason: 'bot' } },
      { backend: b, ok: false, failure: 'timeout', error: new Error('late') },
    ]
    const decision = conclude({ ...base, answers, onError: { ...allowAll, timeout: 'deny' }, allowedCookies: [new Set(), new Set()] })
    expect(decision).toMatchObject({ verdict: 'deny', wouldBe: 'deny', source: 'fallback', backend: 'b', reason: 'timeout' })
    expect(decision.signals).toMatchObject({ a: { verdict: 'challenge' }, b: { verdict: 'deny', source: 'fallback' } })
  })

  it('prefers an answer to a fallback on a tie, allows in monitor mode, and keeps only declared cookies', () => {
    const answers: Answer[] = [
      { backend: a, ok: false, failure: 'server', error: new Error('down') },
      { backend: b, ok: true, reply: { verdict: 'allow', setCookies: ['sid=1; Path=/', 'other=2; Path=/'] } },
    ]
    const rejected: string[] = []
    const decision = conclude({
      ...base,
      monitor: true,
      answers,
      onError: allowAll,
      allowedCookies: [new Set(), new Set(['sid'])],
      cookieRejected: (_backend, reason) => rejected.push(reason),
    })
    expect(decision).toMatchObject({ verdict: 'allow', wouldBe: 'allow', source: 'backend', backend: 'b' })
    expect(decision.setCookies).toEqual(['sid=1; Path=/'])
    expect(rejected).toHaveLength(1)
  })

  it('gives a failure of unknown kind the strictest verdict of the policy', () => {
    expect(strictestFallback(allowAll)).toBe('allow')
    expect(strictestFallback({ ...allowAll, client: 'challenge', server: 'review' })).toBe('challenge')
  })
})

describe('act', () => {
  const decision = (verdict: Verdict): Decision => ({
    verdict,
    wouldBe: verdict,
    reason: 'r',
    source: 'backend',
    backend: 'hosted',
    ip: '203.0.113.9',
    requestId: 'req-1',
    latencyMs: 1,
    complete: true,
    signals: {},
    setCookies: [],
  })
  const hosted = backend('hosted', () => ({ verdict: 'allow' }), {
    pages: { challenge: 'https://pages.example/challenge', deny: 'https://pages.example/blocked' },
  })
  const act = new Act<null>({
    backends: [hosted],
    challenge: {},
    deny: {},
    onReview: undefined,
    redirectHosts: [],
    hookTimeoutMs: 100,
    logger: quiet,
  })
  const input = {
    ip: null,
    method: 'GET',
    path: '/',
    host: 'site.example',
    headers: {},
    cookieNames: [],
    cookie: () => undefined,
    checkpoint: null,
  }
  const page = view({ url: '/account', headers: { host: 'site.example', accept: 'text/html' } })
  const api = view({ url: '/api/items', headers: { host: 'site.example', accept: 'application/json' } })

  it('sends a page load to the backend’s challenge page with the way back, and an API call a 403', () => {
    const toPage = act.act(decision('challenge'), page, input, 'https', undefined)
    expect(toPage).toMatchObject({ type: 'redirect', status: 302 })
    const location = new URL((toPage as { location: string }).location)
    expect(location.origin + location.pathname).toBe('https://pages.example/challenge')
    expect(location.searchParams.get('redirect_url')).toBe('https://site.example/account')
    expect(act.act(decision('challenge'), api, input, 'https', undefined)).toMatchObject({ type: 'respond', status: 403 })
  })

  it('lets an allow through and sends a denied page load to the block page', () => {
    expect(act.act(decision('allow'), page, input, 'https', undefined)).toBe(NEXT)
    const blocked = act.act(decision('deny'), page, input, 'https', undefined) as { location: string }
    expect(blocked.location.startsWith('https://pages.example/blocked?')).toBe(true)
  })
})

describe('deadline', () => {
  it('arms no timer until a call has to wait, then aborts at its time with a timeout', async () => {
    const deadline = Deadline.in(20)
    expect(deadline.reason).toBeUndefined()
    const expired = deadline.expired
    await expect(expired).rejects.toMatchObject({ code: 'SP_BACKEND_TIMEOUT' })
    expect(deadline.reason).toBe(ABORT_TIMEOUT)
    expect(deadline.timedOut).toBe(true)
  })

  it('passes an abort to its children, and a child never ends after its parent', () => {
    const parent = Deadline.in(1000)
    const child = Deadline.in(5000, parent)
    expect(child.at).toBe(parent.at)
    parent.abort(ABORT_CLIENT_GONE)
    expect(child.clientGone).toBe(true)
    expect(child.signal.aborted).toBe(true)
    parent.clear()
  })
})
