/**
 * The documented Koa patterns under `tsc --strict`: hooks, `skip` functions and extractors
 * receive Koa's `Context`, with a body parser's augmentation of `ctx.request`. `koa` is
 * @types/koa 3 here (test/tsconfig.json) and @types/koa 2 in express4-koa2/tsconfig.json.
 */
import { guard } from '@sallyport/koa'
import Koa from 'koa'

const bodyParser = (): Koa.Middleware => async (_ctx, next) => next()
const bodyOf = (ctx: Koa.Context): Record<string, unknown> =>
  typeof ctx.request.body === 'object' && ctx.request.body !== null ? (ctx.request.body as Record<string, unknown>) : {}

// The package README's usage.
const app = new Koa()
app.proxy = true
app.maxIpsCount = 1
const gate = guard({ trustProxy: 'loopback' })
const login = gate.checkpoint({ event: 'login', email: (ctx) => bodyOf(ctx).email })

app.use(gate)
app.use(bodyParser())
app.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || ctx.path !== '/login') return next()
  await login(ctx, async () => {
    ctx.body = { ok: true, verdict: ctx.state.sallyport.verdict }
  })
})

// Hooks typed by hand with Koa's `Context`, and a challenge hook answering on `ctx`.
const audited = guard({
  skip: (ctx) => {
    // @ts-expect-error the context is Koa's, not `any`
    ctx.status = 'ok'
    return ctx.path === '/health'
  },
  onDecision: (decision, ctx: Koa.Context) => {
    console.info({ ip: decision.ip, verdict: decision.verdict, path: ctx.originalUrl })
  },
  challenge: {
    hook: (decision, ctx) => {
      if (ctx.accepts('html', 'json') === 'json') {
        ctx.status = 403
        ctx.body = { error: 'verification_required', reason: decision.reason }
      } else ctx.redirect('/verify')
    },
  },
})
app.use(audited)
app.use(
  audited.checkpoint({
    event: 'signup',
    email: (ctx) => bodyOf(ctx).email,
    deviceToken: (ctx) => ctx.get('x-device-token'),
  }),
)

// An app with its own context type says so once, and every hook gets it.
interface AppContext extends Koa.Context {
  user?: { id: string }
}
const own = guard<AppContext>({ onDecision: (decision, ctx) => console.info(ctx.user?.id, decision.verdict) })
app.use(own)

// Route middleware where a router's context carries `params`, as @koa/router's does.
type RouterMiddleware = Koa.Middleware<Koa.DefaultState, Koa.DefaultContext & { params: Record<string, string> }>
const routeStack: RouterMiddleware[] = [bodyParser(), gate.checkpoint({ event: 'login', email: (ctx) => bodyOf(ctx).email })]
void routeStack
