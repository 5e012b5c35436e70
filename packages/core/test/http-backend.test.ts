import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createGate,
  type Gate,
  type GateOptions,
  type HttpBackendOptions,
  httpBackend,
  type Logger,
  type RequestView,
  SallyportError,
  Transport,
} from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'

interface Received {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

interface TestServer {
  url: string
  received: Received[]
  close(): Promise<void>
}

type Handler = (req: IncomingMessage, res: ServerResponse, attempt: number) => void

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
})

/** A real decision service on 127.0.0.1, answering each request with `handler`. */
async function serve(handler: Handler): Promise<TestServer> {
  const received: Received[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.on('error', () => {})
      handler(req, res, received.length)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  cleanups.push(close)
  return { url: `http://127.0.0.1:${port}`, received, close }
}

/**
 * Runs `run` and fails if anything it set off ends as an uncaught exception, which would
 * crash the application's process. The runner's own handlers are set aside meanwhile.
 */
async function withoutUncaughtErrors<T>(run: () => Promise<T>): Promise<T> {
  const uncaught: unknown[] = []
  const record = (error: unknown) => void uncaught.push(error)
  const saved = process.rawListeners('uncaughtException') as Array<(error: Error) => void>
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', record)
  try {
    const result = await run()
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(uncaught.map(String), 'uncaught exceptions (each would crash the process)').toEqual([])
    return result
  } finally {
    process.off('uncaughtException', record)
    for (const listener of saved) process.on('uncaughtException', listener)
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

interface Logged {
  warnings: Array<Record<string, unknown>>
}

function recordingLogger(): Logger & Logged {
  const warnings: Array<Record<string, unknown>> = []
  return { warnings, warn: (object) => void warnings.push(object), error() {} }
}

function gateFor(server: TestServer, backendOptions: Partial<HttpBackendOptions> = {}, gateOptions: GateOptions<null> = {}): Gate<null> {
  const gate = createGate<null>({
    backend: httpBackend({ url: `${server.url}/decide`, ...backendOptions }),
    logger: recordingLogger(),
    timeoutMs: 1000,
    ...gateOptions,
  })
  cleanups.push(() => gate.close())
  return gate
}

function view(init: { method?: string; url?: string; headers?: IncomingHttpHeaders; remoteAddress?: string } = {}): RequestView<null> {
  return {
    native: null,
    method: init.method ?? 'GET',
    url: init.url ?? '/account',
    headers: init.headers ?? { host: 'site.example', accept: 'application/json' },
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

describe('httpBackend request', () => {
  it('POSTs the sanitized request description as JSON, with the configured headers', async () => {
    const server = await serve((_req, res) => json(res, 200, { verdict: 'allow' }))
    const gate = gateFor(server, { headers: { 'x-api-key': 'key-123' } })
    await gate.decide(
      view({
        url: '/products?page=2',
        headers: {
          host: 'Shop.Example',
          'user-agent': 'Mozilla/5.0',
          authorization: 'Bearer secret-token',
          cookie: 'session=secret-session; theme=dark',
        },
      }),
    )
    expect(server.received).toHaveLength(1)
    const [request] = server.received
    expect(request?.method).toBe('POST')
    expect(request?.url).toBe('/decide')
    expect(request?.headers['content-type']).toMatch(/^application\/json/)
    expect(request?.headers.accept).toBe('application/json')
    expect(request?.headers['x-api-key']).toBe('key-123')
    expect(JSON.parse(request?.body ?? '')).toEqual({
      ip: '203.0.113.9',
      method: 'GET',
      path: '/products',
      host: 'shop.example',
      headers: { host: 'Shop.Example', 'user-agent': 'Mozilla/5.0' },
      cookieNames: ['session', 'theme'],
      checkpoint: null,
    })
    expect(request?.body).not.toContain('secret')
  })

  it('sends the headers named in forwardHeaders besides the client headers, and no other', async () => {
    const server = await serve((_req, res) => json(res, 200, { verdict: 'allow' }))
    const gate = gateFor(server, { forwardHeaders: ['X-Device-Id'] })
    await gate.decide(
      view({ headers: { 'user-agent': 'Mozilla/5.0', 'x-device-id': 'dev-1', 'x-forwarded-access-token': 'secret-token' } }),
    )
    const body = JSON.parse(server.received[0]?.body ?? '')
    expect(body.headers).toEqual({ 'user-agent': 'Mozilla/5.0', 'x-device-id': 'dev-1' })
    expect(server.received[0]?.body).not.toContain('secret')
  })

  it('includes the checkpoint for checkpoint routes', async () => {
    const server = await serve((_req, res) => json(res, 200, { verdict: 'allow' }))
    const gate = gateFor(server)
    const login = gate.checkpoint({ event: 'login', status: 'failed', email: 'user@example.com' })
    await gate.decide(view({ method: 'POST', url: '/login' }), login)
    expect(JSON.parse(server.received[0]?.body ?? '').checkpoint).toEqual({ event: 'login', status: 'failed', email: 'user@example.com' })
  })

  it('uses a custom body and verdict mapping when given', async () => {
    const server = await serve((_req, res) => json(res, 200, { result: 'BLOCK' }))
    const gate = gateFor(server, {
      body: (input) => ({ address: input.ip }),
      verdict: (reply) => ({ verdict: (reply as { result: string }).result === 'BLOCK' ? 'deny' : 'allow' }),
    })
    const { decision } = await gate.decide(view())
    expect(JSON.parse(server.received[0]?.body ?? '')).toEqual({ address: '203.0.113.9' })
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })

  it('refuses a URL that is not absolute http(s)', () => {
    for (const url of ['/decide', 'ftp://decide.example/', 'not a url']) {
      let caught: unknown
      try {
        httpBackend({ url })
      } catch (error) {
        caught = error
      }
      expect(caught, url).toBeInstanceOf(SallyportError)
      expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
      expect((caught as SallyportError).option).toBe('url')
    }
  })
})

describe('httpBackend verdicts', () => {
  it.each(['allow', 'challenge', 'deny', 'review'] as const)('carries a %s reply into the decision', async (verdict) => {
    const server = await serve((_req, res) =>
      json(res, 200, { verdict, reason: `rule-${verdict}`, requestId: 'req-1', complete: false, signals: { score: 42 } }),
    )
    const { decision } = await gateFor(server).decide(view())
    expect(decision).toMatchObject({
      verdict,
      wouldBe: verdict,
      source: 'backend',
      backend: 'http',
      reason: `rule-${verdict}`,
      requestId: 'req-1',
      complete: false,
      signals: { score: 42 },
    })
  })

  it('names the backend as configured', async () => {
    const server = await serve((_req, res) => json(res, 200, { verdict: 'allow' }))
    expect((await gateFor(server, { name: 'risk-service' }).decide(view())).decision.backend).toBe('risk-service')
  })

  it("forwards the service's Set-Cookie only for cookies it declared", async () => {
    const server = await serve((_req, res) =>
      json(res, 200, { verdict: 'allow' }, { 'set-cookie': ['vid=abc; Path=/; HttpOnly', 'session=evil; Path=/'] }),
    )
    const { decision } = await gateFor(server, { cookies: ['vid'] }).decide(view())
    expect(decision.setCookies).toEqual(['vid=abc; Path=/; HttpOnly'])
  })
})

describe('httpBackend failures', () => {
  it('retries a 5xx once, then falls back with reason "server"', async () => {
    const server = await serve((_req, res) => json(res, 503, { error: 'unavailable' }))
    const { decision } = await gateFor(server).decide(view())
    expect(server.received).toHaveLength(2)
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'server' })
  })

  it('uses the retry when the second attempt succeeds', async () => {
    const server = await serve((_req, res, attempt) => (attempt === 1 ? json(res, 502, {}) : json(res, 200, { verdict: 'deny' })))
    const { decision } = await gateFor(server).decide(view())
    expect(server.received).toHaveLength(2)
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })

  it('does not retry when retries is 0', async () => {
    const server = await serve((_req, res) => json(res, 500, {}))
    const { decision } = await gateFor(server, {}, { retries: 0 }).decide(view())
    expect(server.received).toHaveLength(1)
    expect(decision.reason).toBe('server')
  })

  it('maps the fallback through onError', async () => {
    const server = await serve((_req, res) => json(res, 500, {}))
    const { decision } = await gateFor(server, {}, { onError: { server: 'deny' } }).decide(view())
    expect(decision).toMatchObject({ verdict: 'deny', wouldBe: 'deny', source: 'fallback', reason: 'server' })
  })

  it.each([400, 401, 403, 404, 429])('a %i is a "client" fallback, not retried, and warns', async (status) => {
    const server = await serve((_req, res) => json(res, status, { error: 'nope' }))
    const logger = recordingLogger()
    const { decision } = await gateFor(server, {}, { logger }).decide(view())
    expect(server.received).toHaveLength(1)
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'client' })
    expect(logger.warnings.map((warning) => warning.code)).toContain('SP_WARN_BACKEND_REFUSED')
  })

  it.each<[string, Handler]>([
    [
      'a body that is not JSON',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"verdict": "allow"')
      },
    ],
    [
      'an HTML error page with status 200',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/html' })
        res.end('<html>maintenance</html>')
      },
    ],
    ['an unknown verdict word', (_req, res) => json(res, 200, { verdict: 'block' })],
    ['an upper-case verdict', (_req, res) => json(res, 200, { verdict: 'ALLOW' })],
    ['a missing verdict', (_req, res) => json(res, 200, { reason: 'x' })],
    ['a JSON null', (_req, res) => json(res, 200, null)],
    ['a JSON array', (_req, res) => json(res, 200, [{ verdict: 'allow' }])],
    [
      'an empty 204',
      (_req, res) => {
        res.writeHead(204)
        res.end()
      },
    ],
    [
      'a redirect',
      (_req, res) => {
        res.writeHead(302, { location: 'http://127.0.0.1:1/' })
        res.end()
      },
    ],
  ])('%s is an "invalid" fallback, never a verdict', async (_label, handler) => {
    const server = await serve(handler)
    const { decision } = await gateFor(server, {}, { onError: { invalid: 'challenge' } }).decide(view())
    expect(decision).toMatchObject({ verdict: 'challenge', source: 'fallback', reason: 'invalid' })
  })

  it('a connection refused is a "network" fallback', async () => {
    const server = await serve(() => {})
    await server.close()
    const gate = createGate<null>({ backend: httpBackend({ url: `${server.url}/decide` }), logger: recordingLogger(), timeoutMs: 1000 })
    cleanups.push(() => gate.close())
    expect((await gate.decide(view())).decision).toMatchObject({ source: 'fallback', reason: 'network' })
  })
})

describe('httpBackend response size', () => {
  const padded = (bytes: number) => ({ verdict: 'deny', signals: { pad: 'x'.repeat(bytes) } })

  it('accepts a reply within maxResponseSize', async () => {
    const server = await serve((_req, res) => json(res, 200, padded(500)))
    const { decision } = await withoutUncaughtErrors(() => gateFor(server, { maxResponseSize: 1024 }).decide(view()))
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
  })

  it('refuses a reply whose Content-Length exceeds maxResponseSize, without crashing the process', async () => {
    const server = await serve((_req, res) => json(res, 200, padded(4096)))
    const { decision } = await withoutUncaughtErrors(() => gateFor(server, { maxResponseSize: 1024 }).decide(view()))
    expect(decision).toMatchObject({ source: 'fallback', reason: 'invalid' })
  })

  it('refuses a chunked reply that grows past maxResponseSize', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const text = JSON.stringify(padded(4096))
      res.write(text.slice(0, 1000))
      res.end(text.slice(1000))
    })
    const { decision } = await withoutUncaughtErrors(() => gateFor(server, { maxResponseSize: 1024 }).decide(view()))
    expect(decision).toMatchObject({ source: 'fallback', reason: 'invalid' })
  })

  it('stops reading an endless reply at the limit instead of waiting for the deadline', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' })
      const block = Buffer.alloc(16 * 1024, 0x20)
      const pump = () => {
        while (!res.destroyed && res.write(block)) {}
        if (!res.destroyed) res.once('drain', pump)
      }
      pump()
    })
    const started = performance.now()
    const { decision } = await withoutUncaughtErrors(() =>
      gateFor(server, { maxResponseSize: 64 * 1024 }, { timeoutMs: 3000 }).decide(view()),
    )
    expect(decision).toMatchObject({ source: 'fallback', reason: 'invalid' })
    expect(performance.now() - started).toBeLessThan(2000)
  })
})

describe('httpBackend deadline', () => {
  const budget = 200
  const slack = 50

  it.each<[string, Handler]>([
    ['never answers', () => {}],
    [
      'sends headers, then nothing',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.flushHeaders()
      },
    ],
    [
      'trickles its body',
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        const text = JSON.stringify({ verdict: 'allow', pad: 'x'.repeat(200) })
        let index = 0
        const timer = setInterval(() => {
          if (res.destroyed || index >= text.length) return clearInterval(timer)
          res.write(text[index++] ?? '')
        }, 20)
        res.on('close', () => clearInterval(timer))
      },
    ],
  ])('a server that %s ends in a "timeout" fallback within the budget', async (_label, handler) => {
    const server = await serve(handler)
    const started = performance.now()
    const { decision, action } = await gateFor(server, {}, { timeoutMs: budget, onError: { timeout: 'challenge' } }).decide(view())
    const elapsed = performance.now() - started
    expect(decision).toMatchObject({ verdict: 'challenge', source: 'fallback', reason: 'timeout' })
    expect(action.type).toBe('respond')
    expect(elapsed).toBeGreaterThanOrEqual(budget - 5)
    expect(elapsed).toBeLessThan(budget + slack)
  })

  it('against a backend that hangs, stops opening connections once the pool is full, and still closes', async () => {
    const sockets = new Set<unknown>()
    const server = await serve(() => {})
    const hanging = createServer((req) => {
      sockets.add(req.socket)
      req.resume()
    })
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve))
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          hanging.close(() => resolve())
          hanging.closeAllConnections()
        }),
    )
    const gate = gateFor(
      { ...server, url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}` },
      { connections: 64 },
      { timeoutMs: 50, breaker: false },
    )
    const started = performance.now()
    // Three waves of 100 decisions: each ends at its deadline, and no wave opens a connection
    // for every call (aborting calls that were sent would cost one each time).
    for (let wave = 0; wave < 3; wave++) {
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => gate.decide(view())))
      // Calls sent on a connection time out; the rest wait for one and say the pool was full.
      const reasons = new Set(outcomes.map(({ decision }) => decision.reason))
      expect(outcomes.every(({ decision }) => decision.source === 'fallback')).toBe(true)
      expect([...reasons].every((reason) => reason === 'timeout' || reason === 'pool_saturated')).toBe(true)
      expect(outcomes.filter(({ decision }) => decision.reason === 'pool_saturated')).toHaveLength(wave === 0 ? 36 : 100)
    }
    expect(performance.now() - started).toBeLessThan(3 * (50 + 150))
    expect(sockets.size).toBeLessThanOrEqual(64)
    const closing = performance.now()
    await gate.close()
    expect(performance.now() - closing).toBeLessThan(2000)
  })

  it("uses the backend's recommended timeoutMs when the gate sets none", async () => {
    const server = await serve(() => {})
    const gate = createGate<null>({ backend: httpBackend({ url: `${server.url}/decide`, timeoutMs: 120 }), logger: recordingLogger() })
    cleanups.push(() => gate.close())
    const started = performance.now()
    const { decision } = await gate.decide(view())
    expect(decision.reason).toBe('timeout')
    expect(performance.now() - started).toBeLessThan(120 + slack)
  })

  it('a 5xx retry never pushes the decision past the budget', async () => {
    const server = await serve((_req, res) => setTimeout(() => json(res, 503, {}), 150))
    const started = performance.now()
    const { decision } = await gateFor(server, {}, { timeoutMs: budget }).decide(view())
    expect(['timeout', 'server']).toContain(decision.reason)
    expect(performance.now() - started).toBeLessThan(budget + slack)
  })
})

describe('Transport', () => {
  it('sends the URL and headers as they are at each call, even when the caller reuses and changes them', async () => {
    const service = await serve((_req, res) => res.end('{}'))
    const transport = new Transport()
    cleanups.push(() => transport.close())
    const url = new URL(`${service.url}/v1/check?key=first`)
    const headers: Record<string, string> = { 'x-request-id': 'one' }
    const ctx = { deadline: performance.now() + 2000, retries: 0, signal: new AbortController().signal }
    await transport.request({ method: 'POST', url, headers, json: { n: 1 } }, ctx)
    url.searchParams.set('key', 'second')
    headers['x-request-id'] = 'two'
    await transport.request({ method: 'GET', url, headers }, ctx)
    expect(
      service.received.map((request) => [request.method, request.url, request.headers['x-request-id'], request.headers['content-type']]),
    ).toEqual([
      ['POST', '/v1/check?key=first', 'one', 'application/json'],
      ['GET', '/v1/check?key=second', 'two', undefined],
    ])
  })
})
