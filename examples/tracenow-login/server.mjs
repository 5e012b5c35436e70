// Login and signup checkpoints judged by TraceNow, on Express 5.
//
//   pnpm --filter @sallyport/example-tracenow-login start   → http://127.0.0.1:3000 (PORT and HOST change it)
//
// With TRACENOW_SECRET_KEY set, traces go to TraceNow (TRACENOW_BASE_URL overrides the API, and
// TRACENOW_PUBLISHABLE_KEY adds TraceNow's browser snippet, whose device token the forms send).
// Without it, a local fake TraceNow starts on a free loopback port and answers instead, with
// a few rules to try:
//   an address at mailinator.com      → deny  ("Disposable email")
//   an address starting with "tor"    → challenge ("Tor exit node")
//   a first signup for an address     → partial signals, so Sallyport asks once more (awaitCompleteSignals)

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { guard } from '@sallyport/express'
import { fakeTraceNow } from '@sallyport/testing'
import { tracenow } from '@sallyport/tracenow'
import express from 'express'

const RULES = `<p>The local fake TraceNow answers: an address at <code>mailinator.com</code> → deny; an address starting with <code>tor</code> → challenge;
a first signup for an address → partial signals, so Sallyport asks once more.</p>`

/**
 * The demo page. With a publishable key, TraceNow's browser snippet runs and its device token
 * goes along with each form; without one, the forms send what they have.
 * @param {{ publishableKey: string | undefined, offline: boolean }} options
 */
function page({ publishableKey, offline }) {
  const snippet =
    publishableKey === undefined
      ? ''
      : `<script src="https://cdn.tracenow.io/trace.min.js"></script>
<script>window.tracenowClient = tracenow(${JSON.stringify(publishableKey).replace(/</g, '\\u003c')})</script>`
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>TraceNow checkpoints · Sallyport</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}form{margin:1.5rem 0;padding:1rem;border:1px solid #ddd;border-radius:.5rem}pre{background:#f6f6f6;padding:1rem;overflow:auto}</style>
${snippet}</head>
<body>
<h1>Login and signup checkpoints</h1>
<p>Each form posts JSON to a route guarded by <code>gate.checkpoint()</code>; below is what the route (or Sallyport) answered.</p>
${offline ? RULES : ''}
<form data-path="/login"><h2>Sign in</h2>
<p><label>Email <input type="email" name="email" required value="ada@example.com"></label></p>
<p><label>Password <input type="password" name="password" required value="demo"></label></p>
<p><button>Sign in</button></p></form>
<form data-path="/signup"><h2>Sign up</h2>
<p><label>Email <input type="email" name="email" required value="grace@example.com"></label></p>
<p><label>Phone <input type="tel" name="phone" value="+14155552671"></label></p>
<p><button>Create account</button></p></form>
<pre id="result">…</pre>
<script>
for (const form of document.querySelectorAll('form')) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const headers = { 'content-type': 'application/json', accept: 'application/json' }
    // If the browser step fails, the form goes without a token: TraceNow judges what it gets.
    const token = window.tracenowClient ? await window.tracenowClient.identify().catch(() => undefined) : undefined
    const body = Object.fromEntries(new FormData(form))
    if (token && form.dataset.path === '/login') body.deviceToken = token
    if (token && form.dataset.path === '/signup') headers['x-device-token'] = token
    const response = await fetch(form.dataset.path, { method: 'POST', headers, body: JSON.stringify(body) })
    document.getElementById('result').textContent = response.status + ' ' + JSON.stringify(await response.json(), null, 2)
  })
}
</script>
</body>
</html>
`
}

/**
 * What the example's fake TraceNow answers, so each verdict can be tried offline.
 * @returns {(body: import('@sallyport/testing').TraceNowBody) => import('@sallyport/testing').TraceNowReply}
 */
export function exampleRules() {
  /** @type {Set<string>} */
  const seen = new Set()
  return (body) => {
    const email = body.email?.toLowerCase() ?? ''
    const firstSignup = body.event === 'signup' && !seen.has(email)
    seen.add(email)
    if (email.endsWith('@mailinator.com')) return { verdict: 'deny', policyTriggered: 'Disposable email' }
    if (email.startsWith('tor')) return { verdict: 'challenge', policyTriggered: 'Tor exit node', ip: { is_tor: true, is_anonymous: true } }
    // A first look-up misses TraceNow's enrichment cache: the verdict comes on partial signals.
    return { verdict: 'allow', signalsComplete: !firstSignup }
  }
}

/**
 * A short summary of the decision for the JSON answers.
 * @param {import('@sallyport/express').Decision | undefined} decision
 */
function summary(decision) {
  if (decision === undefined) return undefined
  const { verdict, reason, source, requestId, complete, latencyMs } = decision
  return { verdict, reason, source, requestId, complete, latencyMs: Math.round(latencyMs) }
}

/**
 * Builds the app around a TraceNow backend.
 * @param {import('@sallyport/tracenow').TraceNowOptions} traceNowOptions
 * @param {{ onDecision?: (decision: import('@sallyport/express').Decision) => void, publishableKey?: string, offline?: boolean }} [extras]
 */
export function createApp(traceNowOptions, extras = {}) {
  // Signup waits for complete signals, so the budget leaves room for the delay and a second call.
  const gate = guard({
    backend: tracenow(traceNowOptions),
    timeoutMs: 1000,
    ...(extras.onDecision ? { onDecision: extras.onDecision } : {}),
  })
  const app = express()
  app.disable('x-powered-by')
  const json = express.json({ limit: '16kb' })

  const html = page({ publishableKey: extras.publishableKey, offline: extras.offline === true })
  app.get('/', (_req, res) => {
    res.type('html').send(html)
  })

  app.post(
    '/login',
    json,
    gate.checkpoint({ event: 'login', email: (req) => req.body?.email, deviceToken: (req) => req.body?.deviceToken }),
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      // A demo: any password signs you in. Your own check goes here.
      res.json({ ok: true, signedIn: req.body?.email, sallyport: summary(req.sallyport) })
    },
  )

  app.post(
    '/signup',
    json,
    gate.checkpoint({
      event: 'signup',
      email: (req) => req.body?.email,
      phone: (req) => req.body?.phone,
      deviceToken: (req) => req.get('x-device-token'),
      awaitCompleteSignals: { delayMs: 300 },
    }),
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      res.status(201).json({ ok: true, created: req.body?.email, sallyport: summary(req.sallyport) })
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
    fake = await fakeTraceNow({ decide: exampleRules() })
    traceNowOptions = { secretKey: fake.secretKey, baseUrl: fake.url }
  }

  /** @param {import('@sallyport/express').Decision} decision */
  const onDecision = (decision) => {
    const complete = decision.complete ? '' : ' (partial signals)'
    console.log(
      `${decision.verdict} ← ${decision.source} ${decision.backend}, reason ${decision.reason ?? '-'}${complete}, ${decision.latencyMs.toFixed(0)} ms`,
    )
  }
  const { app, gate } = createApp(traceNowOptions, {
    onDecision,
    offline: fake !== undefined,
    ...(process.env.TRACENOW_PUBLISHABLE_KEY && fake === undefined ? { publishableKey: process.env.TRACENOW_PUBLISHABLE_KEY } : {}),
  })
  let site
  try {
    site = await listen(app, { port, host })
  } catch (error) {
    console.error(`Cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`)
    await gate.close()
    await fake?.close()
    process.exit(1)
  }
  const source = fake === undefined ? 'TraceNow' : `a local fake TraceNow at ${fake.url} (set TRACENOW_SECRET_KEY for the real one)`
  console.log(`TraceNow login example on ${site.url}/ — traces go to ${source}`)

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
