import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import {
  type Action,
  type CheckpointSpec,
  type CompiledCheckpoint,
  createGate,
  type Decision,
  type Gate,
  type GateOptions,
  onResponseAbandoned,
  type RequestView,
  readRequestBody,
  type TrustFunction,
} from '@gatehouse/core'

declare global {
  namespace Express {
    interface Request {
      /** The Gatehouse decision for this request, set before `next()`. */
      gatehouse?: Decision
    }
  }
}

/** The parts of an Express request Gatehouse reads; Express 4 and 5 requests both fit. */
export interface GuardRequest extends IncomingMessage {
  originalUrl?: string | undefined
  /** The parsed body, when a body parser ran first. */
  body?: Record<string, unknown> | undefined
  app?: { get(setting: string): unknown } | undefined
  res?: ServerResponse | undefined
  gatehouse?: Decision | undefined
}

export type NextFunction = (error?: unknown) => void

export type GuardOptions = GateOptions<GuardRequest>

export interface GuardMiddleware {
  (req: GuardRequest, res: ServerResponse, next: NextFunction): void
  /** Route middleware for a risk checkpoint (login, signup, checkout, …). Validated now. */
  checkpoint(spec: CheckpointSpec<GuardRequest>): (req: GuardRequest, res: ServerResponse, next: NextFunction) => void
  /** Releases backend connection pools, for clean shutdown. */
  close(): Promise<void>
  /** The core gate, for advanced use. */
  readonly gate: Gate<GuardRequest>
}

function view(req: GuardRequest, res: ServerResponse): RequestView<GuardRequest> {
  const frameworkTrust = req.app?.get('trust proxy fn')
  return {
    native: req,
    method: req.method ?? 'GET',
    url: req.originalUrl ?? req.url ?? '/',
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress,
    encrypted: (req.socket as TLSSocket).encrypted === true,
    frameworkTrust: typeof frameworkTrust === 'function' ? (frameworkTrust as TrustFunction) : undefined,
    body: req.body,
    responded: () => res.headersSent || res.writableEnded,
    readBody: (limit) => readRequestBody(req, limit),
    onClientGone: (listener) => onResponseAbandoned(res, listener),
  }
}

function apply(action: Action, decision: Decision, res: ServerResponse, next: NextFunction): void {
  if (action.type === 'none') return
  for (const cookie of decision.setCookies) {
    // Already validated; a value Node still refuses is dropped rather than failing the request.
    try {
      res.appendHeader('set-cookie', cookie)
    } catch {}
  }
  switch (action.type) {
    case 'next':
      next()
      return
    case 'error':
      next(action.error)
      return
    case 'redirect':
      res.statusCode = action.status
      for (const [name, value] of Object.entries(action.headers)) res.setHeader(name, value)
      res.setHeader('location', action.location)
      res.end()
      return
    case 'respond':
      res.statusCode = action.status
      for (const [name, value] of Object.entries(action.headers)) res.setHeader(name, value)
      res.end(action.body)
      return
  }
}

function handler(gate: Gate<GuardRequest>, checkpoint: CompiledCheckpoint<GuardRequest> | undefined) {
  return (req: GuardRequest, res: ServerResponse, next: NextFunction): void => {
    let advanced = false
    const proceed: NextFunction = (error) => {
      if (advanced) return
      advanced = true
      next(error)
    }
    gate
      .decide(view(req, res), checkpoint)
      .then(({ decision, action }) => {
        req.gatehouse = decision
        apply(action, decision, res, proceed)
      })
      .catch((error: unknown) => {
        // Only reached if writing the response failed; hand it to Express's error handling once.
        if (!res.headersSent) proceed(error)
      })
  }
}

/**
 * Gatehouse for Express 4 and 5. With no options it runs the embedded local policy engine.
 * Options are validated now: a bad one throws a `GatehouseError` naming it.
 */
export function guard(options?: GuardOptions): GuardMiddleware {
  const gate = createGate<GuardRequest>(options)
  const middleware = handler(gate, undefined) as GuardMiddleware
  Object.defineProperty(middleware, 'gate', { value: gate })
  middleware.checkpoint = (spec) => handler(gate, gate.checkpoint(spec))
  middleware.close = () => gate.close()
  return middleware
}

export type { CheckpointSpec, Decision, GateOptions, Verdict } from '@gatehouse/core'
export { GatehouseError } from '@gatehouse/core'
