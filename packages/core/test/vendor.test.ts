import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import {
  type BackendVerdict,
  boundedText,
  type DecideContext,
  type DecisionBackend,
  type DecisionInput,
  type HttpVendorCall,
  type HttpVendorSpec,
  httpVendor,
  noClientIp,
  SallyportError,
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
  sockets: Set<Socket>
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
})

/** A real service on 127.0.0.1, answering each request with `handler`. */
async function serve(handler: Handler): Promise<TestServer> {
  const received: Received[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.on('error', () => {})
      handler(req, res)
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  )
  return { url: `http://127.0.0.1:${port}`, received, sockets }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  res.end(text)
}

function input(init: Partial<DecisionInput> = {}): DecisionInput {
  return {
    ip: '203.0.113.9',
    method: 'GET',
    path: '/account',
    host: 'site.example',
    headers: { 'user-agent': 'Mozilla/5.0' },
    cookieNames: [],
    cookie: () => undefined,
    checkpoint: null,
    ...init,
  }
}

function ctx(ms = 2000, retries = 0): DecideContext {
  return { signal: AbortSignal.timeout(ms), deadline: performance.now() + ms, retries }
}

/** The spec of a backend for `server` that POSTs `{ ip }` and reads `{ decision }`. */
function acme(server: TestServer): HttpVendorSpec {
  return {
    name: 'acme',
    label: 'Acme',
    endpoint: new URL(`${server.url}/v1/check`),
    request: (given) => ({ headers: { 'x-api-key': 'key-1' }, json: { ip: given.ip } }),
    verdict: (body) => {
      const decision = (body as { decision?: unknown }).decision
      if (decision !== 'allow' && decision !== 'deny') throw new TypeError('no decision')
      return { verdict: decision }
    },
  }
}

function closing(backend: DecisionBackend): DecisionBackend {
  cleanups.push(async () => backend.close?.())
  return backend
}

function vendor(server: TestServer, spec: Partial<HttpVendorSpec> = {}): DecisionBackend {
  return closing(httpVendor({ ...acme(server), ...spec }))
}

async function failure(promise: unknown): Promise<SallyportError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(SallyportError)
    return error as SallyportError
  }
  throw new Error('expected the decision to fail')
}

describe('httpVendor: the call', () => {
  it('POSTs the JSON the spec builds to the endpoint, with its headers, and maps the reply', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'deny' }))
    const verdict = await vendor(server).decide(input(), ctx())
    expect(verdict).toEqual({ verdict: 'deny' })
    expect(server.received).toHaveLength(1)
    const [request] = server.received
    expect(request?.method).toBe('POST')
    expect(request?.url).toBe('/v1/check')
    expect(request?.headers['x-api-key']).toBe('key-1')
    expect(request?.headers['content-type']).toMatch(/^application\/json/)
    expect(request?.headers.accept).toBe('application/json')
    expect(JSON.parse(request?.body ?? '')).toEqual({ ip: '203.0.113.9' })
  })

  it('sends the method and URL the call names, and hands the call with its own fields back to verdict', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow', id: 'r-7' }))
    interface AcmeCall extends HttpVendorCall {
      requestId: string
    }
    const seen: AcmeCall[] = []
    const backend = closing(
      httpVendor<AcmeCall>({
        ...acme(server),
        request: (given) => ({ method: 'GET', url: new URL(`${server.url}/v2/ip/${given.ip}?fields=all`), requestId: 'r-7' }),
        verdict: (body, reply, given, call) => {
          seen.push(call)
          expect(given.ip).toBe('203.0.113.9')
          expect(reply.status).toBe(200)
          // The id a vendor generated for the call comes back, typed, to check the reply against.
          const id: string = call.requestId
          return { verdict: 'allow', requestId: (body as { id: string }).id === id ? id : null }
        },
      }),
    )
    expect(await backend.decide(input(), ctx())).toEqual({ verdict: 'allow', requestId: 'r-7' })
    expect(server.received.map((request) => [request.method, request.url, request.body])).toEqual([
      ['GET', '/v2/ip/203.0.113.9?fields=all', ''],
    ])
    expect(server.received[0]?.headers['content-type']).toBeUndefined()
    expect(seen.map((call) => call.requestId)).toEqual(['r-7'])
  })

  it('decides without a call when request returns a verdict', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'deny' }))
    const backend = vendor(server, {
      request: (given) => (given.checkpoint === null ? { verdict: 'allow', reason: 'no_checkpoint' } : { json: {} }),
    })
    expect(await backend.decide(input(), ctx())).toEqual({ verdict: 'allow', reason: 'no_checkpoint' })
    expect(server.received).toHaveLength(0)
  })

  it('sends nothing when request throws, and passes its error on', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow' }))
    const backend = vendor(server, {
      request: (given) => {
        if (given.ip === null) throw noClientIp('Acme')
        return { json: { ip: given.ip } }
      },
    })
    const error = await failure(backend.decide(input({ ip: null }), ctx()))
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', reason: 'no_client_ip' })
    expect(error.message).toContain('Acme needs the client IP')
    expect(server.received).toHaveLength(0)
  })

  it('shows the endpoint origin for logs, never its path or credentials, and copies the backend fields', async () => {
    const pages = { challenge: 'https://pages.acme.example/challenge' }
    const backend = closing(
      httpVendor({
        name: 'acme',
        label: 'Acme',
        endpoint: new URL('https://user:secret@api.acme.example:8443/v1/check?token=abc'),
        timeoutMs: 300,
        cookies: ['acme_id'],
        headers: ['x-device-id'],
        pages,
        cacheable: false,
        warnings: [],
        request: () => ({}),
        verdict: () => ({ verdict: 'allow' }),
      }),
    )
    expect(backend).toMatchObject({
      name: 'acme',
      origin: 'https://api.acme.example:8443',
      timeoutMs: 300,
      cookies: ['acme_id'],
      headers: ['x-device-id'],
      pages,
      cacheable: false,
      warnings: [],
    })
    expect(backend).not.toHaveProperty('routes')
    expect(backend).not.toHaveProperty('inProcess')
  })
})

describe('httpVendor: statuses', () => {
  it.each([200, 201, 204, 299])('accepts a %i by default', async (status) => {
    const server = await serve((_req, res) => (status === 204 ? res.writeHead(204).end() : json(res, status, { decision: 'allow' })))
    const result = vendor(server).decide(input(), ctx())
    // A 204 carries no JSON: accepted, then unreadable.
    if (status === 204) expect(await failure(result)).toMatchObject({ code: 'SP_BACKEND_INVALID', status: 204 })
    else expect(await result).toEqual({ verdict: 'allow' })
  })

  it.each<[number, string, string]>([
    [302, 'SP_BACKEND_INVALID', 'Acme answered with unexpected HTTP 302.'],
    [401, 'SP_BACKEND_CLIENT', 'Acme refused the request with HTTP 401.'],
    [429, 'SP_BACKEND_CLIENT', 'Acme refused the request with HTTP 429.'],
    [503, 'SP_BACKEND_SERVER', 'Acme answered HTTP 503.'],
  ])('refuses a %i with statusError by default', async (status, code, message) => {
    const server = await serve((_req, res) => json(res, status, { decision: 'allow' }, { 'retry-after': '30' }))
    const error = await failure(vendor(server).decide(input(), ctx()))
    expect(error).toMatchObject({ code, status, message, retryAfter: 30 })
  })

  it('retries a 5xx as ctx.retries allows', async () => {
    let calls = 0
    const server = await serve((_req, res) => (++calls === 1 ? json(res, 502, {}) : json(res, 200, { decision: 'deny' })))
    expect(await vendor(server).decide(input(), ctx(2000, 1))).toEqual({ verdict: 'deny' })
    expect(server.received).toHaveLength(2)
  })

  it('accepts only the statuses a custom accepts names', async () => {
    const statuses = [201, 200, 202]
    const server = await serve((_req, res) => json(res, statuses.shift() ?? 500, { decision: 'allow' }))
    const backend = vendor(server, { accepts: (status) => status === 200 || status === 201 })
    expect(await backend.decide(input(), ctx())).toEqual({ verdict: 'allow' })
    expect(await backend.decide(input(), ctx())).toEqual({ verdict: 'allow' })
    expect(await failure(backend.decide(input(), ctx()))).toMatchObject({
      code: 'SP_BACKEND_INVALID',
      status: 202,
      message: 'Acme answered with unexpected HTTP 202.',
    })
  })

  it("throws a custom refusal's error as it is, with the reply to read", async () => {
    const server = await serve((_req, res) => json(res, 403, { error: 'quota_exceeded' }))
    const refused = SallyportError.backend('client', 'Acme says the quota is used up.', { status: 403, vendorCode: 'quota_exceeded' })
    const seen: unknown[] = []
    const backend = vendor(server, {
      refusal: (reply) => {
        seen.push(JSON.parse(reply.body))
        return refused
      },
    })
    expect(await failure(backend.decide(input(), ctx()))).toBe(refused)
    expect(seen).toEqual([{ error: 'quota_exceeded' }])
  })
})

describe('httpVendor: replies', () => {
  it('a body that is not JSON is an "invalid" failure with its status', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<html>maintenance</html>')
    })
    expect(await failure(vendor(server).decide(input(), ctx()))).toMatchObject({ code: 'SP_BACKEND_INVALID', status: 200 })
  })

  it('a verdict that throws marks the reply "invalid", keeping the status and the cause', async () => {
    const server = await serve((_req, res) => json(res, 201, { decision: 'block' }))
    const error = await failure(vendor(server).decide(input(), ctx()))
    expect(error).toMatchObject({ code: 'SP_BACKEND_INVALID', status: 201, message: 'Acme replied without a valid verdict.' })
    expect(error.cause).toBeInstanceOf(TypeError)
  })

  it('names what a valid reply carries as the spec says', async () => {
    const server = await serve((_req, res) => json(res, 200, {}))
    const error = await failure(vendor(server, { expected: 'decision' }).decide(input(), ctx()))
    expect(error.message).toBe('Acme replied without a valid decision.')
  })

  it('passes a SallyportError that verdict throws on as it is', async () => {
    const server = await serve((_req, res) => json(res, 200, { success: false }))
    const classified = SallyportError.backend('server', 'Acme reported an error instead of a result.', {
      status: 200,
      vendorCode: 'unsuccessful',
    })
    const backend = vendor(server, {
      verdict: () => {
        throw classified
      },
    })
    expect(await failure(backend.decide(input(), ctx()))).toBe(classified)
  })

  it("leaves the reply's Set-Cookie out by default", async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow' }, { 'set-cookie': 'lb=node-3; Path=/' }))
    expect(await vendor(server).decide(input(), ctx())).toEqual({ verdict: 'allow' })
  })

  it("appends the reply's Set-Cookie values to the verdict's with forwardSetCookie", async () => {
    const server = await serve((_req, res) =>
      json(res, 200, { decision: 'allow' }, { 'set-cookie': ['acme_id=v1; Path=/; HttpOnly', 'acme_seen=1; Path=/'] }),
    )
    const own = vendor(server, {
      forwardSetCookie: true,
      verdict: (): BackendVerdict => ({ verdict: 'allow', setCookies: ['acme_own=1; Path=/'] }),
    })
    expect(await own.decide(input(), ctx())).toEqual({
      verdict: 'allow',
      setCookies: ['acme_own=1; Path=/', 'acme_id=v1; Path=/; HttpOnly', 'acme_seen=1; Path=/'],
    })
    const plain = vendor(server, { forwardSetCookie: true })
    expect(await plain.decide(input(), ctx())).toEqual({
      verdict: 'allow',
      setCookies: ['acme_id=v1; Path=/; HttpOnly', 'acme_seen=1; Path=/'],
    })
  })

  it('adds no setCookies with forwardSetCookie when the reply sets none', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow' }))
    expect(await vendor(server, { forwardSetCookie: true }).decide(input(), ctx())).toEqual({ verdict: 'allow' })
  })

  it('refuses a reply larger than the transport allows as "invalid"', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow', pad: 'x'.repeat(4096) }))
    const error = await failure(vendor(server, { transport: { maxResponseSize: 1024 } }).decide(input(), ctx()))
    expect(error).toMatchObject({ code: 'SP_BACKEND_INVALID' })
    expect(error.message).toContain('larger than 1024 bytes')
  })
})

describe('httpVendor: deadline and close', () => {
  it('ends in a "timeout" failure at the deadline of the context', async () => {
    const server = await serve(() => {})
    const started = performance.now()
    const error = await failure(vendor(server).decide(input(), ctx(150)))
    expect(error).toMatchObject({ code: 'SP_BACKEND_TIMEOUT' })
    expect(performance.now() - started).toBeGreaterThanOrEqual(140)
    expect(performance.now() - started).toBeLessThan(600)
  })

  it('close() ends the keep-alive connections', async () => {
    const server = await serve((_req, res) => json(res, 200, { decision: 'allow' }))
    const backend = vendor(server)
    await backend.decide(input(), ctx())
    expect(server.sockets.size).toBe(1)
    await backend.close?.()
    await expect.poll(() => server.sockets.size).toBe(0)
  })
})

describe('boundedText', () => {
  it('keeps printable text, trimmed', () => {
    expect(boundedText('  New York ', 64)).toBe('New York')
  })

  it('is undefined for anything but a string, and for text with nothing printable', () => {
    for (const value of [undefined, null, 42, true, {}, ['a'], '', '   ', '\u0000\n\u200b']) {
      expect(boundedText(value, 64), JSON.stringify(value)).toBeUndefined()
    }
  })

  it('turns each run of control and format characters into one space', () => {
    expect(boundedText('line one\r\n\tline two', 64)).toBe('line one line two')
    expect(boundedText('pay\u202etxt.exe\u0007', 64)).toBe('pay txt.exe')
    expect(boundedText('a\u0085b', 64)).toBe('a b')
  })

  it('cuts to max characters, never inside a surrogate pair', () => {
    expect(boundedText('abcdef', 3)).toBe('abc')
    expect(boundedText('ab \u{1F600}', 4)).toBe('ab')
    expect(boundedText('ab\u{1F600}cd', 4)).toBe('ab\u{1F600}')
  })

  it('with a pattern, takes the value whole or not at all', () => {
    const id = /^[\x21-\x7e]{1,256}$/
    expect(boundedText('req-123', 128, id)).toBe('req-123')
    expect(boundedText(' req-123', 128, id)).toBeUndefined()
    expect(boundedText('req\n123', 128, id)).toBeUndefined()
    expect(boundedText('r'.repeat(129), 128, id)).toBeUndefined()
    expect(boundedText(7, 128, id)).toBeUndefined()
  })

  it('with a global pattern, gives the same answer every time', () => {
    const id = /^[a-z]+$/g
    expect([boundedText('abc', 8, id), boundedText('abc', 8, id), boundedText('abc', 8, id)]).toEqual(['abc', 'abc', 'abc'])
  })
})
