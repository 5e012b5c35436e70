// A user's app, outside the monorepo, against the packed tarballs: it must typecheck with
// `tsc --strict` and run. The routes follow the README's quick starts.
import { type Decision, type DecisionBackend, localPolicies, SallyportError } from '@sallyport/core'
import { guard } from '@sallyport/express'
import { guard as koaGuard } from '@sallyport/koa'
import express from 'express'
import Koa from 'koa'

export function expressApp(decisions: Decision[]): express.Express {
  const app = express()
  app.set('trust proxy', 'loopback')
  const gate = guard({
    backend: localPolicies({ secret: 's'.repeat(32), logger: { warn() {}, error() {} } }),
    onDecision: (decision) => decisions.push(decision),
  })
  app.use(gate)
  app.post(
    '/login',
    express.urlencoded({ extended: false }),
    // Extractors get Express's own `Request` (`req.get`), from the consumer's @types/express.
    gate.checkpoint({ event: 'login', email: (req) => req.body?.email, deviceToken: (req) => req.get('x-device-token') }),
    (_req, res) => {
      res.send('Signed in')
    },
  )
  app.get('/', (req, res) => {
    res.json({ verdict: req.sallyport?.verdict ?? null })
  })
  return app
}

export function koaApp(): Koa {
  const app = new Koa()
  const gate = koaGuard({ logger: { warn() {}, error() {} } })
  app.use(gate)
  app.use((ctx) => {
    ctx.body = { verdict: ctx.state.sallyport?.verdict ?? null }
  })
  return app
}

/** A backend as a user writes one: the public types are enough. */
export const allowAll: DecisionBackend = {
  name: 'allow-all',
  decide: async () => ({ verdict: 'allow', reason: null }),
}

export function optionCode(): string | null {
  try {
    guard({ timeoutMs: 0 })
    return null
  } catch (error) {
    return error instanceof SallyportError ? error.code : 'not a SallyportError'
  }
}
