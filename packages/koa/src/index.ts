import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type {
  Action,
  CheckpointSpec,
  CompiledCheckpoint,
  Decision,
  Gate,
  GateOptions,
  Outcome,
  RequestView,
  TrustFunction,
} from '@sallyport/core'
import { bodyStreamUnread, compileTrust, createGate, onResponseAbandoned, peerGone, readRequestBody } from '@sallyport/core'
import type { Context } from 'koa'

/**
 * The parts of a Koa context Sallyport reads; Koa 2 and 3 contexts both fit. It bounds the
 * context type hooks receive, which is Koa's own `Context` unless the app names another.
 */
export interface GuardContext {
  req: IncomingMessage
  res: ServerResponse
  originalUrl: string
  state: Record<string, unknown> & { sallyport?: Decision | undefined }
  app: { proxy?: boolean; maxIpsCount?: number }
  /**
   * `body` is the parsed body, when a body parser ran first (they declare it `unknown` or `any`).
   * `object &` keeps Koa's own `Request`, which has no `body` without a parser, assignable.
   */
  request: object & { body?: unknown }
  body?: unknown
  respond?: boolean | undefined
}

export type Next = () => Promise<unknown>

/** `Ctx` is what hooks, `skip` functions and extractors receive. Defaults to Koa's `Context`. */
export type GuardOptions<Ctx extends GuardContext = Context> = GateOptions<Ctx>

/**
 * Koa middleware. It takes any context Sallyport can read, so Koa 2 and 3, routers and apps
 * with their own context types all accept it; the hooks are typed with `Ctx`.
 */
export type GuardHandler = (ctx: GuardContext, next: Next) => Promise<void>

export interface GuardMiddleware<Ctx extends GuardContext = Context> extends GuardHandler {
  /** Route middleware for a risk checkpoint (login, signup, checkout, …). Validated now. */
  checkpoint(spec: CheckpointSpec<Ctx>): GuardHandler
  /** Releases backend connection pools, for clean shutdown. */
  close(): Promise<void>
  /** The core gate, for advanced use. */
  readonly gate: Gate<Ctx>
}

const trustCache = new WeakMap<object, { proxy: boolean; max: number; trust: TrustFunction }>()

/**
 * Koa's `app.proxy` and `app.maxIpsCount` as a trust function, so the chain is walked from
 * the right like Express does (Koa's own `ctx.ip` takes the leftmost entry, which a client chooses).
 */
function koaTrust(app: GuardContext['app']): TrustFunction {
  const proxy = app.proxy === true
  const max = app.maxIpsCount ?? 0
  const cached = trustCache.get(app)
  if (cached !== undefined && cached.proxy === proxy && cached.max === max) return cached.trust
  const trust = !proxy ? compileTrust(false) : max > 0 ? compileTrust(max) : compileTrust(true)
  trustCache.set(app, { proxy, max, trust })
  return trust
}

/** What the core reads of a Koa context: one object per request, methods on the prototype. */
class KoaView<Ctx extends GuardContext> implements RequestView<Ctx> {
  readonly native: Ctx
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string | undefined
  readonly encrypted: boolean
  readonly body: unknown
  /** A body an earlier middleware set is not an answer to this decision; only a change is. */
  readonly #bodyBefore: unknown
  constructor(ctx: Ctx) {
    const { req } = ctx
    this.native = ctx
    this.method = req.method ?? 'GET'
    this.url = ctx.originalUrl
    this.headers = req.headers
    this.remoteAddress = req.socket.remoteAddress
    this.encrypted = (req.socket as TLSSocket).encrypted === true
    this.body = ctx.request.body
    this.#bodyBefore = ctx.body
  }
  get frameworkTrust(): TrustFunction {
    return koaTrust(this.native.app)
  }
  /** A Koa hook answers by setting `ctx.body`; a raw one by writing to `ctx.res`. */
  responded(): boolean {
    const ctx = this.native
    return ctx.res.headersSent || ctx.res.writableEnded || ctx.respond === false || ctx.body !== this.#bodyBefore
  }
  readBody(limit: number): Promise<string | null> {
    return readRequestBody(this.native.req, limit)
  }
  bodyUnread(): boolean {
    return bodyStreamUnread(this.native.req)
  }
  clientGone(): boolean {
    return peerGone(this.native.req.socket)
  }
  onClientGone(listener: () => void): () => void {
    return onResponseAbandoned(this.native.res, listener)
  }
}

/** Koa writes the response after the middleware chain; set it on the context. */
function write(action: Action, decision: Decision, ctx: GuardContext & KoaWritable): void {
  for (const cookie of decision.setCookies) {
    // Already validated; a value Node still refuses is dropped rather than failing the request.
    try {
      ctx.append('Set-Cookie', cookie)
    } catch {}
  }
  if (action.type === 'redirect') {
    ctx.set(action.headers)
    ctx.status = action.status
    ctx.set('Location', action.location)
    ctx.body = ''
  } else if (action.type === 'respond') {
    ctx.status = action.status
    ctx.set(action.headers)
    ctx.body = action.body
  }
}

interface KoaWritable {
  append(field: string, value: string): void
  set(field: string | Record<string, string>, value?: string): void
  status: number
  body: unknown
}

const DONE: Promise<void> = Promise.resolve()

/** Carries out an outcome; returns what Koa waits on (the rest of the chain when allowed). */
function carryOut(outcome: Outcome, ctx: GuardContext, next: Next): Promise<void> {
  const { decision, action } = outcome
  ctx.state.sallyport = decision
  if (action.type === 'none') {
    // A hook answered, or the client left: Koa must not write over it.
    if (ctx.res.headersSent || ctx.res.writableEnded) ctx.respond = false
    return DONE
  }
  if (action.type === 'error') return Promise.reject(action.error)
  write(action, decision, ctx as GuardContext & KoaWritable)
  return action.type === 'next' ? (next() as Promise<void>) : DONE
}

function handler<Ctx extends GuardContext>(gate: Gate<Ctx>, checkpoint: CompiledCheckpoint<Ctx> | undefined): GuardHandler {
  return (context, next) => {
    // The context Koa passes is the app's `Ctx`: the type parameter is only the app's name for it.
    const ctx = context as Ctx
    let outcome: Outcome | Promise<Outcome>
    try {
      outcome = gate.decide(new KoaView(ctx), checkpoint)
      // Decided in process: go on down the chain in this tick, with no extra promise.
      if (!(outcome instanceof Promise)) return carryOut(outcome, ctx, next)
    } catch (error) {
      return Promise.reject(error)
    }
    return outcome.then((settled) => carryOut(settled, ctx, next))
  }
}

/**
 * Sallyport for Koa 2 and 3. With no options it runs the embedded local policy engine.
 * Options are validated now: a bad one throws a `SallyportError` naming it. Hooks receive Koa's
 * `Context`; an app with a context type of its own names it: `guard<AppContext>(…)`.
 */
export function guard<Ctx extends GuardContext = Context>(options?: GuardOptions<Ctx>): GuardMiddleware<Ctx> {
  const gate = createGate<Ctx>(options)
  const middleware = handler(gate, undefined) as GuardMiddleware<Ctx>
  Object.defineProperty(middleware, 'gate', { value: gate })
  middleware.checkpoint = (spec) => handler(gate, gate.checkpoint(spec))
  middleware.close = () => gate.close()
  return middleware
}

export type { CheckpointSpec, Decision, GateOptions, Verdict } from '@sallyport/core'
export { SallyportError } from '@sallyport/core'
