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
// With TRACENOW_SECRET_KEY set, traces go to TraceNow (TRACENOW_BASE_URL overrides the API);
// without it a local fake answers (an address at mailinator.com is denied). Set
// FAKE_TRACENOW_DOWN=1 to start the fake hanging, and watch the local engine carry the
// decisions alone. See README.md for requests to try.

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { localPolicies } from '@sallyport/core'
import { guard } from '@sallyport/express'
import { fakeTraceNow } from '@sallyport/testing'
import { tracenow } from '@sallyport/tracenow'
import express from 'express'

/** @typedef {{ verdict: string, source?: string, reason?: string }} BackendPart */

/**
 * @param {unknown} part
 * @returns {part is BackendPart}
 */
const isBackendPart = (part) => typeof part === 'object' && part !== null && 'verdict' in part

/**
 * One line per decision: which backend said what.
 * @param {import('@sallyport/express').Decision} decision
 */
function describe(decision) {
  const parts = Object.entries(decision.signals).flatMap(([name, part]) =>
    isBackendPart(part) ? [`${name}: ${part.verdict} (${part.source}${part.reason ? `, ${part.reason}` : ''})`] : [],
  )
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
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      res.json({ signedIn: req.body?.email, verdict: req.sallyport?.verdict, reason: req.sallyport?.reason })
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
  /** @type {import('@sallyport/testing').FakeTraceNow | undefined} */
  let fake
  /** @type {import('@sallyport/tracenow').TraceNowOptions} */
  let traceNowOptions
  if (process.env.TRACENOW_SECRET_KEY) {
    traceNowOptions = { secretKey: process.env.TRACENOW_SECRET_KEY }
    if (process.env.TRACENOW_BASE_URL) traceNowOptions.baseUrl = process.env.TRACENOW_BASE_URL
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
  let site
  try {
    site = await listen(app, { port, host })
  } catch (error) {
    console.error(`Cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`)
    await gate.close()
    await fake?.close()
    process.exit(1)
  }
  const hanging = process.env.FAKE_TRACENOW_DOWN === '1' ? ', hanging' : ''
  console.log(`Local engine + TraceNow${fake ? ` (a local fake${hanging})` : ''} on ${site.url}/`)
  console.log(`  curl -s -d email=ada@example.com ${site.url}/login`)

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

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) await main()
