import { setTimeout as delay } from 'node:timers/promises'
import type { Dispatcher, Pool } from 'undici'
import { ABORT_CLIENT_GONE, AbortSource, abortError, abortOf, CONNECTION_WAIT, type ConnectionWaitListener, onAbort } from './deadline.js'
import { SallyportError } from './errors.js'
import type { DecideContext } from './types.js'

export interface TransportOptions {
  /** Largest reply body accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher (Agent, Pool, MockAgent) to use instead of Sallyport's own pools. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections per backend origin. A call that finds them all busy waits for one
   * inside its deadline; one still waiting at the deadline takes the fallback with reason
   * `pool_saturated`, which is not held against the backend. Defaults to 128.
   */
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
/**
 * Connections per backend origin: at a vendor's usual 50–150 ms, enough for about a thousand
 * decisions a second, more than one Node process serves with a remote call on every request.
 */
export const DEFAULT_CONNECTIONS = 128
/** An attempt with less time than this left is not worth starting. */
const MIN_ATTEMPT_MS = 10
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_CLOSED'])

/**
 * undici's Pool, loaded by the first Transport that needs Sallyport's own pools: a gate whose
 * backends make no HTTP call (the embedded default), or bring their own dispatcher, never
 * loads undici.
 */
let PoolClass: typeof Pool | undefined
let loadingPool: Promise<void> | undefined

function loadPool(): Promise<void> {
  loadingPool ??= import('undici').then(
    (undici) => {
      PoolClass = undici.Pool
    },
    (error: unknown) => {
      loadingPool = undefined
      const why = error instanceof Error ? error.message : String(error)
      throw SallyportError.backend('network', `Sallyport could not load undici, its HTTP client: ${why}`, { cause: error })
    },
  )
  return loadingPool
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string') return code
  return errorCode((error as { cause?: unknown }).cause)
}

interface Waiter {
  resolve(): void
}

/**
 * The connections of one pool, handed out one call at a time. A call waits here, not in
 * undici's queue, so a decision whose deadline passes while it waits is dropped without a
 * request ever being sent; and a call already sent is abandoned, not aborted, when its
 * deadline passes: aborting it would destroy its connection, and against a backend that
 * hangs every call would then pay for a new TCP connection. An abandoned call finishes in
 * the background (or at the pool's own timeouts) and gives its connection back.
 */
class Connections {
  readonly #size: number
  #free: number
  readonly #waiting: Waiter[] = []

  constructor(size: number) {
    this.#size = size
    this.#free = size
  }

  /** Calls under way, abandoned ones included. */
  get busy(): number {
    return this.#size - this.#free
  }

  /** `undefined` when a connection was free at once; else a promise that rejects if `signal` aborts first. */
  acquire(signal: AbortSource | AbortSignal): Promise<void> | undefined {
    if (this.#free > 0) {
      this.#free--
      return undefined
    }
    if (signal.aborted) return Promise.reject(abortError(signal.reason))
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          stop()
          resolve()
        },
      }
      const stop = onAbort(signal, () => {
        const index = this.#waiting.indexOf(waiter)
        if (index >= 0) this.#waiting.splice(index, 1)
        reject(abortError(signal.reason))
      })
      this.#waiting.push(waiter)
    })
  }

  release(): void {
    const next = this.#waiting.shift()
    if (next === undefined) this.#free++
    else next.resolve()
  }
}

/** How long a call abandoned at its deadline may keep its connection before it is ended. */
const ABANDONED_CALL_LIMIT_MS = 10_000

/**
 * One exchange on a connection of Sallyport's own pool. Past the decision's deadline the call
 * is abandoned, not aborted (see Connections), for at most ABANDONED_CALL_LIMIT_MS: a backend
 * that trickles a reply forever cannot keep its connection. A client that left is different:
 * nobody needs the answer, so the call ends at once.
 */
class Call {
  /** What undici listens to: aborted only when the client leaves or the limit passes. */
  readonly source = new AbortSource()
  readonly #decision: AbortSource | AbortSignal
  readonly #connections: Connections
  readonly #stopListening: () => void
  #limit: NodeJS.Timeout | undefined

  constructor(decision: AbortSource | AbortSignal, connections: Connections) {
    this.#decision = decision
    this.#connections = connections
    this.#stopListening = onAbort(decision, () => this.#decisionAborted())
  }

  #decisionAborted(): void {
    const reason = this.#decision.reason
    if (reason === ABORT_CLIENT_GONE) this.source.abort(reason)
    else {
      this.#limit = setTimeout(() => this.source.abort(reason), ABANDONED_CALL_LIMIT_MS)
      this.#limit.unref()
    }
  }

  #end(): void {
    this.#stopListening()
    clearTimeout(this.#limit)
    this.#connections.release()
  }

  readonly ended = (reply: HttpReply): HttpReply => {
    this.#end()
    return reply
  }

  readonly failed = (error: unknown): never => {
    this.#end()
    throw error
  }
}
/** How long `close()` lets calls under way finish before it ends their connections. */
const CLOSE_GRACE_MS = 1000

/**
 * A small HTTP client for decision backends: undici keep-alive pools per origin, the caller's
 * deadline for the whole exchange (connect, headers and every byte of the body), a bounded
 * body, and `ctx.retries` jittered retries on connect errors and 5xx while the deadline leaves room.
 */
export class Transport {
  readonly #pools = new Map<string, { pool: Dispatcher; connections: Connections }>()
  readonly #external: Dispatcher | undefined
  readonly #maxResponseSize: number
  readonly #connections: number

  constructor(options: TransportOptions = {}) {
    this.#external = options.dispatcher
    this.#maxResponseSize = options.maxResponseSize ?? DEFAULT_MAX_RESPONSE_SIZE
    this.#connections = options.connections ?? DEFAULT_CONNECTIONS
    // Loading starts now, in the background, so that the first call finds undici loaded
    // instead of spending its deadline on it. A failure here is the first call's to report.
    if (this.#external === undefined) loadPool().catch(() => {})
  }

  /** Sallyport's own keep-alive pool for `origin`, with its connections; `undefined` with a dispatcher passed in. */
  #pool(origin: string): { pool: Dispatcher; connections: Connections } | undefined {
    if (this.#external) return undefined
    let entry = this.#pools.get(origin)
    if (entry === undefined) {
      // undici enforces the size limit as the body streams in, and ends the connection past it.
      const pool = new (PoolClass as typeof Pool)(origin, {
        connections: this.#connections,
        keepAliveTimeout: 30_000,
        pipelining: 1,
        maxResponseSize: this.#maxResponseSize,
      })
      entry = { pool, connections: new Connections(this.#connections) }
      this.#pools.set(origin, entry)
    }
    return entry
  }

  /** The request's headers with Accept, and Content-Type when there is a body. */
  #headersFor(request: HttpRequest, withBody: boolean): Record<string, string> {
    return withBody
      ? { accept: 'application/json', ...request.headers, 'content-type': 'application/json' }
      : { accept: 'application/json', ...request.headers }
  }

  async request(request: HttpRequest, ctx: DecideContext): Promise<HttpReply> {
    const payload = request.json === undefined ? undefined : JSON.stringify(request.json)
    const headers = this.#headersFor(request, payload !== undefined)
    const abort = abortOf(ctx)
    let attempt = 0
    for (;;) {
      attempt++
      try {
        const reply = await this.#once(request, headers, payload, abort, ctx)
        if (reply.status >= 500 && this.#mayRetry(attempt, ctx)) {
          await this.#backoff(ctx)
          continue
        }
        reply.attempts = attempt
        return reply
      } catch (error) {
        // An error that already says the deadline passed (or the client left) is passed on as it is.
        if (abort.aborted) {
          const aborted = abortError(abort.reason)
          throw error === aborted ? aborted : abortError(abort.reason, error)
        }
        if (error instanceof SallyportError) throw error
        const code = errorCode(error)
        if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') throw tooLarge(this.#maxResponseSize)
        if (code !== undefined && RETRYABLE_CODES.has(code) && this.#mayRetry(attempt, ctx)) {
          await this.#backoff(ctx)
          continue
        }
        throw SallyportError.backend('network', `The decision backend could not be reached (${code ?? 'error'}).`, {
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

  #once(
    request: HttpRequest,
    headers: Record<string, string>,
    payload: string | undefined,
    signal: AbortSource | AbortSignal,
    ctx: DecideContext,
  ): Promise<HttpReply> {
    // A call made before undici has finished loading (see the constructor) waits for it. Like
    // a wait for a connection, the wait is local: the backend never saw the call, so the gate
    // is told, and a deadline that passes meanwhile is not held against the backend.
    if (PoolClass === undefined && this.#external === undefined) {
      const listener = CONNECTION_WAIT in ctx ? (ctx as unknown as ConnectionWaitListener) : undefined
      listener?.[CONNECTION_WAIT](true)
      return loadPool().then(
        () => {
          listener?.[CONNECTION_WAIT](false)
          return this.#once(request, headers, payload, signal, ctx)
        },
        (error: unknown) => {
          listener?.[CONNECTION_WAIT](false)
          throw error
        },
      )
    }
    // Read from the URL on every call: a caller may change it between calls.
    const { url } = request
    const origin = url.origin
    const path = url.pathname + url.search
    const own = this.#pool(origin)
    if (own === undefined) return this.#exchange(this.#external as Dispatcher, origin, path, request, headers, payload, signal)
    if (signal.aborted) return Promise.reject(abortError(signal.reason))
    const waiting = own.connections.acquire(signal)
    if (waiting === undefined) return this.#send(own, origin, path, request, headers, payload, signal)
    const listener = CONNECTION_WAIT in ctx ? (ctx as unknown as ConnectionWaitListener) : undefined
    listener?.[CONNECTION_WAIT](true)
    return waiting.then(() => {
      listener?.[CONNECTION_WAIT](false)
      return this.#send(own, origin, path, request, headers, payload, signal)
    })
  }

  /** Sends on a connection already taken from `own`; gives it back when the exchange ends. */
  #send(
    own: { pool: Dispatcher; connections: Connections },
    origin: string,
    path: string,
    request: HttpRequest,
    headers: Record<string, string>,
    payload: string | undefined,
    signal: AbortSource | AbortSignal,
  ): Promise<HttpReply> {
    const call = new Call(signal, own.connections)
    const exchange = this.#exchange(own.pool, origin, path, request, headers, payload, call.source).then(call.ended, call.failed)
    // The gate hands its own contexts an AbortSource and races the deadline itself: the
    // exchange goes back as it is. A caller's own AbortSignal gets a promise that rejects
    // the moment the signal aborts, while the call goes on in the background.
    if (signal instanceof AbortSource) return exchange
    return new Promise<HttpReply>((resolve, reject) => {
      const stopListening = onAbort(signal, () => reject(abortError(signal.reason)))
      exchange.then(
        (reply) => {
          stopListening()
          resolve(reply)
        },
        (error: unknown) => {
          stopListening()
          reject(error)
        },
      )
    })
  }

  async #exchange(
    dispatcher: Dispatcher,
    origin: string,
    path: string,
    request: HttpRequest,
    headers: Record<string, string>,
    payload: string | undefined,
    signal: AbortSource | AbortSignal | null,
  ): Promise<HttpReply> {
    const response = await dispatcher.request({ origin, path, method: request.method, headers, body: payload ?? null, signal })
    const body = response.body
    try {
      const declared = Number(response.headers['content-length'])
      if (declared > this.#maxResponseSize) throw tooLarge(this.#maxResponseSize)
      // Sallyport's own pools enforce the limit themselves; a dispatcher passed in may not.
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

  /**
   * Closes the pools. Calls still under way get a short grace to finish, then their
   * connections are ended: an abandoned call to a backend that hangs would otherwise hold
   * `close()` until undici's own timeouts.
   */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()]
    this.#pools.clear()
    await Promise.all(
      pools.map(async ({ pool, connections }) => {
        if (connections.busy === 0) return pool.close()
        let timer: NodeJS.Timeout | undefined
        const grace = new Promise<false>((resolve) => {
          timer = setTimeout(resolve, CLOSE_GRACE_MS, false)
        })
        const closed = await Promise.race([pool.close().then(() => true), grace])
        clearTimeout(timer)
        if (!closed) await pool.destroy()
      }),
    )
  }
}

function tooLarge(limit: number): SallyportError {
  return SallyportError.backend('invalid', `The decision backend's reply is larger than ${limit} bytes.`)
}

/** Parses a reply body as JSON; anything else is an `invalid` failure, never a verdict. */
export function parseJson(reply: HttpReply): unknown {
  try {
    return JSON.parse(reply.body)
  } catch (error) {
    throw SallyportError.backend('invalid', 'The decision backend replied with something that is not JSON.', {
      status: reply.status,
      cause: error,
    })
  }
}

/** Turns a non-2xx reply into the failure class it stands for. */
export function statusError(reply: HttpReply, backend: string): SallyportError {
  const retryAfterHeader = reply.headers['retry-after']
  const retryAfter = typeof retryAfterHeader === 'string' ? Number(retryAfterHeader) : Number.NaN
  const details = {
    status: reply.status,
    ...(Number.isFinite(retryAfter) ? { retryAfter } : {}),
  }
  if (reply.status >= 500) {
    return SallyportError.backend('server', `${backend} answered HTTP ${reply.status}.`, details)
  }
  if (reply.status >= 400) {
    return SallyportError.backend('client', `${backend} refused the request with HTTP ${reply.status}.`, details)
  }
  return SallyportError.backend('invalid', `${backend} answered with unexpected HTTP ${reply.status}.`, details)
}
