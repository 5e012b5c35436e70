import { Agent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const PATH = '/api/v1/check-request'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: string
  chunks: number
}

interface SendOptions {
  method?: string
  path?: string
  headers?: Record<string, string>
  body?: unknown
  agent?: Agent
}

/** One real HTTP exchange. `response` settles when headers arrive, `done` when the body ends (or fails). */
function exchange(url: string, options: SendOptions = {}) {
  const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
  let onResponse: (response: IncomingMessage) => void = () => {}
  const response = new Promise<IncomingMessage>((resolve) => {
    onResponse = resolve
  })
  const done = new Promise<Reply>((resolve, reject) => {
    const req = httpRequest(
      `${url}${options.path ?? PATH}`,
      {
        method: options.method ?? 'POST',
        headers: { 'content-type': 'application/json', ...options.headers },
        agent: options.agent ?? false,
      },
      (res) => {
        onResponse(res)
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
            chunks: chunks.length,
          }),
        )
        res.on('error', reject)
        res.on('aborted', () => reject(new Error('response aborted')))
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
  done.catch(() => {})
  return { response, done }
}

let fake: FakeTrustedAccounts

const authorized = () => ({ authorization: `Bearer ${fake.secretKey}` })
const check = (body: unknown = { ip: '203.0.113.9' }, headers: Record<string, string> = authorized()) =>
  exchange(fake.url, { body, headers }).done

/** Resolves to 'pending' if `promise` has not settled within `ms`. */
function stillPending(promise: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([
    promise.then(
      () => 'settled',
      () => 'failed',
    ),
    new Promise((resolve) => setTimeout(() => resolve('pending'), ms)),
  ])
}

beforeEach(async () => {
  fake = await fakeTrustedAccounts()
})

afterEach(async () => {
  await fake.close()
})

describe('fakeTrustedAccounts as the service', () => {
  it('listens on 127.0.0.1 and answers allow by default', async () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const reply = await check()
    expect(reply.status).toBe(200)
    expect(reply.headers['content-type']).toMatch(/^application\/json/)
    expect(JSON.parse(reply.body)).toEqual({ decision: 'allow' })
  })

  it('records each request and the check bodies', async () => {
    await check({ ip: '203.0.113.9', requestedPath: '/a', cookies: ['trusted_id'], trustedId: 'tid_1' })
    await check({ ip: '198.51.100.1' })
    expect(fake.requests).toHaveLength(2)
    expect(fake.requests[0]).toMatchObject({ method: 'POST', path: PATH })
    expect(fake.checks()).toEqual([
      { ip: '203.0.113.9', requestedPath: '/a', cookies: ['trusted_id'], trustedId: 'tid_1' },
      { ip: '198.51.100.1' },
    ])
  })

  it('checks the Bearer key', async () => {
    expect((await check(undefined, {})).status).toBe(401)
    expect((await check(undefined, { authorization: 'Bearer wrong' })).status).toBe(401)
    expect((await check(undefined, { authorization: fake.secretKey })).status).toBe(401)
    const custom = await fakeTrustedAccounts({ secretKey: 'ta_custom' })
    try {
      expect(custom.secretKey).toBe('ta_custom')
      const reply = await exchange(custom.url, { body: { ip: '203.0.113.9' }, headers: { authorization: 'Bearer ta_custom' } }).done
      expect(reply.status).toBe(200)
    } finally {
      await custom.close()
    }
  })

  it.each<[string, unknown, RegExp]>([
    ['a missing ip', { requestedPath: '/' }, /ip is required/],
    ['an empty ip', { ip: '' }, /ip is required/],
    ['a body that is not an object', ['203.0.113.9'], /JSON object/],
    ['an upper-case header name', { ip: '203.0.113.9', headers: { 'User-Agent': 'x' } }, /lowercase/],
    ['a cookie header', { ip: '203.0.113.9', headers: { cookie: 'a=1' } }, /sensitive header sent: cookie/],
    ['an authorization header', { ip: '203.0.113.9', headers: { authorization: 'Bearer x' } }, /sensitive header sent: authorization/],
    ['a header value that is not a string', { ip: '203.0.113.9', headers: { 'x-n': 1 } }, /must be a string/],
    ['cookie values instead of names', { ip: '203.0.113.9', cookies: ['session=secret'] }, /cookie names/],
    ['a trustedId that is not a string', { ip: '203.0.113.9', trustedId: 7 }, /trustedId/],
  ])('answers 400 to %s, as the service would', async (_label, body, message) => {
    const reply = await check(body)
    expect(reply.status).toBe(400)
    expect(JSON.parse(reply.body).message).toMatch(message)
  })

  it('answers 415 to a body that is not declared as JSON', async () => {
    const reply = await exchange(fake.url, { body: '{"ip":"203.0.113.9"}', headers: { ...authorized(), 'content-type': 'text/plain' } })
      .done
    expect(reply.status).toBe(415)
  })

  it('answers 404 to other paths and methods', async () => {
    expect((await exchange(fake.url, { path: '/api/v1/other', body: { ip: '1.2.3.4' }, headers: authorized() }).done).status).toBe(404)
    expect((await exchange(fake.url, { method: 'GET', headers: authorized() }).done).status).toBe(404)
  })

  it('lets a decide() function answer by request', async () => {
    const custom = await fakeTrustedAccounts({ decide: (body) => (body.ip === '6.6.6.6' ? { decision: 'block' } : {}) })
    try {
      const send = (ip: string) => exchange(custom.url, { body: { ip }, headers: { authorization: `Bearer ${custom.secretKey}` } }).done
      expect(JSON.parse((await send('6.6.6.6')).body)).toEqual({ decision: 'block' })
      expect(JSON.parse((await send('203.0.113.9')).body)).toEqual({ decision: 'allow' })
    } finally {
      await custom.close()
    }
  })
})

describe('scripted replies', () => {
  it('reply() answers every later request; replyOnce() only the next, in order', async () => {
    fake.reply({ decision: 'challenge' })
    fake.replyOnce({ decision: 'block' })
    fake.replyOnce({ decision: 'allow', extra: { requestId: 'r2' } })
    const decisions = []
    for (let index = 0; index < 4; index++) decisions.push(JSON.parse((await check()).body))
    expect(decisions).toEqual([
      { decision: 'block' },
      { decision: 'allow', requestId: 'r2' },
      { decision: 'challenge' },
      { decision: 'challenge' },
    ])
  })

  it('replyOnce() before any reply() falls back to the default afterwards', async () => {
    fake.replyOnce({ decision: 'block' })
    expect(JSON.parse((await check()).body).decision).toBe('block')
    expect(JSON.parse((await check()).body).decision).toBe('allow')
  })

  it('reset() forgets scripted replies and recorded requests', async () => {
    fake.reply({ decision: 'block' })
    fake.replyOnce({ decision: 'challenge' })
    await check()
    fake.reset()
    expect(fake.requests).toHaveLength(0)
    expect(JSON.parse((await check()).body).decision).toBe('allow')
  })

  it('sends each Set-Cookie as its own header', async () => {
    fake.reply({ decision: 'allow', setCookies: ['trusted_id=tid_1; Path=/', 'other=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT'] })
    const reply = await check()
    expect(reply.headers['set-cookie']).toEqual(['trusted_id=tid_1; Path=/', 'other=2; Expires=Wed, 21 Oct 2026 07:28:00 GMT'])
  })

  it('delays the reply by delayMs', async () => {
    fake.reply({ decision: 'allow', delayMs: 150 })
    const started = performance.now()
    const reply = await check()
    expect(reply.status).toBe(200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(145)
  })
})

describe('faults', () => {
  it('hang: accepts the request and never answers', async () => {
    fake.reply({ fault: 'hang' })
    const { response, done } = exchange(fake.url, { body: { ip: '203.0.113.9' }, headers: authorized() })
    expect(await stillPending(response, 200)).toBe('pending')
    expect(fake.requests).toHaveLength(1)
    await fake.close()
    await expect(done).rejects.toThrow()
  })

  it('hang-after-headers: sends 200 and JSON headers, then no body', async () => {
    fake.reply({ fault: 'hang-after-headers' })
    const { response, done } = exchange(fake.url, { body: { ip: '203.0.113.9' }, headers: authorized() })
    const res = await response
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    expect(await stillPending(done, 200)).toBe('pending')
    await fake.close()
    await expect(done).rejects.toThrow()
  })

  it('trickle: sends a valid body a byte at a time', async () => {
    fake.reply({ decision: 'block', fault: 'trickle', trickleMs: 10 })
    const started = performance.now()
    const reply = await check()
    const body = JSON.stringify({ decision: 'block' })
    expect(reply.status).toBe(200)
    expect(JSON.parse(reply.body)).toEqual({ decision: 'block' })
    expect(reply.chunks).toBeGreaterThan(1)
    expect(performance.now() - started).toBeGreaterThanOrEqual((body.length - 1) * 10 * 0.8)
  })

  it('bad-json: 200 with a body that is not JSON', async () => {
    fake.reply({ fault: 'bad-json' })
    const reply = await check()
    expect(reply.status).toBe(200)
    expect(() => JSON.parse(reply.body)).toThrow()
  })

  it('huge-body: 200 with at least 10 MB', async () => {
    fake.reply({ fault: 'huge-body' })
    const reply = await check()
    expect(reply.status).toBe(200)
    expect(Buffer.byteLength(reply.body)).toBeGreaterThanOrEqual(10 * 1024 * 1024)
  })

  it('reset: drops the connection without a reply', async () => {
    fake.reply({ fault: 'reset' })
    await expect(check()).rejects.toThrow(/socket hang up|ECONNRESET/)
    expect(fake.requests).toHaveLength(1)
  })

  it('{ status }: answers that status with a default JSON body', async () => {
    fake.reply({ fault: { status: 503 } })
    const reply = await check()
    expect(reply.status).toBe(503)
    expect(JSON.parse(reply.body)).toEqual({ error: 'status_503' })
  })

  it('{ status, body }: answers that status and body', async () => {
    fake.reply({ fault: { status: 429, body: 'slow down' } })
    const reply = await check()
    expect(reply.status).toBe(429)
    expect(reply.body).toBe('slow down')
  })

  it('a fault given with replyOnce hits one request only', async () => {
    fake.replyOnce({ fault: { status: 500 } })
    expect((await check()).status).toBe(500)
    expect((await check()).status).toBe(200)
  })
})

describe('close()', () => {
  it('ends hung, half-answered, delayed and idle keep-alive connections promptly', async () => {
    const keepAlive = new Agent({ keepAlive: true })
    try {
      const idle = await exchange(fake.url, { body: { ip: '203.0.113.9' }, headers: authorized(), agent: keepAlive }).done
      expect(idle.status).toBe(200)

      fake.replyOnce({ fault: 'hang' })
      fake.replyOnce({ fault: 'hang-after-headers' })
      fake.replyOnce({ fault: 'trickle', trickleMs: 1000 })
      fake.replyOnce({ delayMs: 60_000 })
      const pending = [0, 1, 2, 3].map(() => exchange(fake.url, { body: { ip: '203.0.113.9' }, headers: authorized() }).done)
      await expect.poll(() => fake.requests.length).toBe(5)

      const started = performance.now()
      await fake.close()
      expect(performance.now() - started).toBeLessThan(1000)
      const outcomes = await Promise.allSettled(pending)
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected'])
    } finally {
      keepAlive.destroy()
    }
  })

  it('stops accepting connections', async () => {
    const { url } = fake
    await fake.close()
    await expect(exchange(url, { body: { ip: '203.0.113.9' }, headers: authorized() }).done).rejects.toThrow(/ECONNREFUSED/)
  })
})
