// One benchmark server per process, so the load generator never shares a core's event loop
// with the app it measures. Usage: node servers.mjs <kind> [upstream-url]; prints the port.
import { createServer } from 'node:http'
import { httpBackend, localPolicies } from '@sallyport/core'
import { guard as expressGuard } from '@sallyport/express'
import { guard as koaGuard } from '@sallyport/koa'
import express from 'express'
import Koa from 'koa'
import { Pool } from 'undici'

const [kind, upstream] = process.argv.slice(2)
const stats = { decisions: 0, bySource: {}, byReason: {} }
const quiet = { warn() {}, error() {} }
function onDecision(decision) {
  stats.decisions++
  stats.bySource[decision.source] = (stats.bySource[decision.source] ?? 0) + 1
  const reason = String(decision.reason)
  stats.byReason[reason] = (stats.byReason[reason] ?? 0) + 1
}
// Benchmarks 1 and 2 measure `guard()` as a user would add it (a quiet logger only keeps the
// output readable); the others count decisions too, to check what they decided.
const plain = { logger: quiet }
const common = { onDecision, logger: quiet, telemetry: false }

function expressApp(middleware) {
  const app = express()
  app.get('/__stats', (_req, res) => res.json(stats))
  if (middleware) app.use(middleware)
  app.get('/', (_req, res) => res.send('hello'))
  return app
}

function koaApp(middleware) {
  const app = new Koa()
  app.use(async (ctx, next) => {
    if (ctx.path === '/__stats') ctx.body = stats
    else await next()
  })
  if (middleware) app.use(middleware)
  app.use((ctx) => {
    ctx.body = 'hello'
  })
  return app.callback()
}

/** What a careful engineer would write by hand: one keep-alive request per page view. */
function idealRemote(url) {
  const target = new URL(url)
  const pool = new Pool(target.origin, { connections: 64 })
  return async (req, _res, next) => {
    try {
      const response = await pool.request({
        method: 'POST',
        path: target.pathname,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ ip: req.socket.remoteAddress, path: req.originalUrl, headers: req.headers }),
      })
      const reply = await response.body.json()
      stats.decisions++
      req.verdict = reply.verdict
    } catch {}
    next()
  }
}

/** A decision service that answers at once. */
function fastUpstream() {
  const body = JSON.stringify({ verdict: 'allow', reason: null })
  return (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  }
}

/** A decision service that accepts requests and never answers. */
function hangingUpstream() {
  return (req) => {
    req.resume()
  }
}

const handlers = {
  'express-bare': () => expressApp(),
  'express-guard': () => expressApp(expressGuard({ ...plain })),
  'koa-bare': () => koaApp(),
  'koa-guard': () => koaApp(koaGuard({ ...plain })),
  'express-ideal-remote': () => expressApp(idealRemote(upstream)),
  'express-guard-remote': () => expressApp(expressGuard({ ...common, backend: httpBackend({ url: upstream }), retries: 0 })),
  'express-guard-hanging': () =>
    expressApp(expressGuard({ ...common, backend: httpBackend({ url: upstream }), timeoutMs: 100, retries: 0, breaker: false })),
  'express-guard-breaker-open': () =>
    expressApp(
      expressGuard({
        ...common,
        backend: [httpBackend({ url: upstream, name: 'vendor' }), localPolicies({ logger: quiet })],
        timeoutMs: 100,
        retries: 0,
        breaker: { cooldownMs: 3_600_000 },
      }),
    ),
  // What benchmark 4's guarded app is measured against: the same app waiting out the same
  // 100 ms budget with no decision at all, the floor for any middleware with that budget.
  'express-wait-100': () =>
    expressApp((_req, _res, next) => {
      setTimeout(next, 100)
    }),
  // Below that: Node's own HTTP server waiting 100 ms, no framework at all. What it adds to
  // 100 ms at p99 is the machine's and the load generator's share alone.
  'node-wait-100': () => (_req, res) => {
    setTimeout(() => res.end('hello'), 100)
  },
  'upstream-fast': () => fastUpstream(),
  'upstream-hanging': () => hangingUpstream(),
}

const make = handlers[kind]
if (make === undefined) {
  console.error(`unknown kind ${kind}`)
  process.exit(2)
}
const server = createServer(make())
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port}\n`)
})
process.on('SIGTERM', () => process.exit(0))
