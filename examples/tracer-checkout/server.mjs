// An Express 5 checkout validated by Tracer, with REVIEW queued for a person.
//
//   node server.mjs            → http://127.0.0.1:3000 (PORT and HOST change it)
//
// With TRACER_API_KEY and TRACER_BASE_URL set, decisions come from your Tracer. Without a key, a
// local fake Tracer starts on loopback: orders up to 500.00 are allowed, larger ones held for
// review, and anything over 5000.00 denied.
//
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":"42.00"}'
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":"750.00"}'
//   curl -s localhost:3000/review-queue
//   curl -s localhost:3000/checkout -H 'content-type: application/json' -d '{"amount":42.1}'   → 400: amounts travel as strings

import { createServer } from 'node:http'
import { guard } from '@sallyport/express'
import { fakeTracer } from '@sallyport/testing'
import { tracer } from '@sallyport/tracer'
import express from 'express'

// In a real shop these come from the session and the database, fresh for every order:
// Tracer judges only what it is sent.
const ACCOUNT = { accountId: '3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f', type: 'checking', status: 'active' }
const MERCHANT = { merchantId: '7d9e8f10-1b2c-4d3e-8f4a-5b6c7d8e9f01', name: 'Sallyport Demo Shop', category: '5732', country: 'DE' }

/** Orders a person must look at before they ship. A real shop would use its case-management tool. */
const reviewQueue = []

async function tracerConnection() {
  if (process.env.TRACER_API_KEY) {
    if (!process.env.TRACER_BASE_URL) throw new Error('Set TRACER_BASE_URL to where your Tracer runs.')
    return { apiKey: process.env.TRACER_API_KEY, baseUrl: process.env.TRACER_BASE_URL, close: async () => {} }
  }
  const cents = (amount) => {
    const [units, decimals = ''] = String(amount).split('.')
    return BigInt(units) * 100n + BigInt(decimals.padEnd(2, '0').slice(0, 2))
  }
  const fake = await fakeTracer({
    decide(body) {
      const amount = cents(body.amount)
      if (amount > 500_000n)
        return { decision: 'DENY', reason: 'Order above the single-order limit', matchedRuleIds: ['5b0a4c1e-3d2f-4e6a-9b8c-7d6e5f4a3b2c'] }
      if (amount > 50_000n)
        return { decision: 'REVIEW', reason: 'Large order for this account', matchedRuleIds: ['9c8b7a6f-5e4d-4c3b-8a29-1f0e9d8c7b6a'] }
      return { decision: 'ALLOW', reason: 'All rules passed' }
    },
  })
  console.log(`TRACER_API_KEY is not set: using a local fake Tracer at ${fake.url}`)
  return { apiKey: fake.apiKey, baseUrl: fake.url, close: () => fake.close() }
}

const connection = await tracerConnection()

const gate = guard({
  backend: tracer({ apiKey: connection.apiKey, baseUrl: connection.baseUrl }),
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

// Transaction data Tracer cannot accept is the client's 400, naming the field.
app.use((error, _req, res, _next) => {
  const status = error.statusCode ?? 500
  res.status(status).json(status === 400 ? { error: error.code, field: error.option, message: error.message } : { error: 'internal_error' })
})

const server = createServer(app)
const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? '127.0.0.1'
server.listen(port, host, () => {
  const address = server.address()
  console.log(`Tracer checkout listening on http://${host}:${typeof address === 'object' && address !== null ? address.port : port}`)
})

async function shutdown() {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
  await gate.close()
  await connection.close()
}
process.once('SIGINT', shutdown)
process.once('SIGTERM', shutdown)
