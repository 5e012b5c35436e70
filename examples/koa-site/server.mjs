// A Koa 3 shop guarded by Sallyport.
//
//   pnpm --filter @sallyport/example-koa-site start   → http://127.0.0.1:3000 (PORT and HOST change it)
//
// With TRUSTED_ACCOUNTS_SECRET_KEY and TRUSTED_ACCOUNTS_PUBLISHABLE_KEY set, decisions come
// from Trusted Accounts; without them, from Sallyport's embedded local policy engine (its
// default rules plus a deny list). See README.md for requests to try.

import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { localPolicies } from '@sallyport/core'
import { guard } from '@sallyport/koa'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import Koa from 'koa'
import bodyParser from 'koa-bodyparser'

export const PRODUCTS = [
  { id: 'lamp', name: 'Desk lamp', price: 39 },
  { id: 'mug', name: 'Enamel mug', price: 12 },
  { id: 'notebook', name: 'Dot-grid notebook', price: 9 },
]

/** Denied by the local engine when started directly: a documentation address (RFC 5737) to try with X-Forwarded-For. */
export const DENIED_IPS = ['203.0.113.66']

/**
 * @typedef {import('koa').Context} Context
 * @typedef {import('koa').Middleware} Middleware
 * @typedef {import('@sallyport/core').Decision} Decision
 */

/** @param {unknown} text */
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

/**
 * Runs Koa middleware in order, then `next`.
 *
 * @param {Middleware[]} stack
 * @returns {Middleware}
 */
function compose(stack) {
  return (ctx, next) => {
    let last = -1
    /**
     * @param {number} index
     * @returns {Promise<void>}
     */
    const dispatch = (index) => {
      if (index <= last) return Promise.reject(new Error('next() called twice'))
      last = index
      const fn = index === stack.length ? next : stack[index]
      if (fn === undefined) return Promise.resolve()
      try {
        return Promise.resolve(fn(ctx, () => dispatch(index + 1)))
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return dispatch(0)
  }
}

/** A tiny exact-path router: `get`/`post` register a chain of middleware; HEAD uses GET; wrong methods get 405. */
function router() {
  /** @type {Map<string, Middleware>} */
  const routes = new Map()
  /**
   * @param {string} method
   * @param {string} path
   * @param {Middleware[]} stack
   */
  const add = (method, path, stack) => {
    routes.set(`${method} ${path}`, compose(stack))
  }
  return {
    /**
     * @param {string} path
     * @param {...Middleware} stack
     */
    get: (path, ...stack) => add('GET', path, stack),
    /**
     * @param {string} path
     * @param {...Middleware} stack
     */
    post: (path, ...stack) => add('POST', path, stack),
    /** @returns {Middleware} */
    middleware() {
      return async (ctx, next) => {
        const method = ctx.method === 'HEAD' ? 'GET' : ctx.method
        const route = routes.get(`${method} ${ctx.path}`)
        if (route !== undefined) return route(ctx, next)
        const allowed = ['GET', 'POST'].filter((candidate) => routes.has(`${candidate} ${ctx.path}`))
        if (allowed.length === 0) return next()
        ctx.status = 405
        ctx.set('Allow', allowed.join(', '))
      }
    },
  }
}

/**
 * One line about the decision Sallyport made for this request, for the page footer.
 *
 * @param {Decision | undefined} decision
 */
function describe(decision) {
  if (decision === undefined) return 'no decision'
  const reason = decision.reason === null ? '' : `, reason ${decision.reason}`
  return `${decision.verdict} (${decision.source} ${decision.backend}${reason}, ${decision.latencyMs.toFixed(1)} ms)`
}

/**
 * @param {Context} ctx
 * @param {string} title
 * @param {string} body
 */
function page(ctx, title, body) {
  ctx.type = 'html'
  ctx.body = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)} · Sallyport shop</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}nav a{margin-right:1rem}footer{margin-top:3rem;color:#666;font-size:.875rem}</style></head>
<body>
<nav><a href="/">Home</a><a href="/products">Products</a><a href="/api/products">API</a><a href="/login">Sign in</a></nav>
<h1>${escapeHtml(title)}</h1>
${body}
<footer>Sallyport: ${escapeHtml(describe(ctx.state.sallyport))}</footer>
</body>
</html>
`
}

/**
 * The parsed form or JSON body (koa-bodyparser), as fields to check one by one.
 *
 * @param {Context} ctx
 * @returns {Record<string, unknown> | undefined}
 */
const bodyOf = (ctx) => /** @type {Record<string, unknown> | undefined} */ (ctx.request.body)

/**
 * Builds the site. Every option except `skip` goes to `guard()` unchanged; `/health` is
 * always skipped (no backend call).
 *
 * @param {import('@sallyport/koa').GuardOptions} [options]
 * @returns {{ app: import('koa'), gate: import('@sallyport/koa').GuardMiddleware }}
 */
export function createApp(options = {}) {
  const { skip = [], ...rest } = options
  const gate = guard({ ...rest, skip: ['/health', ...[skip].flat()] })

  const app = new Koa()
  const routes = router()

  routes.get('/health', (ctx) => {
    ctx.type = 'text'
    ctx.body = 'ok'
  })

  routes.get('/', (ctx) => {
    page(
      ctx,
      'Welcome',
      '<p>A tiny shop guarded by Sallyport. Browse the <a href="/products">products</a> or <a href="/login">sign in</a>.</p>',
    )
  })

  routes.get('/products', (ctx) => {
    const items = PRODUCTS.map((product) => `<li>${escapeHtml(product.name)} — €${product.price}</li>`).join('')
    page(ctx, 'Products', `<ul>${items}</ul>`)
  })

  routes.get('/api/products', (ctx) => {
    const decision = ctx.state.sallyport
    ctx.body = { products: PRODUCTS, sallyport: { verdict: decision?.verdict, source: decision?.source } }
  })

  routes.get('/login', (ctx) => {
    page(
      ctx,
      'Sign in',
      `<form method="post" action="/login">
<p><label>Email <input type="email" name="email" required></label></p>
<p><label>Password <input type="password" name="password" required></label></p>
<p><button>Sign in</button></p>
</form>`,
    )
  })

  // A risk checkpoint: koa-bodyparser runs first, so the extractor (which receives ctx) can read the email.
  routes.post(
    '/login',
    bodyParser({ enableTypes: ['form', 'json'], formLimit: '16kb', jsonLimit: '16kb' }),
    gate.checkpoint({ event: 'login', email: (ctx) => bodyOf(ctx)?.email }),
    (ctx) => {
      const field = bodyOf(ctx)?.email
      const email = typeof field === 'string' ? field : ''
      const json = ctx.is('json') === 'json'
      if (email === '') {
        ctx.status = 400
        if (json) ctx.body = { error: 'email_required' }
        else page(ctx, 'Sign in', '<p>Please enter your email. <a href="/login">Try again</a>.</p>')
        return
      }
      // This is a demo: any password signs you in. Your own check goes here.
      if (json) ctx.body = { ok: true, email, sallyport: ctx.state.sallyport?.verdict }
      else page(ctx, 'Signed in', `<p>Welcome back, ${escapeHtml(email)}.</p>`)
    },
  )

  // A malformed body is the client's mistake: answer 400 without logging a stack trace.
  app.use(async (ctx, next) => {
    try {
      await next()
    } catch (error) {
      const failure = /** @type {{ status?: unknown, statusCode?: unknown } | null | undefined} */ (error)
      const status = failure?.status ?? failure?.statusCode
      if (typeof status !== 'number' || !Number.isInteger(status) || status < 400 || status > 499) throw error
      ctx.status = status
      ctx.body = { error: status === 413 ? 'body_too_large' : 'bad_request' }
    }
  })
  // Whole-site bot protection first, then the routes.
  app.use(gate)
  app.use(routes.middleware())

  return { app, gate }
}

/**
 * Starts `app` on `host:port` (0 picks a free port).
 * @param {import('koa')} app
 * @param {{ port?: number, host?: string }} [options]
 * @returns {Promise<{ server: import('node:http').Server, url: string, close(): Promise<void> }>}
 */
export async function listen(app, { port = 0, host = '127.0.0.1' } = {}) {
  const server = createServer(app.callback())
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
  console.log(`Sallyport Koa example on ${site.url}/ (decisions: ${backend === undefined ? 'embedded local policies' : backend.name})`)
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
