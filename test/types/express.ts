/**
 * The documented Express patterns under `tsc --strict`: hooks, `skip` functions and extractors
 * receive Express's own `Request`. `express` is @types/express 5 here (test/tsconfig.json) and
 * @types/express 4 in express4-koa2/tsconfig.json, which maps the module name.
 */
import { guard } from '@sallyport/express'
import express from 'express'

// The package README's usage.
const app = express()
app.set('trust proxy', 'loopback')
const gate = guard()
app.use(gate)
app.post(
  '/login',
  express.urlencoded({ extended: false }),
  express.json(),
  gate.checkpoint({ event: 'login', email: (req) => req.body?.email }),
  (req, res) => res.send(`Signed in (${req.sallyport?.verdict})`),
)

// Hooks typed by hand with Express's `Request`, and a challenge hook answering with `req.res`.
const audited = guard({
  skip: (req) => {
    // @ts-expect-error the request is Express's, not `any`
    void req.notAnExpressProperty
    return req.path === '/health'
  },
  onDecision: (decision, req: express.Request) => {
    console.info({ ip: decision.ip, verdict: decision.verdict, path: req.originalUrl })
  },
  challenge: {
    hook: (decision, req) => {
      if (req.accepts(['html', 'json']) === 'json') req.res?.status(403).json({ error: 'verification_required', reason: decision.reason })
      else req.res?.redirect(303, '/verify')
    },
  },
})
app.use(audited)

// The tracenow-login example's extractors: a header through `req.get`.
app.post(
  '/signup',
  express.json(),
  gate.checkpoint({
    event: 'signup',
    email: (req) => req.body?.email,
    deviceToken: (req) => req.get('x-device-token'),
    challenge: (_decision, req) => req.res?.status(403).json({ error: 'verification_required' }),
  }),
  (req, res) => {
    res.status(201).json({ verdict: req.sallyport?.verdict })
  },
)

// An app with its own request type says so once, and every hook gets it.
interface AppRequest extends express.Request {
  user?: { id: string }
}
const own = guard<AppRequest>({ onDecision: (decision, req) => console.info(req.user?.id, decision.verdict) })
app.use(own)
app.post(
  '/checkout',
  express.json(),
  own.checkpoint({ event: 'checkout', metadata: (req) => ({ user: req.user?.id ?? '' }) }),
  (_req, res) => {
    res.end()
  },
)

// A router takes the middleware as it is.
const router = express.Router()
router.use(gate)
router.post('/login', gate.checkpoint({ event: 'login', email: (req) => req.body?.email }), (_req, res) => {
  res.end()
})
app.use('/account', router)
