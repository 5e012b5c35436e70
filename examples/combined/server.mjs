// The embedded local engine and a vendor together, on Express 5.
//
//   pnpm --filter @sallyport/example-combined start   → http://127.0.0.1:3000 (PORT and HOST change it)
//
// Every request is judged by the local engine (its default rules: automation challenged on
// page loads, login floods challenged then denied) and, at the login checkpoint, by TraceNow
// as well: both are asked in parallel and the strictest verdict wins. When TraceNow is slow
// or down, its part falls back to allow and the local engine still decides, so an outage
// never leaves the login unguarded.
//
// With TRACENOW_SECRET_KEY set, traces go to TraceNow; without it a local fake answers
// (an address at mailinator.com is denied). Set FAKE_TRACENOW_DOWN=1 to start the fake
// hanging, and watch the local engine carry the decisions alone.

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { localPolicies } from '@sallyport/core'
import { guard } from '@sallyport/express'
import { fakeTraceNow } from '@sallyport/testing'
import { tracenow } from '@sallyport/tracenow'
import express from 'express'

/** One line per decision: which backend said what. */
function describe(decision) {
  const parts = Object.entries(decision.signals)
    .filter(([, part]) => typeof part === 'object' && part !== null && 'verdict' in part)
    .map(([name, part]) => `${name}: ${part.verdict} (${part.source}${part.reason ? `, ${part.reason}` : ''})`)
  return `${decision.verdict.padEnd(9)} ${decision.reason ?? '-'}  [${parts.join(' · ')}]`
}

/**
 * @param {import('@sallyport/tracenow').TraceNowOptions} traceNowOptions
 * @param {{ onDecision?: (decision: import('@sallyport/express').Decision) => void }} [extras]
 */
export function createApp(traceNowOptions, extras = {}) {
  const gate = guard({
    backend: [localPolicies(), tracenow(traceNowOptions)],
    // TraceNow publishes no budget of its own; a login can afford a few hundred ms.
    timeoutMs: 400,
    ...(extras.onDecision ? { onDecision: extras.onDecision } : {}),
  })
  const app = express()
  app.disable('x-powered-by')
  app.use(gate)
  app.get('/', (_req, res) => {
    res.type('html').send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sallyport · combined</title></head>
<body><h1>Local engine + TraceNow</h1><form method="post" action="/login">
<label>Email <input type="email" name="email" value="ada@example.com"></label> <button>Sign in</button></form></body></html>`)
  })
  app.post(
    '/login',
    express.urlencoded({ extended: false, limit: '8kb' }),
    express.json({ limit: '8kb' }),
    gate.checkpoint({ event: 'login', email: (req) => req.body?.email }),
    (req, res) => {
      res.json({ signedIn: req.body?.email, verdict: req.sallyport?.verdict, reason: req.sallyport?.reason })
    },
  )
  return { app, gate }
}

async function main() {
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '127.0.0.1'
  let fake
  let traceNowOptions
  if (process.env.TRACENOW_SECRET_KEY) {
    traceNowOptions = { secretKey: process.env.TRACENOW_SECRET_KEY }
  } else {
    fake = await fakeTraceNow({
      decide: (body) =>
        String(body.email ?? '').endsWith('@mailinator.com')
          ? { verdict: 'deny', policyTriggered: 'Disposable email' }
          : { verdict: 'allow' },
    })
    if (process.env.FAKE_TRACENOW_DOWN === '1') fake.reply({ fault: 'hang' })
    traceNowOptions = { secretKey: fake.secretKey, baseUrl: fake.url }
  }
  const { app, gate } = createApp(traceNowOptions, { onDecision: (decision) => console.log(describe(decision)) })
  const server = createServer(app)
  await new Promise((resolve) => server.listen(port, host, resolve))
  console.log(`Local engine + TraceNow${fake ? ' (a local fake)' : ''} on http://${host}:${server.address().port}`)
  console.log(`  curl -s -X POST -d email=ada@example.com http://${host}:${server.address().port}/login`)
  const stop = async () => {
    server.close()
    server.closeAllConnections()
    await gate.close()
    await fake?.close()
    process.exit(0)
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await main()
