// What koa-bodyparser's types declare (`body?: unknown`); express4-koa2/ has `@koa/bodyparser`'s `any`.
import 'koa'

declare module 'koa' {
  interface Request {
    body?: unknown
  }
}
