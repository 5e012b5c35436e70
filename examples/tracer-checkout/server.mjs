// An Express 5 checkout validated by Tracer, with REVIEW queued for a person.
//
//   pnpm --filter @sallyport/example-tracer-checkout start   → http://127.0.0.1:3000 (PORT and HOST change it)
//
// With TRACER_API_KEY and TRACER_BASE_URL set, decisions come from your Tracer. Without a key, a
// local fake Tracer starts on loopback: orders up to 500.00 are allowed, larger ones held for
// review, and anything over 5000.00 denied.
//
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":"42.00"}'
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":"750.00"}'
//   curl -s localhost:3000/review-queue
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":42.1}'   → 400: amounts travel as strings

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { guard, SallyportError } from '@sallyport/express'
import { fakeTracer } from '@sallyport/testing'
import { tracer } from '@sallyport/tracer'
import express from 'express'

// In a real shop these come from the session and the database, fresh for every order:
// Tracer judges only what it is sent.
const ACCOUNT = { accountId: '3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f', type: 'checking', status: 'active' }
const MERCHANT = { merchantId: '7d9e8f10-1b2c-4d3e-8f4a-5b6c7d8e9f01', name: 'Sallyport Demo Shop', category: '5732', country: 'DE' }

/** The fake's rules: up to 500.00 allowed, above that held for review, above 5000.00 denied. */
export function startFake() {
  /** @param {unknown} amount */
  const cents = (amount) => {
    const [units = '0', decimals = ''] = String(amount).split('.')
    return BigInt(units) * 100n + BigInt(decimals.padEnd(2, '0').slice(0, 2))
  }
  return fakeTracer({
    decide(body) {
      const amount = cents(body.amount)
      if (amount > 500_000n)
        return { decision: 'DENY', reason: 'Order above the single-order limit', matchedRuleIds: ['5b0a4c1e-3d2f-4e6a-9b8c-7d6e5f4a3b2c'] }
      if (amount > 50_000n)
        return { decision: 'REVIEW', reason: 'Large order for this account', matchedRuleIds: ['9c8b7a6f-5e4d-4c3b-8a29-1f0e9d8c7b6a'] }
      return { decision: 'ALLOW', reason: 'All rules passed' }
    },
  })
}

/**
 * Builds the shop around a Tracer backend.
 * @param {import('@sallyport/tracer').TracerOptions} tracerOptions
 */
export function createApp(tracerOptions) {
  /** Orders a person must look at before they ship. A real shop would use its case-management tool. */
  /** @type {Array<{ validationId: string | null, reason: unknown, amount: unknown, queuedAt: string }>} */
  const reviewQueue = []

  const gate = guard({
    backend: tracer(tracerOptions),
    // REVIEW means "hold for a person", not "block": queue the order, then let the route take it.
    onReview(decision, req) {
      reviewQueue.push({
        validationId: decision.requestId,
        reason: decision.signals.reason ?? decision.reason,
        amount: req.body?.amount,
        queuedAt: new Date().toISOString(),
      })
      console.log(`order held for review: validation ${decision.requestId}`)
    },
    onDecision(decision) {
      if (decision.reason === 'no_transaction') return
      // Tracer's validationId is the audit trail's key: log it with every decision.
      console.log(
        `${decision.backend} ${decision.verdict} (${decision.source}, ${decision.reason ?? 'no reason'}) validation=${decision.requestId}`,
      )
    },
  })

  const app = express()
  app.disable('x-powered-by')
  // Browsing carries no transaction: Tracer is not called, and the gate's default fails open.
  app.use(gate)

  app.get('/', (_req, res) => {
    res.json({ shop: 'Sallyport Demo Shop', try: 'POST /checkout {"amount":"42.00"}', reviewQueue: '/review-queue' })
  })

  app.post(
    '/checkout',
    express.json(),
    gate.checkpoint({
      event: 'checkout',
      transaction: (req) => ({
        type: 'CARD',
        subType: 'purchase',
        // A decimal string, passed on exactly as the client sent it: never a float.
        amount: req.body?.amount,
        currency: req.body?.currency ?? 'EUR',
        timestamp: new Date(),
        account: ACCOUNT,
        merchant: MERCHANT,
        metadata: { channel: 'web' },
      }),
      // Money is at stake: if Tracer cannot answer, refuse the order rather than ship it unchecked.
      onError: 'deny',
    }),
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      const decision = req.sallyport
      if (decision?.verdict === 'review') {
        res.status(202).json({ status: 'held_for_review', validationId: decision.requestId })
        return
      }
      res.status(201).json({ status: 'placed', validationId: decision?.requestId ?? null })
    },
  )

  app.get('/review-queue', (_req, res) => {
    res.json(reviewQueue)
  })

  // Transaction data Tracer cannot accept is the client's 400, naming the field; so is a body
  // that is not JSON. Anything else is the shop's own bug: Express's handler logs it.
  app.use(
    /** @type {import('express').ErrorRequestHandler} */ (error, _req, res, next) => {
      const status = error?.statusCode
      if (res.headersSent || !Number.isInteger(status) || status < 400 || status > 499) return next(error)
      if (error instanceof SallyportError) res.status(status).json({ error: error.code, field: error.option, message: error.message })
      else res.status(status).json({ error: status === 413 ? 'body_too_large' : 'bad_request' })
    },
  )

  return { app, gate }
}

/**
 * Starts `app` on `host:port` (0 picks a free port).
 * @param {import('node:http').RequestListener} app
 * @param {{ port?: number, host?: string }} [options]
 */
export async function listen(app, { port = 0, host = '127.0.0.1' } = {}) {
  const server = createServer(app)
  await /** @type {Promise<void>} */ (
    new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  )
  const address = server.address()
  // A TCP listener always has an AddressInfo; null and string are for closed servers and pipes.
  if (address === null || typeof address === 'string') throw new Error(`Unexpected server address ${address}`)
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
  return {
    url,
    close: () =>
      /** @type {Promise<void>} */ (
        new Promise((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
      ),
  }
}

async function main() {
  const port = Number(process.env.PORT ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}.`)
    process.exit(1)
  }
  const host = process.env.HOST ?? '127.0.0.1'
  if (process.env.TRACER_API_KEY && !process.env.TRACER_BASE_URL) {
    console.error('Set TRACER_BASE_URL to where your Tracer runs.')
    process.exit(1)
  }
  const fake = process.env.TRACER_API_KEY ? undefined : await startFake()
  const tracerOptions =
    fake === undefined
      ? { apiKey: process.env.TRACER_API_KEY ?? '', baseUrl: process.env.TRACER_BASE_URL ?? '' }
      : { apiKey: fake.apiKey, baseUrl: fake.url }
  const { app, gate } = createApp(tracerOptions)
  let site
  try {
    site = await listen(app, { port, host })
  } catch (error) {
    console.error(`Cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`)
    await gate.close()
    await fake?.close()
    process.exit(1)
  }
  console.log(`Tracer checkout example on ${site.url}/`)
  if (fake === undefined) console.log(`Validations go to the Tracer at ${tracerOptions.baseUrl}.`)
  else console.log(`TRACER_API_KEY is not set: validations go to a local fake Tracer at ${fake.url}.`)

  // Ctrl+C reaches this process twice under `pnpm start` (from the terminal, then forwarded by
  // pnpm): `on`, not `once`, so the second one is ignored instead of killing the process mid-close.
  let closing = false
  /** @param {NodeJS.Signals} signal */
  const shutdown = async (signal) => {
    if (closing) return
    closing = true
    console.log(`${signal}: shutting down`)
    setTimeout(() => process.exit(1), 5000).unref()
    await site.close()
    await gate.close()
    await fake?.close()
    process.exit(0)
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
}

const runDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
if (runDirectly) await main()
