// An Express 5 shop guarded by Sallyport.
//
//   pnpm --filter @sallyport/example-express-site start   → http://127.0.0.1:3000 (PORT and HOST change it)
//
// With TRUSTED_ACCOUNTS_SECRET_KEY and TRUSTED_ACCOUNTS_PUBLISHABLE_KEY set, decisions come
// from Trusted Accounts; without them, from Sallyport's embedded local policy engine (its
// default rules plus a deny list). See README.md for requests to try.

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { localPolicies } from '@sallyport/core'
import { guard } from '@sallyport/express'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import express from 'express'

export const PRODUCTS = [
  { id: 'lamp', name: 'Desk lamp', price: 39 },
  { id: 'mug', name: 'Enamel mug', price: 12 },
  { id: 'notebook', name: 'Dot-grid notebook', price: 9 },
]

/** Denied by the local engine when started directly: a documentation address (RFC 5737) to try with X-Forwarded-For. */
export const DENIED_IPS = ['203.0.113.66']

/** @param {unknown} text */
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

/**
 * One line about the decision Sallyport made for this request, for the page footer.
 * @param {import('@sallyport/express').Decision | undefined} decision
 */
function describe(decision) {
  if (decision === undefined) return 'no decision'
  const reason = decision.reason === null ? '' : `, reason ${decision.reason}`
  return `${decision.verdict} (${decision.source} ${decision.backend}${reason}, ${decision.latencyMs.toFixed(1)} ms)`
}

/**
 * @param {import('express').Request} req
 * @param {string} title
 * @param {string} body
 */
function page(req, title, body) {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · Sallyport shop</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}nav a{margin-right:1rem}footer{margin-top:3rem;color:#666;font-size:.875rem}</style></head>
<body>
<nav><a href="/">Home</a><a href="/products">Products</a><a href="/api/products">API</a><a href="/login">Sign in</a></nav>
<h1>${escapeHtml(title)}</h1>
${body}
<footer>Sallyport: ${escapeHtml(describe(req.sallyport))}</footer>
</body>
</html>
`
}

/**
 * Builds the site. Every option except `skip` goes to `guard()` unchanged; `/health` is
 * always skipped (no backend call). `trustProxy`, when given, is also Express's `trust proxy`,
 * so `req.ip` and Sallyport agree.
 *
 * @param {import('@sallyport/express').GuardOptions} [options]
 * @returns {{ app: import('express').Express, gate: import('@sallyport/express').GuardMiddleware }}
 */
export function createApp(options = {}) {
  const { skip = [], ...rest } = options
  const gate = guard({ ...rest, skip: ['/health', ...[skip].flat()] })

  const app = express()
  app.disable('x-powered-by')
  if (options.trustProxy !== undefined) app.set('trust proxy', options.trustProxy)

  // Whole-site bot protection: every request below gets a decision (OPTIONS and /health skip the backend).
  app.use(gate)

  app.get('/health', (_req, res) => {
    res.type('text/plain').send('ok')
  })

  app.get('/', (req, res) => {
    res.send(
      page(
        req,
        'Welcome',
        '<p>A tiny shop guarded by Sallyport. Browse the <a href="/products">products</a> or <a href="/login">sign in</a>.</p>',
      ),
    )
  })

  app.get('/products', (req, res) => {
    const items = PRODUCTS.map((product) => `<li>${escapeHtml(product.name)} — €${product.price}</li>`).join('')
    res.send(page(req, 'Products', `<ul>${items}</ul>`))
  })

  app.get('/api/products', (req, res) => {
    res.json({ products: PRODUCTS, sallyport: { verdict: req.sallyport?.verdict, source: req.sallyport?.source } })
  })

  app.get('/login', (req, res) => {
    res.send(
      page(
        req,
        'Sign in',
        `<form method="post" action="/login">
<p><label>Email <input type="email" name="email" required></label></p>
<p><label>Password <input type="password" name="password" required></label></p>
<p><button>Sign in</button></p>
</form>`,
      ),
    )
  })

  // A risk checkpoint: the body is parsed first, so the extractor can read the email.
  app.post(
    '/login',
    express.urlencoded({ extended: false, limit: '16kb' }),
    express.json({ limit: '16kb' }),
    gate.checkpoint({ event: 'login', email: (req) => req.body?.email }),
    /**
     * @param {import('express').Request} req
     * @param {import('express').Response} res
     */
    (req, res) => {
      const email = typeof req.body?.email === 'string' ? req.body.email : ''
      if (email === '') {
        res.status(400)
        if (req.is('json')) res.json({ error: 'email_required' })
        else res.send(page(req, 'Sign in', '<p>Please enter your email. <a href="/login">Try again</a>.</p>'))
        return
      }
      // This is a demo: any password signs you in. Your own check goes here.
      if (req.is('json')) res.json({ ok: true, email, sallyport: req.sallyport?.verdict })
      else res.send(page(req, 'Signed in', `<p>Welcome back, ${escapeHtml(email)}.</p>`))
    },
  )

  // A malformed body is the client's mistake: answer 400 without logging a stack trace.
  app.use(
    /** @type {import('express').ErrorRequestHandler} */ (error, _req, res, next) => {
      const status = error?.status ?? error?.statusCode
      if (res.headersSent || !Number.isInteger(status) || status < 400 || status > 499) return next(error)
      res.status(status).json({ error: status === 413 ? 'body_too_large' : 'bad_request' })
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
          server.closeIdleConnections()
        })
      ),
  }
}

/** The backend from the environment: Trusted Accounts when both keys are set, else `undefined` (the embedded default). */
function backendFromEnv() {
  const secretKey = process.env.TRUSTED_ACCOUNTS_SECRET_KEY
  const publishableKey = process.env.TRUSTED_ACCOUNTS_PUBLISHABLE_KEY
  if (secretKey && publishableKey) {
    const baseUrl = process.env.TRUSTED_ACCOUNTS_BASE_URL
    return trustedAccounts({ secretKey, publishableKey, ...(baseUrl ? { baseUrl } : {}) })
  }
  if (secretKey || publishableKey) {
    console.warn('Set both TRUSTED_ACCOUNTS_SECRET_KEY and TRUSTED_ACCOUNTS_PUBLISHABLE_KEY to use Trusted Accounts.')
  }
  return undefined
}

async function main() {
  const port = Number(process.env.PORT ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT)}.`)
    process.exit(1)
  }
  const host = process.env.HOST ?? '127.0.0.1'
  const backend = backendFromEnv()
  // A reverse proxy on the same machine (or curl playing one) may say who the client is; no one else may.
  const { app, gate } = createApp({ backend: backend ?? localPolicies({ denyIps: DENIED_IPS }), trustProxy: 'loopback' })
  let site
  try {
    site = await listen(app, { port, host })
  } catch (error) {
    console.error(`Cannot listen on ${host}:${port}: ${error instanceof Error ? error.message : error}`)
    await gate.close()
    process.exit(1)
  }
  console.log(`Sallyport Express example on ${site.url}/ (decisions: ${backend === undefined ? 'embedded local policies' : backend.name})`)
  if (backend === undefined) console.log(`A browser passes; an HTTP library is challenged: curl -i -H 'accept: text/html' ${site.url}/`)

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
    process.exit(0)
  }
  process.on('SIGINT', shutdown)
  process.on('SIGTERM', shutdown)
}

const runDirectly = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)
if (runDirectly) await main()
