/**
 * TraceNow through real apps: login and signup checkpoints on Express 4/5 and Koa 2/3, against
 * the fake TraceNow server, as a user would see them through HTTP.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import type { CheckpointSpec, Decision, GateOptions } from '@sallyport/core'
import { guard as expressGuard, type GuardRequest } from '@sallyport/express'
import { type GuardContext, guard as koaGuard } from '@sallyport/koa'
import { type FakeTraceNow, fakeTraceNow } from '@sallyport/testing'
import { type TraceNowOptions, tracenow } from '@sallyport/tracenow'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

type Framework = 'express-4' | 'express-5' | 'koa-2' | 'koa-3'
type Native = GuardRequest | GuardContext

const SECRET_KEY = 'tn_test_Zx81kQ2mPq'
const DEVICE_TOKEN = 'dt_eyJhbGciOiJIUzI1NiJ9.eyJ2IjoiMSJ9.c2ln'
/** How far past the budget a decision may end: timer and event-loop jitter on a busy machine, never the backend's latency. */
const SLACK_MS = 50

interface SiteOptions {
  gate?: GateOptions<Native>
  backend?: Partial<TraceNowOptions>
  /** Added to both checkpoints. */
  checkpoint?: Partial<CheckpointSpec<Native>>
}

interface Site {
  url: string
  decisions: Decision[]
  /** Every log line in full: level, the logged object (errors and causes included) and the message. */
  lines: string[]
  codes: string[]
  handled: () => number
  close(): Promise<void>
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  return text.length === 0 ? undefined : JSON.parse(text)
}

function startSite(framework: Framework, fake: FakeTraceNow, options: SiteOptions): Promise<Site> {
  const isKoa = framework.startsWith('koa')
  const bodyOf = (native: Native) =>
    (isKoa ? (native as GuardContext).request.body : (native as GuardRequest).body) as Record<string, unknown> | undefined
  const headerOf = (native: Native, name: string) => (isKoa ? (native as GuardContext).req : (native as GuardRequest)).headers[name]
  // The app names where each signal comes from: the parsed body at login, a header for the signup device token.
  const checkpoints: Record<string, CheckpointSpec<Native>> = {
    '/login': { event: 'login', email: (req) => bodyOf(req)?.email, deviceToken: (req) => bodyOf(req)?.deviceToken, ...options.checkpoint },
    '/signup': {
      event: 'signup',
      email: (req) => bodyOf(req)?.email,
      phone: (req) => bodyOf(req)?.phone,
      deviceToken: (req) => headerOf(req, 'x-device-token'),
      ...options.checkpoint,
    },
  }
  return build(framework, isKoa, fake, options, checkpoints)
}

async function build(
  framework: Framework,
  isKoa: boolean,
  fake: FakeTraceNow,
  options: SiteOptions,
  checkpoints: Record<string, CheckpointSpec<Native>>,
): Promise<Site> {
  const decisions: Decision[] = []
  const codes: string[] = []
  let handled = 0
  const entries: Array<[string, Record<string, unknown>, string | undefined]> = []
  // Logging happens inside the decision's time; the lines are rendered only when a test reads them.
  const record = (level: string) => (object: Record<string, unknown>, message?: string) => {
    codes.push(String(object.code))
    entries.push([level, object, message])
  }
  const gateOptions: GateOptions<Native> = {
    backend: tracenow({ secretKey: SECRET_KEY, baseUrl: fake.url, ...options.backend }),
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    onDecision: (decision) => decisions.push(decision),
    ...options.gate,
  }

  let listener: RequestListener
  let closeGate: () => Promise<void>
  if (!isKoa) {
    const { default: express } = (await import(framework)) as { default: typeof import('express') }
    const app = express()
    const gate = expressGuard(gateOptions as GateOptions<GuardRequest>)
    app.use(gate)
    for (const [path, spec] of Object.entries(checkpoints)) {
      app.post(path, express.json(), gate.checkpoint(spec as CheckpointSpec<GuardRequest>), (req, res) => {
        handled++
        res.json({ route: path, decision: req.sallyport })
      })
    }
    app.get('/', (req, res) => {
      handled++
      res.json({ route: '/', decision: req.sallyport })
    })
    listener = app
    closeGate = () => gate.close()
  } else {
    const { default: Koa } = (await import(framework)) as { default: typeof import('koa') }
    const app = new Koa()
    const gate = koaGuard(gateOptions as GateOptions<GuardContext>)
    const routes = new Map(Object.entries(checkpoints).map(([path, spec]) => [path, gate.checkpoint(spec as CheckpointSpec<GuardContext>)]))
    app.use(gate as unknown as Parameters<typeof app.use>[0])
    app.use(async (ctx, next) => {
      const checkpoint = routes.get(ctx.path)
      if (ctx.method !== 'POST' || checkpoint === undefined) return next()
      ;(ctx.request as { body?: unknown }).body = await readJson(ctx.req)
      await checkpoint(ctx as unknown as GuardContext, async () => {
        handled++
        ctx.body = { route: ctx.path, decision: ctx.state.sallyport }
      })
    })
    app.use((ctx) => {
      handled++
      ctx.body = { route: ctx.path, decision: ctx.state.sallyport }
    })
    listener = app.callback()
    closeGate = () => gate.close()
  }

  const server: Server = createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    decisions,
    get lines() {
      return entries.map(([level, object, message]) => `${level} ${inspect(object, { depth: 10 })} ${message ?? ''}`)
    },
    codes,
    handled: () => handled,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await closeGate()
    },
  }
}

const frameworks: Framework[] = ['express-5', 'koa-3', 'express-4', 'koa-2']

describe.each(frameworks)('TraceNow checkpoints on %s', (framework) => {
  let fake: FakeTraceNow
  let site: Site | undefined

  beforeAll(async () => {
    fake = await fakeTraceNow({ secretKey: SECRET_KEY })
    // The first timeout in a process pays for loading and compiling the abort path; the timing
    // tests bound the budget, not that cold start, so one timeout runs before them.
    const warm = await startSite(framework, fake, { gate: { timeoutMs: 50 } })
    fake.replyOnce({ fault: 'hang' })
    await request(warm.url).post('/login').send({ email: 'warm@example.com' })
    await warm.close()
    fake.reset()
  })
  afterAll(() => fake.close())
  afterEach(async () => {
    await site?.close()
    site = undefined
    fake.reset()
  })

  const open = async (options: SiteOptions = {}) => {
    site = await startSite(framework, fake, options)
    return site
  }
  const login = (s: Site, body: Record<string, unknown>) => request(s.url).post('/login').set('accept', 'application/json').send(body)

  describe('the request TraceNow receives', () => {
    it('at login: email and device token from the parsed body, with the client IP', async () => {
      const s = await open()
      await login(s, { email: 'ada@example.com', password: 'hunter2', deviceToken: DEVICE_TOKEN }).expect(200)
      expect(fake.checks()).toEqual([
        { event: 'login', status: 'attempted', ip: '127.0.0.1', email: 'ada@example.com', device_token: DEVICE_TOKEN },
      ])
      expect(fake.requests[0]?.rawBody).not.toContain('hunter2')
    })

    it('at signup: email and phone from the body, the device token from a header the app names', async () => {
      const s = await open()
      await request(s.url)
        .post('/signup')
        .set('x-device-token', DEVICE_TOKEN)
        .send({ email: 'grace@example.com', phone: '+14155552671' })
        .expect(200)
      expect(fake.checks()).toEqual([
        {
          event: 'signup',
          status: 'attempted',
          ip: '127.0.0.1',
          email: 'grace@example.com',
          phone: '+14155552671',
          device_token: DEVICE_TOKEN,
        },
      ])
    })

    it('sends the real client IP from behind a trusted proxy', async () => {
      const s = await open({ gate: { trustProxy: 'loopback' } })
      await login(s, { email: 'ada@example.com' }).set('x-forwarded-for', '6.6.6.6, 203.0.113.7').expect(200)
      expect(fake.checks()[0]?.ip).toBe('203.0.113.7')
    })

    it('a page outside any checkpoint makes no call', async () => {
      const s = await open()
      const response = await request(s.url).get('/').expect(200)
      expect(fake.requests).toHaveLength(0)
      expect(response.body.decision).toMatchObject({ verdict: 'allow', reason: 'no_checkpoint', backend: 'tracenow' })
    })

    it('a checkpoint with no signal at all makes no call and says why', async () => {
      const s = await open({ gate: { trustProxy: true } })
      const response = await login(s, { password: 'x' }).set('x-forwarded-for', 'unknown').expect(200)
      expect(fake.requests).toHaveLength(0)
      expect(response.body.decision).toMatchObject({ verdict: 'allow', reason: 'no_signals', complete: false })
      expect(s.handled()).toBe(1)
    })
  })

  describe('verdicts', () => {
    it('allow: the route runs and sees the request id and signals', async () => {
      const s = await open()
      fake.reply({ verdict: 'allow', requestId: 'tr_01J9ZQK2XVBP3N7M4FGHD8R5TW', privacyMode: false })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({
        verdict: 'allow',
        source: 'backend',
        requestId: 'tr_01J9ZQK2XVBP3N7M4FGHD8R5TW',
        signals: { privacy_mode: false, ip: { is_tor: false }, email: { is_disposable: false }, phone: null },
      })
      expect(s.handled()).toBe(1)
    })

    it('challenge: a POST gets 403 challenge_required with the policy, and the route does not run', async () => {
      const s = await open()
      fake.reply({ verdict: 'challenge', policyTriggered: 'Tor exit node' })
      const response = await login(s, { email: 'ada@example.com' }).expect(403)
      expect(response.body).toEqual({ error: 'challenge_required', reason: 'Tor exit node' })
      expect(s.handled()).toBe(0)
    })

    it('deny: 403 with the request id, and the route does not run', async () => {
      const s = await open()
      fake.reply({ verdict: 'deny', policyTriggered: 'Disposable email', requestId: 'tr_deny1' })
      const response = await request(s.url)
        .post('/signup')
        .set('accept', 'application/json')
        .send({ email: 'x@mailinator.com' })
        .expect(403)
      expect(response.body).toEqual({ error: 'forbidden', requestId: 'tr_deny1' })
      expect(s.handled()).toBe(0)
      expect(s.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'Disposable email' })
    })

    it("TraceNow's own Set-Cookie never reaches the visitor", async () => {
      const s = await open()
      fake.reply({ verdict: 'allow', setCookies: ['AWSALB=lb1; Path=/'] })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.headers['set-cookie']).toBeUndefined()
    })
  })

  describe('failures', () => {
    it('timeout: a hung TraceNow fails open at the budget', async () => {
      const s = await open({ gate: { timeoutMs: 200 } })
      fake.reply({ fault: 'hang' })
      const started = performance.now()
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      const elapsed = performance.now() - started
      expect(response.body.decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout' })
      expect(response.body.decision.latencyMs).toBeLessThanOrEqual(200 + SLACK_MS)
      expect(elapsed).toBeLessThanOrEqual(200 + 100)
    })

    it('budget: a slow answer is cut at the budget, not waited for', async () => {
      const s = await open({ gate: { timeoutMs: 150 } })
      fake.reply({ verdict: 'deny', delayMs: 1000 })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ source: 'fallback', reason: 'timeout' })
      expect(response.body.decision.latencyMs).toBeLessThanOrEqual(150 + SLACK_MS)
    })

    it('network: a reset connection fails open with reason network', async () => {
      const s = await open()
      fake.reply({ fault: 'reset' })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ source: 'fallback', reason: 'network' })
    })

    it('server: a 503 is retried once, then fails open with reason server', async () => {
      const s = await open()
      fake.reply({ fault: { status: 503, body: '{"detail":"Service Unavailable"}' } })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ source: 'fallback', reason: 'server' })
      expect(fake.requests).toHaveLength(2)
    })

    it('server: a checkpoint that fails closed answers 403 when TraceNow is down', async () => {
      const s = await open({ checkpoint: { onError: 'deny' } })
      fake.reply({ fault: { status: 502 } })
      await login(s, { email: 'ada@example.com' }).expect(403)
      expect(s.handled()).toBe(0)
    })

    it('client: a refused key warns SP_WARN_BACKEND_REFUSED once, naming the key as the cause and never its value', async () => {
      const wrongKey = 'tn_live_WRONGkey777'
      const s = await open({ backend: { secretKey: wrongKey } })
      await login(s, { email: 'ada@example.com' }).expect(200)
      const response = await login(s, { email: 'grace@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'client' })
      expect(s.codes.filter((code) => code === 'SP_WARN_BACKEND_REFUSED')).toHaveLength(1)
      expect(s.lines.find((line) => line.includes('SP_WARN_BACKEND_REFUSED'))).toMatch(/secret key \(HTTP 401/)
      expect(s.lines.length).toBeGreaterThan(1)
      for (const line of s.lines) {
        expect(line).not.toContain(wrongKey)
        expect(line).not.toContain(SECRET_KEY)
      }
      expect(fake.requests).toHaveLength(2)
    })

    it('client: a used-up quota warns once, saying so', async () => {
      const s = await open()
      fake.reply({ refuse: 'quota' })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ source: 'fallback', reason: 'client' })
      expect(s.codes.filter((code) => code === 'SP_WARN_BACKEND_REFUSED')).toHaveLength(1)
      expect(s.lines.find((line) => line.includes('SP_WARN_BACKEND_REFUSED'))).toMatch(/quota for this account is used up/)
      for (const line of s.lines) expect(line).not.toContain(SECRET_KEY)
    })

    it('invalid: a verdict word TraceNow never uses fails open with reason invalid', async () => {
      const s = await open()
      fake.reply({ extra: { verdict: 'block' } })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ source: 'fallback', reason: 'invalid' })
    })
  })

  describe('awaitCompleteSignals', () => {
    it('a partial first reply is followed by one more call; the complete verdict is enforced', async () => {
      const s = await open({ gate: { timeoutMs: 1000 }, checkpoint: { awaitCompleteSignals: { delayMs: 100 } } })
      fake.replyOnce({ verdict: 'allow', signalsComplete: false })
      fake.reply({ verdict: 'challenge', policyTriggered: 'New device' })
      const response = await login(s, { email: 'ada@example.com' }).expect(403)
      expect(response.body).toEqual({ error: 'challenge_required', reason: 'New device' })
      expect(fake.requests).toHaveLength(2)
      expect(fake.checks()[1]).toEqual(fake.checks()[0])
      expect(s.decisions.at(-1)).toMatchObject({ verdict: 'challenge', complete: true })
    })

    it('with no room in the budget the partial verdict stands after one call', async () => {
      const s = await open({ gate: { timeoutMs: 300 }, checkpoint: { awaitCompleteSignals: { delayMs: 500 } } })
      fake.reply({ verdict: 'allow', signalsComplete: false })
      const response = await login(s, { email: 'ada@example.com' }).expect(200)
      expect(response.body.decision).toMatchObject({ verdict: 'allow', source: 'backend', complete: false })
      expect(fake.requests).toHaveLength(1)
    })
  })
})
