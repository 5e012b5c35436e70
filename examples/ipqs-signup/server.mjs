// A signup page guarded by Sallyport and IPQualityScore, on Express 5.
//
//   IPQS_KEY=… pnpm --filter @sallyport/example-ipqs-signup start   → looks visitors up at IPQualityScore
//   pnpm --filter @sallyport/example-ipqs-signup start              → no key: starts a local fake IPQualityScore and uses it
//
// http://127.0.0.1:3000 by default (PORT and HOST change it). The site trusts a proxy on
// loopback, so with the fake you can play a visitor from elsewhere:
//
//   curl -i -A 'Mozilla/5.0' -H 'X-Forwarded-For: 203.0.113.66' -H 'Accept: application/json' \
//        -d 'username=ada&email=ada@example.com&password=correct-horse' http://127.0.0.1:3000/signup

import { createHash } from 'node:crypto'
import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { guard } from '@sallyport/express'
import { ipqs } from '@sallyport/ipqs'
import { fakeIpqs } from '@sallyport/testing'
import express from 'express'

/** Visitors the fake scores badly, so each verdict can be tried from one machine. */
/** @type {Record<string, { fraudScore: number, fields?: Record<string, boolean>, note: string }>} */
export const FAKE_VISITORS = {
  '203.0.113.66': { fraudScore: 96, note: 'fraud_score 96: denied' },
  '198.51.100.77': { fraudScore: 81, note: 'fraud_score 81: challenged' },
  '192.0.2.99': { fraudScore: 40, fields: { tor: true, active_tor: true }, note: 'a Tor exit: challenged (onTor)' },
}

/** @param {unknown} text */
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)
/** @param {string} text */
const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex')
/**
 * A trimmed string field of a parsed body, or '' when it is missing or not a string.
 * @param {any} body the parsed request body (JSON or a form), validated here
 * @param {string} name
 * @returns {string}
 */
const field = (body, name) => (typeof body?.[name] === 'string' ? body[name].trim() : '')

/**
 * @param {string} title
 * @param {string} body
 */
function page(title, body) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem;color:#222}label{display:block;margin:.5rem 0}</style></head>
<body><h1>${escapeHtml(title)}</h1>
${body}
</body>
</html>
`
}

const SIGNUP_FORM = `<form method="post" action="/signup">
<label>Username <input name="username" required autocomplete="username"></label>
<label>Email <input type="email" name="email" required autocomplete="email"></label>
<label>Password <input type="password" name="password" required autocomplete="new-password"></label>
<p><button>Create account</button></p>
</form>`

/**
 * Builds the site around an IPQualityScore backend. Only the signup is looked up: a lookup
 * costs a credit, and the score matters where an account is made.
 *
 * @param {{ key: string, baseUrl?: string }} vendor
 * @param {import('@sallyport/express').GuardOptions} [options]
 */
export function createApp(vendor, options = {}) {
  const backend = ipqs({
    ...vendor,
    strictness: 1,
    // A Tor exit or recent abuse is not proof of fraud; ask for more instead of turning the visitor away.
    onTor: 'challenge',
    onRecentAbuse: 'challenge',
  })
  const gate = guard({ backend, trustProxy: 'loopback', ...options })
  const accounts = new Map()

  const app = express()
  app.disable('x-powered-by')
  app.set('trust proxy', 'loopback')

  app.get('/', (_req, res) => {
    res.send(page('Create an account', SIGNUP_FORM))
  })

  app.post(
    '/signup',
    express.urlencoded({ extended: false, limit: '16kb' }),
    express.json({ limit: '16kb' }),
    gate.checkpoint({
      event: 'signup',
      // Only digests of secrets leave the app: IPQualityScore takes the password as SHA-256 to spot
      // reused credentials, and Sallyport refuses a raw `password` field with a 400.
      transaction: (req) => {
        const password = field(req.body, 'password')
        return {
          username: field(req.body, 'username'),
          billing_email: field(req.body, 'email'),
          ...(password === '' ? {} : { password_hash: sha256(password) }),
        }
      },
      // A challenge at signup: ask for email verification instead of a bare 403.
      challenge: (decision, req) => {
        const reason = `Reason: ${decision.reason}.`
        if (req.accepts(['html', 'json']) === 'json') req.res?.status(403).json({ error: 'verification_required', reason: decision.reason })
        else
          req.res
            ?.status(403)
            .send(page('One more step', `<p>We need to verify your email before creating this account. ${escapeHtml(reason)}</p>`))
      },
    }),
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      const username = field(req.body, 'username')
      const email = field(req.body, 'email')
      if (username === '' || email === '' || field(req.body, 'password') === '') {
        res.status(400)
        if (req.accepts(['html', 'json']) === 'json') res.json({ error: 'username_email_and_password_required' })
        else res.send(page('Create an account', `<p>Please fill in every field.</p>${SIGNUP_FORM}`))
        return
      }
      accounts.set(username, { email })
      const decision = req.sallyport
      const summary = { verdict: decision?.verdict, source: decision?.source, reason: decision?.reason, requestId: decision?.requestId }
      res.status(201)
      if (req.accepts(['html', 'json']) === 'json')
        res.json({ created: username, sallyport: summary, fraud_score: decision?.signals.fraud_score })
      else res.send(page('Welcome', `<p>Account <strong>${escapeHtml(username)}</strong> created.</p>`))
    },
  )

  // Sallyport hands invalid checkpoint data to the app as a 400; answer it without a stack trace.
  app.use(
    /**
     * @param {any} error whatever a middleware threw; only its HTTP fields are read
     * @param {import('express').Request} _req
     * @param {import('express').Response} res
     * @param {import('express').NextFunction} _next
     */
    (error, _req, res, _next) => {
      res.status(error.statusCode ?? 500).json({ error: error.code ?? 'internal_error', message: error.expose ? error.message : undefined })
    },
  )

  return { app, gate }
}

/**
 * Starts `app` on `host:port` (0 picks a free port).
 * @param {import('node:http').RequestListener} app
 * @param {{ port?: number, host?: string }} [options]
 * @returns {Promise<{ server: import('node:http').Server, url: string, close(): Promise<void> }>}
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
    server,
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

/** The fake scores the listed visitors badly, user agents that call themselves bots as bots, and everyone else well. */
export function startFake() {
  return fakeIpqs({
    decide(params) {
      const scripted = typeof params.ip === 'string' ? FAKE_VISITORS[params.ip] : undefined
      if (scripted !== undefined) return scripted
      if (/bot|crawler|spider|curl|python-requests/i.test(String(params.user_agent ?? ''))) {
        return { fraudScore: 70, fields: { bot_status: true } }
      }
      return { fraudScore: 3 }
    },
  })
}

async function main() {
  const port = Number(process.env.PORT ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}.`)
    process.exit(1)
  }
  const host = process.env.HOST ?? '127.0.0.1'
  const key = process.env.IPQS_KEY
  const fake = key ? undefined : await startFake()
  const vendor =
    fake === undefined
      ? { key: key ?? '', ...(process.env.IPQS_BASE_URL ? { baseUrl: process.env.IPQS_BASE_URL } : {}) }
      : { key: fake.key, baseUrl: fake.url }
  const { app, gate } = createApp(vendor)
  let site
  try {
    site = await listen(app, { port, host })
  } catch (error) {
    console.error(`Cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`)
    await gate.close()
    await fake?.close()
    process.exit(1)
  }

  console.log(`Sallyport IPQualityScore signup example on ${site.url}/`)
  if (fake === undefined) console.log('Lookups go to IPQualityScore with the key in IPQS_KEY.')
  else {
    console.log(`IPQS_KEY is not set: lookups go to a local fake IPQualityScore at ${fake.url}.`)
    console.log('Play a visitor with X-Forwarded-For (the site trusts a proxy on loopback):')
    for (const [ip, { note }] of Object.entries(FAKE_VISITORS)) console.log(`  ${ip.padEnd(15)} ${note}`)
    console.log('  a user agent with "curl" or "bot" in it: bot_status, denied')
    console.log(
      `  curl -i -A 'Mozilla/5.0' -H 'X-Forwarded-For: 203.0.113.66' -H 'Accept: application/json' -d 'username=ada&email=ada@example.com&password=pw' ${site.url}/signup`,
    )
  }

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
