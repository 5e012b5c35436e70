import { type IncomingHttpHeaders, IncomingMessage, type ServerResponse } from 'node:http'
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
import { bodyStreamUnread, createGate, onResponseAbandoned, peerGone, readRequestBody } from '@sallyport/core'
import type { Request as ExpressRequest } from 'express'

declare global {
  namespace Express {
    interface Request {
      /** The Sallyport decision for this request, set before `next()`. */
      sallyport?: Decision
    }
  }
}

/**
 * The parts of an Express request Sallyport reads; Express 4 and 5 requests both fit. It bounds
 * the request type hooks receive, which is Express's own `Request` unless the app names another.
 */
export interface GuardRequest extends IncomingMessage {
  originalUrl?: string | undefined
  /** The parsed body, when a body parser ran first. */
  body?: unknown
  app?: { get(setting: string): unknown; settings?: Record<string, unknown> } | undefined
  res?: ServerResponse | undefined
  sallyport?: Decision | undefined
}

export type NextFunction = (error?: unknown) => void

/** `Req` is what hooks, `skip` functions and extractors receive. Defaults to Express's `Request`. */
export type GuardOptions<Req extends GuardRequest = ExpressRequest> = GateOptions<Req>

/**
 * Express middleware. It takes any request Sallyport can read, so Express 4 and 5 apps, routers
 * and apps with their own request types all accept it; the hooks are typed with `Req`.
 */
export type GuardHandler = (req: GuardRequest, res: ServerResponse, next: NextFunction) => void

export interface GuardMiddleware<Req extends GuardRequest = ExpressRequest> extends GuardHandler {
  /** Route middleware for a risk checkpoint (login, signup, checkout, …). Validated now. */
  checkpoint(spec: CheckpointSpec<Req>): GuardHandler
  /** Releases backend connection pools, for clean shutdown. */
  close(): Promise<void>
  /** The core gate, for advanced use. */
  readonly gate: Gate<Req>
}

/**
 * Where `req.sallyport` lives. Express moves every request onto its app's prototype
 * (`Object.setPrototypeOf(req, app.request)`), and V8 then builds a new hidden class for each
 * property added to that request: about 4 µs and a map allocation per request for one
 * `req.sallyport = decision`. So the property is an accessor on Express's shared `request`
 * object (the prototype right above `IncomingMessage.prototype`, the one Express invites
 * extensions on), which keeps the decision in a WeakMap. Reading and assigning
 * `req.sallyport` work as before, in every app and sub-app; a request Express never touched
 * simply gets an own property.
 */
const decisions = new WeakMap<object, Decision | undefined>()
const slot: PropertyDescriptor = {
  configurable: true,
  enumerable: false,
  get(this: object): Decision | undefined {
    return decisions.get(this)
  },
  set(this: object, value: Decision | undefined) {
    decisions.set(this, value)
  },
}

type ExpressApp = NonNullable<GuardRequest['app']>

/** What Sallyport needs to know of a request's prototype, worked out once per prototype. */
interface PrototypeFacts {
  readonly prototype: unknown
  /** `req.sallyport` is the accessor on this chain (an Express app's chain always gets one). */
  readonly hasSlot: boolean
  /** The app that owns this prototype (each Express app's own `request` object), if one does. */
  readonly app: ExpressApp | undefined
}

/**
 * The facts of the prototype seen last. Every read of an Express request misses V8's caches
 * (each request has a hidden class of its own), while its prototype is the same object for
 * every request of one app: what can be learnt from the prototype is learnt once.
 */
let lastFacts: PrototypeFacts = { prototype: undefined, hasSlot: false, app: undefined }

function factsOf(req: GuardRequest): PrototypeFacts {
  const prototype: unknown = Object.getPrototypeOf(req)
  if (prototype !== lastFacts.prototype) lastFacts = learn(prototype)
  return lastFacts
}

/** Installs the accessor on the chain once, and finds the app that owns the prototype. */
function learn(prototype: unknown): PrototypeFacts {
  let hasSlot = false
  let candidate: unknown = prototype
  while (candidate !== null && typeof candidate === 'object' && candidate !== IncomingMessage.prototype) {
    const parent: unknown = Object.getPrototypeOf(candidate)
    if (parent === IncomingMessage.prototype) {
      if (!Object.hasOwn(candidate, 'sallyport')) Object.defineProperty(candidate, 'sallyport', slot)
      hasSlot = Object.getOwnPropertyDescriptor(candidate, 'sallyport')?.set === slot.set
      break
    }
    candidate = parent
  }
  const ownsApp = prototype !== null && typeof prototype === 'object' && Object.hasOwn(prototype, 'app')
  return { prototype, hasSlot, app: ownsApp ? (prototype as { app?: ExpressApp }).app : undefined }
}

/** Sets `req.sallyport`: straight into the WeakMap when the accessor is on the request's chain. */
function record(req: GuardRequest, decision: Decision): void {
  if (factsOf(req).hasSlot && !Object.hasOwn(req, 'sallyport')) decisions.set(req, decision)
  else req.sallyport = decision
}

/** The app handling `req`: the one owning its prototype, else whatever the request carries. */
function appOf(req: GuardRequest): ExpressApp | undefined {
  return factsOf(req).app ?? req.app
}

/** What the core reads of an Express request: one object per request, methods on the prototype. */
class ExpressView<Req extends GuardRequest> implements RequestView<Req> {
  readonly native: Req
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string | undefined
  readonly encrypted: boolean
  readonly #res: ServerResponse
  // Reads of `req` are few on purpose: each one misses V8's caches (see `record`).
  constructor(req: Req, res: ServerResponse) {
    this.native = req
    this.method = req.method ?? 'GET'
    this.url = req.originalUrl ?? req.url ?? '/'
    this.headers = req.headers
    const socket = req.socket as TLSSocket
    this.remoteAddress = socket.remoteAddress
    this.encrypted = socket.encrypted === true
    this.#res = res
  }
  /** The parsed body, read only by checkpoints and the challenge form. */
  get body(): unknown {
    return this.native.body
  }
  /** Express's compiled `trust proxy` setting; read only when Sallyport has no `trustProxy` of its own. */
  get frameworkTrust(): TrustFunction | undefined {
    // `settings` inherits from a mounting app's, as `app.get()` would read it, without the call.
    const app = appOf(this.native)
    const trust = app?.settings === undefined ? app?.get('trust proxy fn') : app.settings['trust proxy fn']
    return typeof trust === 'function' ? (trust as TrustFunction) : undefined
  }
  responded(): boolean {
    return this.#res.headersSent || this.#res.writableEnded
  }
  readBody(limit: number): Promise<string | null> {
    return readRequestBody(this.native, limit)
  }
  bodyUnread(): boolean {
    return bodyStreamUnread(this.native)
  }
  clientGone(): boolean {
    return peerGone(this.native.socket)
  }
  onClientGone(listener: () => void): () => void {
    return onResponseAbandoned(this.#res, listener)
  }
}

/** Writes the cookies and any answer; `next` is the caller's to call, after this returns. */
function write(action: Action, decision: Decision, res: ServerResponse): void {
  for (const cookie of decision.setCookies) {
    // Already validated; a value Node still refuses is dropped rather than failing the request.
    try {
      res.appendHeader('set-cookie', cookie)
    } catch {}
  }
  if (action.type === 'redirect') {
    res.statusCode = action.status
    for (const [name, value] of Object.entries(action.headers)) res.setHeader(name, value)
    res.setHeader('location', action.location)
    res.end()
  } else if (action.type === 'respond') {
    res.statusCode = action.status
    for (const [name, value] of Object.entries(action.headers)) res.setHeader(name, value)
    res.end(action.body)
  }
}

/** Carries out an outcome. Express's `next` is called at most once, and never from inside a try. */
function carryOut(outcome: Outcome, req: GuardRequest, res: ServerResponse, next: NextFunction): void {
  const { decision, action } = outcome
  record(req, decision)
  if (action.type === 'none') return
  try {
    write(action, decision, res)
  } catch (error) {
    // Writing the response failed: hand it to Express's error handling, if nothing was sent.
    if (!res.headersSent) next(error)
    return
  }
  if (action.type === 'next') next()
  else if (action.type === 'error') next(action.error)
}

function handler<Req extends GuardRequest>(gate: Gate<Req>, checkpoint: CompiledCheckpoint<Req> | undefined): GuardHandler {
  return (req, res, next) => {
    // The request Express passes is the app's `Req`: the type parameter is only the app's name for it.
    const outcome = gate.decide(new ExpressView(req as Req, res), checkpoint)
    // Decided in process: answer in this tick, as if Sallyport were not there.
    if (!(outcome instanceof Promise)) {
      carryOut(outcome, req, res, next)
      return
    }
    let advanced = false
    const proceed: NextFunction = (error) => {
      if (advanced) return
      advanced = true
      next(error)
    }
    void outcome.then((settled) => {
      try {
        carryOut(settled, req, res, proceed)
      } catch (error) {
        // Only reached if Express's own `next` threw; hand it on once, if nothing was sent.
        if (!res.headersSent) proceed(error)
      }
    })
  }
}

/**
 * Sallyport for Express 4 and 5. With no options it runs the embedded local policy engine.
 * Options are validated now: a bad one throws a `SallyportError` naming it. Hooks receive
 * Express's `Request`; an app with a request type of its own names it: `guard<AppRequest>(…)`.
 */
export function guard<Req extends GuardRequest = ExpressRequest>(options?: GuardOptions<Req>): GuardMiddleware<Req> {
  const gate = createGate<Req>(options)
  const middleware = handler(gate, undefined) as GuardMiddleware<Req>
  Object.defineProperty(middleware, 'gate', { value: gate })
  middleware.checkpoint = (spec) => handler(gate, gate.checkpoint(spec))
  middleware.close = () => gate.close()
  return middleware
}

export type { CheckpointSpec, Decision, GateOptions, Verdict } from '@sallyport/core'
export { SallyportError } from '@sallyport/core'
