import type { IncomingHttpHeaders } from 'node:http'
import type { WarningCode } from './logger.js'

/** What Sallyport enforces, in one vocabulary whatever the backend calls it; least strict first. */
export const VERDICTS = ['allow', 'review', 'challenge', 'deny'] as const
export type Verdict = (typeof VERDICTS)[number]

/** How a backend call failed; `onError` maps each class to a verdict. */
export const FAILURE_CLASSES = ['timeout', 'network', 'server', 'client', 'invalid'] as const
export type FailureClass = (typeof FAILURE_CLASSES)[number]

/** How a checkpoint's attempt ended, as the app reports it. */
export const CHECKPOINT_STATUSES = ['attempted', 'succeeded', 'failed'] as const
export type CheckpointStatus = (typeof CHECKPOINT_STATUSES)[number]

/** A risk checkpoint (login, signup, checkout, …) as the backend sees it. */
export interface Checkpoint {
  event: string
  status: CheckpointStatus
  email?: string
  phone?: string
  deviceToken?: string
  transaction?: Record<string, unknown>
  metadata?: Record<string, string>
  /**
   * Set when the checkpoint asked to wait for complete signals: a backend that can report
   * partial enrichment may ask again once, after `delayMs`, if the deadline leaves room.
   */
  awaitCompleteSignals?: { delayMs: number }
}

/** What every backend sees of a request. Nothing in it is a secret. */
export interface DecisionInput {
  /** Resolved client IP; `null` when none could be trusted or parsed. */
  ip: string | null
  method: string
  /**
   * The requested path, without its query except the parameters named in the gate's
   * `forwardQuery` (as sent, in their order), and without a fragment.
   */
  path: string
  host: string | null
  /**
   * Lowercase names: the headers that describe the client (`CLIENT_HEADERS`: user agent,
   * `accept*`, client hints, fetch metadata, `origin`, the Referer without its query, …) and
   * those the backend names in {@link DecisionBackend.headers}. Credentials, cookies and the
   * gate's `sensitiveHeaders` are never in it.
   */
  headers: Record<string, string>
  cookieNames: string[]
  /** Value of a cookie the backend declared in `cookies`; `undefined` for any other. */
  cookie(name: string): string | undefined
  checkpoint: Checkpoint | null
}

/** What a backend returns; the core turns it into a {@link Decision}. */
export interface BackendVerdict {
  verdict: Verdict
  reason?: string | null
  requestId?: string | null
  /** `false` when the backend said its signals were partial. Defaults to `true`. */
  complete?: boolean
  signals?: Record<string, unknown>
  /** Raw Set-Cookie values the backend wants the visitor to receive. */
  setCookies?: string[]
}

/** Hosted pages a backend sends visitors to, and the query those pages need. */
export interface BackendPages {
  challenge?: string
  deny?: string
  /** Extra query parameters for the page; `redirect_url` is always added by the core. */
  query?(decision: Decision, input: DecisionInput): Record<string, string>
}

/** A request to a route a backend serves on the site itself (e.g. the self-hosted challenge). */
export interface ServedRequest {
  method: string
  /** Path without the query. */
  path: string
  query: URLSearchParams
  headers: IncomingHttpHeaders
  ip: string | null
  /** `scheme://host` the visitor may be sent back to, or `null` when the host is not trusted. */
  origin: string | null
  /** The request arrived over HTTPS (directly or through a trusted proxy). */
  secure: boolean
  /** Hosts besides `origin`'s that a visitor may be sent back to (the gate's `redirectHosts`). */
  redirectHosts: ReadonlySet<string>
  /** The url-encoded form body, at most `limit` bytes; `null` when absent or too large. */
  readForm(limit: number): Promise<URLSearchParams | null>
}

export type ServedResponse =
  | { status: number; headers: Record<string, string>; body: string; setCookies?: string[] }
  | { redirect: string; status: 302 | 303; setCookies?: string[] }

/** Routes under `prefix` that the middleware answers itself instead of deciding. */
export interface BackendRoutes {
  /** A path prefix such as `/.sallyport/`. */
  readonly prefix: string
  handle(request: ServedRequest): Promise<ServedResponse>
}

export interface DecideContext {
  /** Aborted when the deadline passes or the client goes away. */
  signal: AbortSignal
  /** `performance.now()` value by which the whole call, retries included, must be done. */
  deadline: number
  /** Extra attempts allowed on connect errors and 5xx, inside the deadline. */
  retries: number
}

export interface DecisionBackend {
  readonly name: string
  /**
   * Where the backend sends its calls, as `scheme://host[:port]` (`https://api.example.com`),
   * for log lines about failures. Never a path, query or credentials. Defaults to none.
   */
  readonly origin?: string
  /** The vendor's recommended budget, used when the user sets no `timeoutMs`. */
  readonly timeoutMs?: number
  /** Cookies this backend reads (through `input.cookie`) and may set on the visitor. */
  readonly cookies?: readonly string[]
  /**
   * Request headers this backend reads besides the ones every backend receives
   * (`CLIENT_HEADERS`), in any case, e.g. `['x-device-id']`. The gate's `sensitiveHeaders`
   * still remove them; naming a credential the gate always removes (`authorization`,
   * `x-api-key`, …) is refused at construction. `'all'`: every header but those, only for a
   * backend whose input never leaves the process, as the local engine's rules may test any
   * header; a backend that sends its input anywhere must name what it needs. Defaults to none.
   */
  readonly headers?: readonly string[] | 'all'
  readonly pages?: BackendPages
  /** Routes the backend serves on the site (its challenge page, say). */
  readonly routes?: BackendRoutes
  /**
   * `false`: the decision cache never reuses this backend's verdicts, because they depend on
   * more than the visitor and the kind of request (the local engine's path rules and velocity
   * counters must see every request). Defaults to `true`.
   */
  readonly cacheable?: boolean
  /**
   * `false`: this backend reads nothing of a checkpoint (its event, status, email, phone,
   * device token, transaction): it judges requests only. A gate whose backends all say so warns
   * once when a checkpoint is declared, as the checkpoint's signals would reach no one.
   * Defaults to `true`.
   */
  readonly checkpoints?: boolean
  /** Misconfiguration the backend noticed at construction; the gate logs each once. */
  readonly warnings?: ReadonlyArray<{ code: WarningCode; message: string }>
  /**
   * Judges one request. A backend that decides in process without waiting (the embedded
   * engine on its memory store) may return the verdict itself: then the gate arms no timer,
   * makes no abort signal and listens for no disconnect, and the adapter answers in the same
   * tick. Anything that waits returns a promise, raced against `ctx.deadline`.
   */
  decide(input: DecisionInput, ctx: DecideContext): BackendVerdict | Promise<BackendVerdict>
  close?(): Promise<void>
}

export interface Decision {
  /** What was enforced (monitor mode: always allow). */
  verdict: Verdict
  /** What the backend or fallback said. */
  wouldBe: Verdict
  /** Policy or rule that fired, or a fallback class such as `'timeout'`. */
  reason: string | null
  source: 'backend' | 'cache' | 'fallback' | 'skip'
  backend: string
  /**
   * The client IP the decision is about, resolved through trusted proxies only (what backends
   * got as `input.ip`); `null` when none could be trusted or parsed, when the client was gone
   * before it was judged, and after an internal error.
   */
  ip: string | null
  /** Vendor request id or validation id, for audit logs. */
  requestId: string | null
  latencyMs: number
  /** `false` when the backend said its signals were partial. */
  complete: boolean
  signals: Record<string, unknown>
  /** Validated Set-Cookie values forwarded to the client. */
  setCookies: string[]
}

/** `(address, hopIndex) => trusted?` — hop 0 is the socket peer. */
export type TrustFunction = (address: string, hop: number) => boolean

/**
 * The few fields the core reads from any framework. Adapters build one per request;
 * `native` is what hooks receive (Express `req`, Koa `ctx`).
 */
export interface RequestView<Native = unknown> {
  readonly native: Native
  readonly method: string
  /** Original URL: path and query as the client sent it. */
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string | undefined
  /** The socket is TLS. */
  readonly encrypted: boolean
  /** The framework's own trust-proxy setting, used when `trustProxy` is not set. */
  readonly frameworkTrust: TrustFunction | undefined
  /** The parsed body, when a body parser ran before Sallyport. */
  readonly body: unknown
  /**
   * No one has read the request's body stream yet: `body` holds nothing a parser made, even
   * where the framework puts an empty object there (Express 4). Read only at checkpoints,
   * to warn about a body parser placed after them. Defaults to "unread when `body` is undefined".
   */
  bodyUnread?(): boolean
  /** The response has started or ended: Sallyport must not write to it. */
  responded(): boolean
  /** Reads the raw request body, at most `limit` bytes; `null` when too large or already consumed. */
  readBody(limit: number): Promise<string | null>
  /** Calls `listener` if the client goes away; returns a function that stops listening. */
  onClientGone(listener: () => void): () => void
  /**
   * The client's connection is already gone: it sent a whole request and reset the
   * connection before the request was judged. Read only when `remoteAddress` is undefined.
   * Defaults to "not gone" when absent.
   */
  clientGone?(): boolean
}

/** What an adapter must do with the response. */
export type Action =
  | { type: 'next' }
  | { type: 'redirect'; location: string; status: 302 | 303; headers: Record<string, string> }
  | { type: 'respond'; status: number; headers: Record<string, string>; body: string }
  /** A hook already answered, or the client is gone: touch nothing. */
  | { type: 'none' }
  /** The checkpoint's data was invalid: hand the error (a 400) to the framework's error handling. */
  | { type: 'error'; error: Error }

export interface Outcome {
  decision: Decision
  action: Action
}
