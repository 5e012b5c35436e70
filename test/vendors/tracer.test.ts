/**
 * Tracer at a checkout checkpoint, through real Express 4/5 and Koa 2/3 apps talking to a real
 * fake Tracer on loopback: what the shop's visitors and its operators would see.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { CheckpointSpec, Decision, GateOptions } from '@sallyport/core'
import { guard as expressGuard, type GuardRequest } from '@sallyport/express'
import { type GuardContext, guard as koaGuard } from '@sallyport/koa'
import { type FakeTracer, fakeTracer, tracerError, tracerProblem } from '@sallyport/testing'
import { tracer } from '@sallyport/tracer'
import request from 'supertest'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

type Framework = 'express-5' | 'koa-3' | 'express-4' | 'koa-2'
type Native = GuardRequest | GuardContext

const ACCOUNT_ID = '3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f'
const MERCHANT_ID = '7d9e8f10-1b2c-4d3e-8f4a-5b6c7d8e9f01'
const RULE_ID = '11111111-2222-4333-8444-555555555555'
/** A timer can fire late on a busy machine; Tracer's slow reply takes 1000 ms, so the bound still shows the cut. */
const SLACK_MS = 80
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

const cart = {
  type: 'CARD',
  subType: 'purchase',
  amount: '100.10',
  currency: 'EUR',
  timestamp: '2025-01-31T12:00:00Z',
  account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active' },
  merchant: { merchantId: MERCHANT_ID, name: 'Acme Store', category: '5411', country: 'DE' },
  metadata: { channel: 'web' },
}

interface Shop {
  url: string
  /** What happened, in order: `review:<path>`, `route:<path>`. */
  events: string[]
  decisions: Decision[]
  logs: Array<{ level: string; object: Record<string, unknown>; message: string | undefined }>
  close(): Promise<void>
}

interface ShopOptions {
  apiKey?: string
  gate?: Partial<GateOptions<Native>>
  /**
   * Keep Tracer's own 100 ms budget. Otherwise the shop allows a roomy second, so a loaded
   * machine cannot turn a test of something else into a timeout.
   */
  tracerBudget?: boolean
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  return text.length === 0 ? undefined : JSON.parse(text)
}

/**
 * A shop with three checkpoints of one Tracer gate: checkout fails closed (`deny`), a gift-card
 * checkout fails to review, and a price quote and plain browsing fail open like the gate.
 */
async function startShop(framework: Framework, fake: FakeTracer, options: ShopOptions = {}): Promise<Shop> {
  const events: string[] = []
  const decisions: Decision[] = []
  const logs: Shop['logs'] = []
  const record =
    (level: string) =>
    (object: Record<string, unknown>, message?: string): void => {
      logs.push({ level, object, message })
    }
  const pathOf = (native: Native) => ('originalUrl' in native && typeof native.originalUrl === 'string' ? native.originalUrl : '')
  const gateOptions: GateOptions<Native> = {
    backend: tracer({ apiKey: options.apiKey ?? fake.apiKey, baseUrl: fake.url }),
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    onReview: (_decision, native) => {
      events.push(`review:${pathOf(native)}`)
    },
    onDecision: (decision) => {
      decisions.push(decision)
    },
    ...(options.tracerBudget === true ? {} : { timeoutMs: 1000 }),
    ...options.gate,
  }
  const checkpoints = (transaction: (native: Native) => unknown): Array<[string, CheckpointSpec<Native>]> => [
    ['/checkout', { event: 'checkout', transaction, onError: 'deny' }],
    ['/checkout/gift-card', { event: 'checkout', transaction, onError: 'review' }],
    ['/quote', { event: 'quote', transaction }],
  ]

  let listener: RequestListener
  let closeGate: () => Promise<void>
  if (framework.startsWith('express')) {
    const { default: express } = (await import(framework)) as { default: typeof import('express') }
    const app = express()
    const gate = expressGuard(gateOptions as GateOptions<GuardRequest>)
    app.use(gate)
    for (const [path, spec] of checkpoints(
      (native) => ((native as GuardRequest).body as Record<string, unknown> | undefined)?.transaction,
    )) {
      app.post(path, express.json({ limit: '1mb' }), gate.checkpoint(spec as CheckpointSpec<GuardRequest>), (req, res) => {
        events.push(`route:${req.originalUrl}`)
        res.json({ ordered: true, decision: req.sallyport })
      })
    }
    app.get('/products', (req, res) => {
      events.push('route:/products')
      res.json({ products: [], decision: req.sallyport })
    })
    app.use(
      (
        error: { statusCode?: number; code?: string; option?: string; message: string },
        _req: unknown,
        res: import('express').Response,
        _next: unknown,
      ) => {
        res.status(error.statusCode ?? 500).json({ error: error.code, field: error.option, message: error.message })
      },
    )
    listener = app
    closeGate = () => gate.close()
  } else {
    const { default: Koa } = (await import(framework)) as { default: typeof import('koa') }
    const app = new Koa()
    const gate = koaGuard(gateOptions as GateOptions<GuardContext>)
    const routes = new Map(
      checkpoints((native) => ((native as GuardContext).request.body as Record<string, unknown> | undefined)?.transaction).map(
        ([path, spec]) => [path, gate.checkpoint(spec as CheckpointSpec<GuardContext>)],
      ),
    )
    app.use(async (ctx, next) => {
      try {
        await next()
      } catch (thrown) {
        const error = thrown as { statusCode?: number; code?: string; option?: string; message: string }
        ctx.status = error.statusCode ?? 500
        ctx.body = { error: error.code, field: error.option, message: error.message }
      }
    })
    app.use(gate as unknown as Parameters<typeof app.use>[0])
    app.use(async (ctx, next) => {
      const checkpoint = routes.get(ctx.path)
      if (ctx.method === 'POST' && checkpoint !== undefined) {
        ;(ctx.request as { body?: unknown }).body = await readJson(ctx.req)
        await checkpoint(ctx as unknown as GuardContext, async () => {
          events.push(`route:${ctx.originalUrl}`)
          ctx.body = { ordered: true, decision: ctx.state.sallyport }
        })
        return
      }
      if (ctx.method === 'GET' && ctx.path === '/products') {
        events.push('route:/products')
        ctx.body = { products: [], decision: ctx.state.sallyport }
        return
      }
      await next()
    })
    listener = app.callback()
    closeGate = () => gate.close()
  }

  const server: Server = createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    events,
    decisions,
    logs,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await closeGate()
    },
  }
}

describe.each(['express-5', 'koa-3', 'express-4', 'koa-2'] as const)('Tracer at checkout (%s)', (framework) => {
  let fake: FakeTracer
  let shop: Shop | undefined

  beforeEach(async () => {
    fake = await fakeTracer()
  })

  afterEach(async () => {
    await shop?.close()
    shop = undefined
    await fake.close()
  })

  const open = async (options: ShopOptions = {}) => {
    shop = await startShop(framework, fake, options)
    return shop
  }
  const checkout = (site: Shop, path = '/checkout', transaction: unknown = cart) =>
    request(site.url).post(path).set('accept', 'application/json').send({ transaction })
  const debugErrors = (site: Shop) =>
    site.logs.filter((entry) => entry.object.code === 'SP_BACKEND_FAILED').map((entry) => entry.object.err as Record<string, unknown>)

  it('sends the checkout transaction to POST /v1/validations as the API has it, amount exact', async () => {
    const site = await open()
    const response = await checkout(site).expect(200)
    expect(fake.checks()).toEqual([
      {
        requestId: expect.stringMatching(UUID),
        transactionType: 'CARD',
        subType: 'purchase',
        amount: '100.10',
        currency: 'EUR',
        transactionTimestamp: '2025-01-31T12:00:00Z',
        account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active' },
        merchant: { merchantId: MERCHANT_ID, name: 'Acme Store', category: '5411', country: 'DE' },
        metadata: { channel: 'web' },
      },
    ])
    expect(fake.requests[0]?.headers['x-api-key']).toBe(fake.apiKey)
    expect(fake.requests[0]?.rawBody).toContain('"amount":"100.10"')
    expect(response.body.decision).toMatchObject({
      verdict: 'allow',
      source: 'backend',
      backend: 'tracer',
      requestId: expect.stringMatching(UUID),
    })
  })

  it('browsing makes no Tracer call and is let through', async () => {
    const site = await open()
    const response = await request(site.url).get('/products').expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', reason: 'no_transaction', backend: 'tracer' })
    expect(fake.requests).toHaveLength(0)
  })

  it('a checkout without a transaction is let through without a call', async () => {
    const site = await open()
    const response = await request(site.url).post('/checkout').send({ note: 'no cart' }).expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', reason: 'no_transaction' })
    expect(fake.requests).toHaveLength(0)
  })

  it('ALLOW lets the order through, with the validationId for the audit log', async () => {
    fake.reply({ decision: 'ALLOW', evaluatedRuleIds: [RULE_ID] })
    const site = await open()
    const response = await checkout(site).expect(200)
    expect(response.body.ordered).toBe(true)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', signals: { decision: 'ALLOW', evaluatedRuleIds: [RULE_ID] } })
    expect(response.body.decision.requestId).toBe(response.body.decision.signals.validationId)
  })

  it('DENY refuses the order with a 403 naming the validation, and the route never runs', async () => {
    fake.reply({ decision: 'DENY', matchedRuleIds: [RULE_ID], reason: 'Daily limit exceeded' })
    const site = await open()
    const response = await checkout(site).expect(403)
    const decision = site.decisions.at(-1)
    expect(response.body).toEqual({ error: 'forbidden', requestId: decision?.requestId })
    expect(decision).toMatchObject({
      verdict: 'deny',
      reason: 'tracer:deny',
      signals: { reason: 'Daily limit exceeded', matchedRuleIds: [RULE_ID] },
    })
    expect(site.events).not.toContain('route:/checkout')
  })

  it('REVIEW runs onReview, then the order goes on with verdict review', async () => {
    fake.reply({
      decision: 'REVIEW',
      limitUsageDetails: [
        {
          limitId: '44444444-2222-4333-8444-555555555555',
          limitAmount: '1000.00',
          currentUsage: '950.00',
          attemptedAmount: '100.10',
          exceeded: true,
          scope: `account:${ACCOUNT_ID}`,
          period: 'DAILY',
        },
      ],
    })
    const site = await open()
    const response = await checkout(site).expect(200)
    expect(site.events).toEqual(['review:/checkout', 'route:/checkout'])
    expect(response.body.decision).toMatchObject({
      verdict: 'review',
      reason: 'tracer:review',
      signals: { limitUsageDetails: [{ exceeded: true, currentUsage: '950.00' }] },
    })
  })

  it.each([
    ['transaction.currency', { ...cart, currency: 'eur' }],
    ['transaction.amount', { ...cart, amount: 100.1 }],
    ['transaction.timestamp', { ...cart, timestamp: '2025-01-31 12:00:00' }],
    ['transaction.merchant.category', { ...cart, merchant: { ...cart.merchant, category: '54' } }],
    ['transaction.metadata."device-id"', { ...cart, metadata: { 'device-id': 'd1' } }],
  ])('an invalid transaction is a 400 naming %s, with no call and no order', async (field, transaction) => {
    const site = await open()
    const response = await checkout(site, '/checkout', transaction).expect(400)
    expect(response.body).toMatchObject({ error: 'SP_INVALID_CHECKPOINT', field })
    expect(response.body.message).toContain(field)
    expect(fake.requests).toHaveLength(0)
    expect(site.events).toEqual([])
  })

  it.each([
    ['a wrong API key', {}, 'client', { apiKey: 'trc_wrong_key' }],
    ['a 503 after its retry', { fault: tracerError(503, 'TRC-0500', 'Service Unavailable', 'reloading') }, 'server', {}],
    ['a body that is not JSON', { fault: 'bad-json' as const }, 'invalid', {}],
    ['a reply slower than the budget', { delayMs: 1000 }, 'timeout', { tracerBudget: true }],
    ['a reset connection, even after the retry', { fault: 'reset' as const }, 'network', {}],
  ])('%s fails closed at checkout and open at a quote (%s)', async (_label, reply, failure, shopOptions) => {
    fake.reply(reply)
    const site = await open(shopOptions)
    await checkout(site).expect(403)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'fallback', reason: failure })
    const quote = await checkout(site, '/quote').expect(200)
    expect(quote.body.decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: failure })
    expect(site.events).toEqual(['route:/quote'])
  })

  it('fails to review per checkpoint: onReview queues the order, which goes on', async () => {
    fake.reply({ fault: tracerProblem(500, { title: 'Internal Server Error', detail: 'rules store down' }) })
    const site = await open()
    const response = await checkout(site, '/checkout/gift-card').expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'review', source: 'fallback', reason: 'server' })
    expect(site.events).toEqual(['review:/checkout/gift-card', 'route:/checkout/gift-card'])
    await request(site.url).get('/products').expect(200)
  })

  it('a wrong key warns once, naming the cause and never the key', async () => {
    const site = await open({ apiKey: 'trc_wrong_key' })
    await checkout(site, '/quote').expect(200)
    await checkout(site, '/quote').expect(200)
    const warnings = site.logs.filter((entry) => entry.object.code === 'SP_WARN_BACKEND_REFUSED')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]?.message).toContain('Tracer rejected the API key')
    expect(JSON.stringify(site.logs.map((entry) => [entry.object.code, entry.message]))).not.toContain('trc_wrong_key')
    expect(debugErrors(site)[0]).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 401, vendorCode: 'TRC-0001' })
  })

  it.each([
    [
      'a Tracer error body',
      tracerError(409, 'TRC-0206', 'Conflict', 'limit is being recalculated'),
      'TRC-0206',
      'Conflict: limit is being recalculated',
    ],
    [
      'problem JSON',
      tracerProblem(422, { title: 'Unprocessable Entity', detail: 'account suspended', code: 'TRC-0107' }),
      'TRC-0107',
      'Unprocessable Entity: account suspended',
    ],
  ])('%s is parsed into the vendorCode and message', async (_label, fault, vendorCode, text) => {
    fake.reply({ fault })
    const site = await open()
    await checkout(site, '/quote').expect(200)
    const [error] = debugErrors(site)
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', vendorCode })
    expect(String(error?.message)).toContain(text)
  })

  it('a body over 100 KB is refused with 413, a client failure', async () => {
    const site = await open()
    await checkout(site, '/quote', { ...cart, metadata: { note: 'n'.repeat(110 * 1024) } }).expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'fallback', reason: 'client' })
    expect(debugErrors(site)[0]).toMatchObject({ status: 413, vendorCode: 'TRC-0003' })
  })

  it('a 5xx is retried inside the budget with the same requestId, so the order goes on', async () => {
    fake.replyOnce({ fault: tracerError(503, 'TRC-0500', 'Service Unavailable', 'reloading') })
    fake.reply({ decision: 'ALLOW' })
    const site = await open()
    const response = await checkout(site).expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', source: 'backend' })
    const [first, second] = fake.checks()
    expect(fake.checks()).toHaveLength(2)
    expect(second?.requestId).toBe(first?.requestId)
  })

  it('a 200 replaying the first result for a repeated requestId is a normal reply', async () => {
    fake.replyOnce({ decision: 'DENY', lostReply: true })
    fake.reply({ decision: 'ALLOW' })
    const site = await open()
    await checkout(site).expect(403)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', source: 'backend', signals: { replayed: true } })
    expect(new Set(fake.checks().map((body) => body.requestId)).size).toBe(1)
  })

  it("keeps to Tracer's 100 ms budget when Tracer is slow", async () => {
    fake.reply({ delayMs: 1000 })
    const site = await open({ tracerBudget: true })
    const started = performance.now()
    await checkout(site).expect(403)
    const elapsed = performance.now() - started
    expect(site.decisions.at(-1)).toMatchObject({ reason: 'timeout' })
    expect(site.decisions.at(-1)?.latencyMs).toBeLessThanOrEqual(100 + SLACK_MS)
    expect(elapsed).toBeLessThan(100 + 300)
  })
})
