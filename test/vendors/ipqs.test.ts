/**
 * IPQualityScore through real apps: a signup checkpoint and whole-site `app.use` on Express 5,
 * Koa 3, Express 4 and Koa 2, against the fake IPQualityScore server on loopback.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Decision, GateOptions } from '@sallyport/core'
import { guard as expressGuard, type GuardRequest } from '@sallyport/express'
import { type IpqsOptions, ipqs } from '@sallyport/ipqs'
import { type GuardContext, guard as koaGuard } from '@sallyport/koa'
import { type FakeIpqs, type Fault, fakeIpqs, IPQS_MESSAGES } from '@sallyport/testing'
import express4 from 'express-4'
import express5 from 'express-5'
import Koa2 from 'koa-2'
import Koa3 from 'koa-3'
import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const FRAMEWORKS = ['express-5', 'koa-3', 'express-4', 'koa-2'] as const
type Framework = (typeof FRAMEWORKS)[number]

const KEY = 'IpqsVendorKey0123456789abcdefABCD'
const VISITOR_IP = '198.51.100.23'
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15'
const LANGUAGE = 'fr-CH, fr;q=0.9, en;q=0.8'
const SHA = 'c'.repeat(64)
const CARD = '4111111111111111'
/** What a decision may take beyond its budget: timers fire late on a busy machine. */
const DECISION_SLACK_MS = 75
/** What the whole HTTP exchange may take beyond the budget: the app's own work and the loopback round trip too. */
const SLACK_MS = 300

interface Site {
  url: string
  decisions: Decision[]
  logs: Array<[string, string]>
  /** Times an app handler (signup or page) ran. */
  handled(): number
  close(): Promise<void>
}

type SignupBody = { username?: string; email?: string; transaction?: Record<string, unknown> }

/** What a signup route extracts: the username and email, plus whatever the test puts in `transaction`. */
function signupTransaction(body: SignupBody | undefined): Record<string, unknown> {
  return { username: body?.username, billing_email: body?.email, ...body?.transaction }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  return text.length === 0 ? undefined : JSON.parse(text)
}

/**
 * A small site: `POST /signup` is a signup checkpoint (and skips the site-wide gate, so it
 * makes one lookup); every other path goes through the site-wide gate.
 */
async function startSite(framework: Framework, backend: IpqsOptions, gate: GateOptions<unknown> = {}): Promise<Site> {
  const decisions: Decision[] = []
  const logs: Array<[string, string]> = []
  let handled = 0
  const record = (level: string) => (object: Record<string, unknown>) => logs.push([level, String(object.code)])
  const options = {
    backend: ipqs(backend),
    trustProxy: 'loopback' as const,
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    onDecision: (decision: Decision) => decisions.push(decision),
    ...gate,
  }

  let listener: Parameters<typeof createServer>[1]
  let closeGate: () => Promise<void>
  if (framework.startsWith('express')) {
    // Express 4 and 5 differ in types only where this site does not reach.
    const express = (framework === 'express-4' ? express4 : express5) as unknown as typeof express5
    const guard = expressGuard(options as GateOptions<GuardRequest>)
    const app = express()
    app.post(
      '/signup',
      express.json(),
      guard.checkpoint({ event: 'signup', transaction: (req) => signupTransaction(req.body as SignupBody) }),
      (req, res) => {
        handled++
        res.status(201).json({ created: true, verdict: req.sallyport?.verdict })
      },
    )
    app.use(guard)
    app.use((req, res) => {
      handled++
      res.json({ path: req.originalUrl, verdict: (req as GuardRequest).sallyport?.verdict })
    })
    app.use((error: { statusCode?: number; code?: string; message: string }, _req: unknown, res: express5.Response, _next: unknown) => {
      res.status(error.statusCode ?? 500).json({ error: error.code, message: error.message })
    })
    listener = app as unknown as Parameters<typeof createServer>[1]
    closeGate = () => guard.close()
  } else {
    const Koa = (framework === 'koa-2' ? Koa2 : Koa3) as unknown as typeof Koa3
    const guard = koaGuard(options as GateOptions<GuardContext>)
    const signup = guard.checkpoint({ event: 'signup', transaction: (ctx) => signupTransaction(ctx.request.body as SignupBody) })
    const app = new Koa()
    app.silent = true
    app.proxy = false
    app.use(async (ctx, next) => {
      if (ctx.method !== 'POST' || ctx.path !== '/signup') return next()
      ;(ctx.request as { body?: unknown }).body = await readJson(ctx.req)
      await signup(ctx as unknown as GuardContext, async () => {
        handled++
        ctx.status = 201
        ctx.body = { created: true, verdict: ctx.state.sallyport?.verdict }
      })
    })
    app.use(guard as unknown as Parameters<typeof app.use>[0])
    app.use((ctx) => {
      handled++
      ctx.body = { path: ctx.originalUrl, verdict: (ctx.state as GuardContext['state']).sallyport?.verdict }
    })
    listener = app.callback()
    closeGate = () => guard.close()
  }

  const server: Server = createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    decisions,
    logs,
    handled: () => handled,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await closeGate()
    },
  }
}

describe.each(FRAMEWORKS)('IPQualityScore on %s', (framework) => {
  let fake: FakeIpqs
  let site: Site | undefined

  beforeEach(async () => {
    fake = await fakeIpqs({ key: KEY })
  })
  afterEach(async () => {
    await site?.close()
    site = undefined
    await fake.close()
  })

  const start = async (options: Partial<IpqsOptions> = {}, gate: GateOptions<unknown> = {}) => {
    site = await startSite(framework, { key: KEY, baseUrl: fake.url, ...options }, gate)
    return site
  }
  const visit = (url: string, path = '/account') =>
    request(url)
      .get(path)
      .set('X-Forwarded-For', VISITOR_IP)
      .set('User-Agent', UA)
      .set('Accept-Language', LANGUAGE)
      .set('Accept', 'application/json')
  const signup = (url: string, body: SignupBody) =>
    request(url)
      .post('/signup')
      .set('X-Forwarded-For', VISITOR_IP)
      .set('User-Agent', UA)
      .set('Accept-Language', LANGUAGE)
      .set('Accept', 'application/json')
      .send(body)

  describe('the request IPQualityScore receives', () => {
    it('on a signup checkpoint: the visitor IP, user agent, language, strictness and the transaction, key in the header only', async () => {
      const { url } = await start({ strictness: 1, fast: true, allowPublicAccessPoints: true })
      const response = await signup(url, { username: 'ada', email: 'ada@example.com', transaction: { password_hash: SHA } }).expect(201)
      expect(response.body).toEqual({ created: true, verdict: 'allow' })
      expect(fake.checks()).toEqual([
        {
          username: 'ada',
          billing_email: 'ada@example.com',
          password_hash: SHA,
          strictness: 1,
          fast: true,
          allow_public_access_points: true,
          ip: VISITOR_IP,
          user_agent: UA,
          user_language: LANGUAGE,
        },
      ])
      const [call] = fake.requests
      expect(call?.path).toBe('/api/json/ip')
      expect(call?.headers['ipqs-key']).toBe(KEY)
      expect(call?.rawBody).not.toContain(KEY)
    })

    it('on plain app.use: the lookup parameters and no transaction', async () => {
      const { url } = await start()
      await visit(url).expect(200, { path: '/account', verdict: 'allow' })
      expect(fake.checks()).toEqual([{ strictness: 0, ip: VISITOR_IP, user_agent: UA, user_language: LANGUAGE }])
    })

    it('the IP is the visitor behind the trusted proxy, never a spoofed leftmost entry', async () => {
      const { url } = await start()
      await request(url).get('/').set('X-Forwarded-For', `6.6.6.6, ${VISITOR_IP}`).expect(200)
      expect(fake.checks()[0]?.ip).toBe(VISITOR_IP)
    })
  })

  describe('score bands and flags become responses', () => {
    it.each([
      [0, 200, 'allow', null],
      [74, 200, 'allow', null],
      [75, 403, 'challenge', 'fraud_score>=75'],
      [89, 403, 'challenge', 'fraud_score>=75'],
      [90, 403, 'deny', 'fraud_score>=90'],
    ] as const)('fraud_score %s → HTTP %s (%s)', async (fraudScore, status, verdict, reason) => {
      fake.reply({ fraudScore, fields: { request_id: 'Req42abc' } })
      const { url, decisions } = await start()
      const response = await visit(url).expect(status)
      expect(decisions.at(-1)).toMatchObject({ verdict, reason, source: 'backend', backend: 'ipqs', requestId: 'Req42abc' })
      expect(decisions.at(-1)?.signals).toMatchObject({ fraud_score: fraudScore })
      if (verdict === 'challenge') expect(response.body).toEqual({ error: 'challenge_required', reason })
      if (verdict === 'deny') expect(response.body).toEqual({ error: 'forbidden', requestId: 'Req42abc' })
    })

    it('custom thresholds move the bands', async () => {
      fake.reply({ fraudScore: 60 })
      const { url } = await start({ thresholds: { challenge: 40, deny: 60 } })
      const response = await signup(url, { username: 'bo' }).expect(403)
      expect(response.body).toEqual({ error: 'forbidden', requestId: expect.any(String) })
    })

    it.each([
      ['bot_status denies by default', { bot_status: true }, {}, 403, 'deny', 'bot_status'],
      ['tor alone changes nothing by default', { tor: true }, {}, 200, 'allow', null],
      ['tor mapped to challenge', { tor: true }, { onTor: 'challenge' }, 403, 'challenge', 'tor'],
      ['active_tor mapped to deny', { active_tor: true }, { onTor: 'deny' }, 403, 'deny', 'tor'],
      ['recent_abuse alone changes nothing by default', { recent_abuse: true }, {}, 200, 'allow', null],
      ['recent_abuse mapped to deny', { recent_abuse: true }, { onRecentAbuse: 'deny' }, 403, 'deny', 'recent_abuse'],
      ['bot_status with onBot: false', { bot_status: true }, { onBot: false }, 200, 'allow', null],
    ] as const)('%s', async (_label, fields, options, status, verdict, reason) => {
      fake.reply({ fraudScore: 10, fields })
      const { url, decisions } = await start(options)
      await visit(url).expect(status)
      expect(decisions.at(-1)).toMatchObject({ verdict, reason })
      expect(decisions.at(-1)?.signals).toMatchObject(fields)
    })
  })

  describe('success: false is a failure, never a verdict', () => {
    it('a wrong key falls back as `client`, and the warning names the cause, not the key', async () => {
      const warnings: string[] = []
      const { url, decisions } = await start(
        { key: 'WrongKey0000' },
        { logger: { warn: (_object, message) => warnings.push(String(message)), error() {} } },
      )
      await visit(url).expect(200)
      expect(decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'client' })
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain('API key is invalid or unauthorized')
      expect(warnings[0]).not.toContain('WrongKey0000')
    })

    it.each([
      [IPQS_MESSAGES.insufficientCredits, 'client'],
      [IPQS_MESSAGES.temporary, 'server'],
    ] as const)('"%s" falls back as `%s` through onError', async (failure, reason) => {
      fake.reply({ failure })
      const { url, decisions, logs } = await start({}, { onError: { [reason]: 'deny' } })
      const response = await signup(url, { username: 'cy' }).expect(403)
      expect(response.body).toEqual({ error: 'forbidden', requestId: null })
      expect(decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason })
      expect(logs.some(([, code]) => code === 'SP_WARN_BACKEND_REFUSED')).toBe(reason === 'client')
      expect(site?.handled()).toBe(0)
    })
  })

  describe('transport failures map to their class', () => {
    it.each([
      ['hang', 'timeout'],
      ['hang-after-headers', 'timeout'],
      ['trickle', 'timeout'],
      ['reset', 'network'],
      ['bad-json', 'invalid'],
      ['huge-body', 'invalid'],
      [{ status: 500 }, 'server'],
      [{ status: 503, body: '<html>maintenance</html>' }, 'server'],
      [{ status: 401 }, 'client'],
      [{ status: 429 }, 'client'],
    ] as Array<[Fault, string]>)('%o → %s', async (fault, failure) => {
      fake.reply({ fault })
      const { url, decisions } = await start({}, { timeoutMs: 200, onError: 'challenge' })
      const response = await visit(url).expect(403)
      expect(response.body).toEqual({ error: 'challenge_required', reason: failure })
      expect(decisions.at(-1)).toMatchObject({ verdict: 'challenge', source: 'fallback', reason: failure })
    })

    it('a service that is not there → network', async () => {
      await fake.close()
      const { url, decisions } = await start()
      await visit(url).expect(200)
      expect(decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'network' })
      fake = await fakeIpqs({ key: KEY })
    })

    it('a reply without fraud_score → invalid', async () => {
      fake.reply({ fields: { fraud_score: undefined } })
      const { url, decisions } = await start()
      await visit(url).expect(200)
      expect(decisions.at(-1)).toMatchObject({ source: 'fallback', reason: 'invalid' })
    })
  })

  describe("the app's own mistakes are a 400 and no lookup", () => {
    it.each([
      ['a raw card number', { credit_card_hash: CARD }, 'transaction.credit_card_hash'],
      ['a raw card number with dashes', { card_number: '4111-1111-1111-1111' }, 'transaction.card_number'],
      ['a raw password', { password: 'correct horse battery' }, 'transaction.password'],
      ['a password hash that is not SHA-256', { password_hash: 'abc' }, 'transaction.password_hash'],
    ])('%s', async (_label, transaction, field) => {
      const { url, decisions } = await start()
      const response = await signup(url, { username: 'dee', transaction }).expect(400)
      expect(response.text).toContain(field)
      for (const value of Object.values(transaction)) expect(response.text).not.toContain(value)
      expect(fake.requests).toHaveLength(0)
      expect(site?.handled()).toBe(0)
      expect(decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'invalid_checkpoint', backend: 'ipqs' })
    })
  })

  describe('the budget', () => {
    it('a hung lookup answers within the gate budget', async () => {
      fake.reply({ fault: 'hang' })
      const { url, decisions } = await start({}, { timeoutMs: 150 })
      const started = performance.now()
      await visit(url).expect(200)
      expect(performance.now() - started).toBeLessThanOrEqual(150 + SLACK_MS)
      expect(decisions.at(-1)?.latencyMs).toBeLessThanOrEqual(150 + DECISION_SLACK_MS)
      expect(decisions.at(-1)).toMatchObject({ reason: 'timeout', source: 'fallback' })
    })

    it("without a gate budget, the backend's recommended 500 ms applies", async () => {
      fake.reply({ delayMs: 2000 })
      const { url, decisions } = await start()
      await visit(url).expect(200)
      const latency = decisions.at(-1)?.latencyMs ?? 0
      expect(latency).toBeGreaterThanOrEqual(495)
      expect(latency).toBeLessThanOrEqual(500 + DECISION_SLACK_MS)
    })

    it('a slow answer inside the budget is used', async () => {
      fake.reply({ fraudScore: 95, delayMs: 80 })
      const { url, decisions } = await start({}, { timeoutMs: 400 })
      await visit(url).expect(403)
      expect(decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'backend' })
    })
  })
})
