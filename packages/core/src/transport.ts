import { setTimeout as delay } from 'node:timers/promises'
import { type Dispatcher, Pool } from 'undici'
import { ABORT_SOURCE, type AbortSource } from './abort.js'
import { GatehouseError } from './errors.js'
import type { DecideContext } from './types.js'

/** Why a decision's signal was aborted. */
export const ABORT_TIMEOUT = Symbol('gatehouse.timeout')
export const ABORT_CLIENT_GONE = Symbol('gatehouse.client-gone')

export interface TransportOptions {
  /** Largest reply body accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher (Agent, Pool, MockAgent) to use instead of Gatehouse's own pools. */
  dispatcher?: Dispatcher
  /** Keep-alive connections per backend origin. Defaults to 64. */
  connections?: number
}

export interface HttpRequest {
  method: 'GET' | 'POST'
  url: URL
  headers: Record<string, string>
  /** Serialized as JSON. */
  json?: unknown
}

export interface HttpReply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  setCookies: string[]
  /** How many attempts the reply took. */
  attempts: number
}

export const DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024
/** An attempt with less time than this left is not worth starting. */
const MIN_ATTEMPT_MS = 10
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'])

/** The error a backend call ends with when the signal was aborted. */
export function abortError(reason: unknown, cause?: unknown): GatehouseError {
  if (reason === ABORT_CLIENT_GONE) {
    return new GatehouseError('GH_CLIENT_GONE', 'The client went away before the decision was made.', { cause })
  }
  return GatehouseError.backend('timeout', 'The decision backend did not answer within the deadline.', { cause })
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  return errorCode((error as { cause?: unknown }).cause)
}

/** What aborts this call: Gatehouse's own {@link AbortSource} when the gate made `ctx`, else `ctx.signal`. */
function abortOf(ctx: DecideContext): AbortSource | AbortSignal {
  const source = (ctx as { [ABORT_SOURCE]?: () => AbortSource })[ABORT_SOURCE]
  return typeof source === 'function' ? source.call(ctx) : ctx.signal
}

/**
 * A small HTTP client for decision backends: undici keep-alive pools per origin, the caller's
 * deadline for the whole exchange (connect, headers and every byte of the body), a bounded
 * body, and `ctx.retries` jittered retries on connect errors and 5xx while the deadline leaves room.
 */
export class Transport {
  readonly #pools = new Map<string, Dispatcher>()
  readonly #external: Dispatcher | undefined
  readonly #maxResponseSize: number
  readonly #connections: number

  constructor(options: TransportOptions = {}) {
    this.#external = options.dispatcher
    this.#maxResponseSize = options.maxResponseSize ?? DEFAULT_MAX_RESPONSE_SIZE
    this.#connections = options.connections ?? 64
  }

  #dispatcher(origin: string): Dispatcher {
    if (this.#external) return this.#external
    let pool = this.#pools.get(origin)
    if (pool === undefined) {
      // undici enforces the size limit as the body streams in, and ends the connection past it.
      pool = new Pool(origin, {
        connections: this.#connections,
        keepAliveTimeout: 30_000,
        pipelining: 1,
        maxResponseSize: this.#maxResponseSize,
      })
      this.#pools.set(origin, pool)
    }
    return pool
  }

  async request(request: HttpRequest, ctx: DecideContext): Promise<HttpReply> {
    const payload = request.json === undefined ? undefined : JSON.stringify(request.json)
    const headers: Record<string, string> = { accept: 'application/json', ...request.headers }
    if (payload !== undefined) headers['content-type'] = 'application/json'
    const abort = abortOf(ctx)
    let attempt = 0
    for (;;) {
      attempt++
      try {
        const reply = await this.#once(request, headers, payload, abort)
        if (reply.status >= 500 && this.#mayRetry(attempt, ctx)) {
          await this.#backoff(ctx)
          continue
        }
        reply.attempts = attempt
        return reply
      } catch (error) {
        if (abort.aborted) throw abortError(abort.reason, error)
        if (error instanceof GatehouseError) throw error
        const code = errorCode(error)
        if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw tooLarge(this.#maxResponseSize)
        if (code !== undefined && RETRYABLE_CODES.has(code) && this.#mayRetry(attempt, ctx)) {
          await this.#backoff(ctx)
          continue
        }
        throw GatehouseError.backend('network', `The decision backend could not be reached (${code ?? 'error'}).`, {
          cause: error,
        })
      }
    }
  }

  #mayRetry(attempt: number, ctx: DecideContext): boolean {
    return attempt <= ctx.retries && ctx.deadline - performance.now() > MIN_ATTEMPT_MS * 3
  }

  async #backoff(ctx: DecideContext): Promise<void> {
    const room = ctx.deadline - performance.now() - MIN_ATTEMPT_MS
    const wait = Math.max(0, Math.min(5 + Math.random() * 20, room / 3))
    try {
      await delay(wait, undefined, { signal: ctx.signal, ref: false })
    } catch (error) {
      throw abortError(ctx.signal.reason, error)
    }
  }

  async #once(
    request: HttpRequest,
    headers: Record<string, string>,
    payload: string | undefined,
    signal: AbortSource | AbortSignal,
  ): Promise<HttpReply> {
    const { url } = request
    const dispatcher = this.#dispatcher(url.origin)
    const response = await dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: request.method,
      headers,
      body: payload ?? null,
      signal,
    })
    const body = response.body
    try {
      const declared = Number(response.headers['content-length'])
      if (declared > this.#maxResponseSize) throw tooLarge(this.#maxResponseSize)
      // Gatehouse's own pools enforce the limit themselves; a dispatcher passed in may not.
      const text = dispatcher === this.#external ? await this.#readBounded(body) : await body.text()
      const cookies = response.headers['set-cookie']
      return {
        status: response.statusCode,
        headers: response.headers,
        body: text,
        setCookies: cookies === undefined ? [] : Array.isArray(cookies) ? cookies : [cookies],
        attempts: 1,
      }
    } finally {
      if (!body.readableEnded) {
        // Destroying an unread undici body emits 'error'; unheard, it would crash the app.
        body.on('error', () => {})
        body.destroy()
      }
    }
  }

  async #readBounded(body: AsyncIterable<Buffer>): Promise<string> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > this.#maxResponseSize) throw tooLarge(this.#maxResponseSize)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks, size).toString('utf8')
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(pools.map((pool) => pool.close()))
  }
}

function tooLarge(limit: number): GatehouseError {
  return GatehouseError.backend('invalid', `The decision backend's reply is larger than ${limit} bytes.`)
}

/** Parses a reply body as JSON; anything else is an `invalid` failure, never a verdict. */
export function parseJson(reply: HttpReply): unknown {
  try {
    return JSON.parse(reply.body)
  } catch (error) {
    throw GatehouseError.backend('invalid', 'The decision backend replied with something that is not JSON.', {
      status: reply.status,
      cause: error,
    })
  }
}

/** Turns a non-2xx reply into the failure class it stands for. */
export function statusError(reply: HttpReply, backend: string): GatehouseError {
  const retryAfterHeader = reply.headers['retry-after']
  const retryAfter = typeof retryAfterHeader === 'string' ? Number(retryAfterHeader) : Number.NaN
  const details = {
    status: reply.status,
    ...(Number.isFinite(retryAfter) ? { retryAfter } : {}),
  }
  if (reply.status >= 500) {
    return GatehouseError.backend('server', `${backend} answered HTTP ${reply.status}.`, details)
  }
  if (reply.status >= 400) {
    return GatehouseError.backend('client', `${backend} refused the request with HTTP ${reply.status}.`, details)
  }
  return GatehouseError.backend('invalid', `${backend} answered with unexpected HTTP ${reply.status}.`, details)
}
