/**
 * Compile-time check that the adapters fit every supported framework's own types:
 * `tsc -p test/tsconfig.json` fails if `app.use(gate)` or a checkpoint stops type-checking.
 * Here both major versions share one program (as in a monorepo with both type packages); the
 * hooks' own types are checked per version in express.ts and koa.ts.
 */
import { guard as expressGuard } from '@sallyport/express'
import { guard as koaGuard } from '@sallyport/koa'
import express4 from 'express-4'
import express5 from 'express-5'
import Koa2 from 'koa-2'
import Koa3 from 'koa-3'

const gate = expressGuard()
const checkout = gate.checkpoint({ event: 'checkout', email: (req) => req.body?.email, onError: 'deny' })

const app4 = express4()
app4.use(gate)
app4.post('/checkout', express4.json(), checkout, (req, res) => {
  res.json({ verdict: req.sallyport?.verdict })
})

const app5 = express5()
app5.use(gate)
app5.post('/checkout', express5.json(), checkout, (req, res) => {
  res.json({ verdict: req.sallyport?.verdict })
})

const koaGate = koaGuard({ trustProxy: 'loopback' })
const koa2 = new Koa2()
koa2.use(koaGate)
koa2.use((ctx) => {
  ctx.body = { verdict: ctx.state.sallyport?.verdict }
})

const signup = koaGate.checkpoint({ event: 'signup', email: (ctx) => (ctx.request.body as { email?: unknown } | undefined)?.email })
koa2.use(signup)

const koa3 = new Koa3()
koa3.use(koaGate)
koa3.use(signup)
