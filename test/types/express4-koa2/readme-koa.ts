/**
 * @types/express 4 and @types/koa 2, with `@koa/bodyparser`'s augmentation (`body?: any`): the
 * Koa README's snippet as written, `ctx.request.body?.email` included.
 */
import { guard } from '@sallyport/koa'
import Koa from 'koa'

declare module 'koa' {
  interface Request {
    // biome-ignore lint/suspicious/noExplicitAny: @koa/bodyparser declares it so
    body?: any
  }
}

const bodyParser = (): Koa.Middleware => async (_ctx, next) => next()

const app = new Koa()
const gate = guard({ trustProxy: 'loopback' })
const login = gate.checkpoint({ event: 'login', email: (ctx) => ctx.request.body?.email })

app.use(gate)
app.use(bodyParser())
app.use(async (ctx, next) => {
  if (ctx.method !== 'POST' || ctx.path !== '/login') return next()
  await login(ctx, async () => {
    ctx.body = { ok: true, verdict: ctx.state.sallyport.verdict }
  })
})
