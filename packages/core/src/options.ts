import type { BreakerOptions } from './breaker.js'
import type { CacheOptions } from './cache.js'
import { checkOptions } from './check-options.js'
import { compileTrust, type TrustProxy } from './client-ip.js'
import { invalidOption, SallyportError } from './errors.js'
import {
  ALWAYS_SENSITIVE_HEADERS,
  checkHeaderAccess,
  DEFAULT_SANITIZE_LIMITS,
  DEFAULT_SENSITIVE_HEADERS,
  HOP_BY_HOP_HEADERS,
  type SanitizeLimits,
} from './headers.js'
import { localPolicies, loggerShape } from './local-policies.js'
import { consoleLogger, type Logger, type WarningCode } from './logger.js'
import { badStaticPage, PAGE_URLS_ACCEPTED, pagesNeedHttps } from './respond.js'
import { type Shape, shape } from './shape.js'
import { compileSkip, type SkipRule, type SkipTest, STATIC_PATH_PREFIX } from './skip.js'
import { type Store, storeShape } from './store.js'
import {
  type Decision,
  type DecisionBackend,
  FAILURE_CLASSES,
  type FailureClass,
  type TrustFunction,
  VERDICTS,
  type Verdict,
} from './types.js'

/** A step-up hook for challenges: answer the request yourself, or return `'continue'` to let it through. */
export type ChallengeHook<Native> = (decision: Decision, request: Native) => unknown

export interface ChallengeOptions<Native> {
  /** Page HTML navigations are redirected to, with `redirect_url` and the backend's query. Defaults to the backend's hosted page, if any. */
  url?: string
  /** Step-up (2FA, CAPTCHA): runs instead of the redirect or the 403. */
  hook?: ChallengeHook<Native>
}

export interface DenyOptions {
  /** Block page HTML navigations are redirected to. Defaults to the backend's hosted page, if any, else a 403. */
  url?: string
}

/** One verdict for every failure, or one per failure class (unlisted classes allow). */
export type OnError = Verdict | Partial<Record<FailureClass, Verdict>>

export interface GateOptions<Native = unknown> {
  /** Decision backend, or several called in parallel (strictest verdict wins). Defaults to `localPolicies()`. */
  backend?: DecisionBackend | DecisionBackend[]
  /** Proxies to trust, as Express's `trust proxy` takes it. Defaults to the framework's own setting, else `false`. */
  trustProxy?: TrustProxy
  /** Header a trusted CDN puts the client IP in, e.g. `cf-connecting-ip`. Defaults to none. */
  clientIpHeader?: string
  /** Budget for the whole decision, retries included, in ms. Defaults to the backend's recommendation, else 300. */
  timeoutMs?: number
  /** Extra attempts on connect errors and 5xx, only inside the budget. Defaults to 1. */
  retries?: number
  /** Verdict when the backend fails. Defaults to `'allow'` (fail-open). */
  onError?: OnError
  /** `'monitor'` enforces allow and records what would have happened in `wouldBe`. Defaults to `'enforce'`. */
  mode?: 'enforce' | 'monitor'
  /** Requests that make no backend call, besides OPTIONS and static assets under `staticPaths`. Defaults to none. */
  skip?: SkipRule<Native> | SkipRule<Native>[]
  /**
   * Path prefixes the application serves files under (`['/assets', '/static']`): a GET or HEAD
   * there for a static file type (`.css`, `.js`, images, fonts, …) makes no backend call.
   * Elsewhere a file extension proves nothing (`/admin/users.css` may be a route), so it is
   * judged like any request. Defaults to none: every request but OPTIONS is judged.
   */
  staticPaths?: string[]
  /** Where challenges go. Defaults to the backend's hosted page, else `403 { error: 'challenge_required' }`. */
  challenge?: ChallengeOptions<Native>
  /** Where denials go. Defaults to the backend's hosted page for navigations, else a negotiated 403. */
  deny?: DenyOptions
  /** Called for a `review` verdict before the request continues. Defaults to none. */
  onReview?: (decision: Decision, request: Native) => unknown
  /** Called once per decision. A throwing hook is logged, never breaks the request. Defaults to none. */
  onDecision?: (decision: Decision, request: Native) => void
  /**
   * Header names never sent to a backend, even one that describes the client or that a backend
   * asks for, besides authorization, cookie and their kin and common API-key/CSRF headers
   * (`x-api-key`, `x-csrf-token`, …), which are always removed. Defaults to none.
   */
  sensitiveHeaders?: string[]
  /**
   * Query parameters backends receive in `input.path`, by exact name as decoded
   * (`['utm_source', 'page']`): the query carries what a site never meant for a vendor (OAuth
   * codes, reset tokens), so every other parameter is removed. Defaults to none: backends see
   * the path without its query.
   */
  forwardQuery?: string[]
  /** Hosts (with port, if any) allowed in `redirect_url` besides the request's own. When set, the request's Host must be one of them. Defaults to none. */
  redirectHosts?: string[]
  /** How long `onReview` and the challenge hook may run before Sallyport carries on, in ms. Defaults to 1000. */
  hookTimeoutMs?: number
  /** pino-compatible logger. Defaults to stderr. */
  logger?: Logger
  /** `false` silences every misconfiguration warning; or switch single codes off. Defaults to all on. */
  warnings?: boolean | Partial<Record<WarningCode, boolean>>
  /**
   * A circuit breaker per backend: after 5 failures in a row, or half of at least 20 calls in
   * 10 s, decisions take the fallback at once (`reason: 'circuit_open'`) until, after a 5 s
   * cool-down, one probe call succeeds. `false` turns it off. Defaults to on.
   */
  breaker?: false | BreakerOptions
  /** Reuse a backend's verdict for the same visitor for a while (see {@link CacheOptions}). Defaults to off. */
  cache?: CacheOptions
  /**
   * Where the default local engine keeps velocity counters and used challenges; share one
   * (e.g. `@sallyport/redis`) across instances. Defaults to a bounded in-memory store.
   */
  store?: Store
  /**
   * OpenTelemetry: a span per decision and metrics (decisions, backend latency, fallbacks,
   * breaker state) through `@opentelemetry/api` when it is installed. `false` turns it off;
   * `{ api }` passes the API object explicitly. Defaults to on when installed.
   */
  telemetry?: false | { api?: unknown }
}

export interface ResolvedOptions<Native> {
  backends: DecisionBackend[]
  trust: TrustFunction | undefined
  clientIpHeader: string | undefined
  timeoutMs: number
  retries: number
  onError: Record<FailureClass, Verdict>
  monitor: boolean
  skip: SkipTest<Native>
  challenge: ChallengeOptions<Native>
  deny: DenyOptions
  onReview: ((decision: Decision, request: Native) => unknown) | undefined
  onDecision: ((decision: Decision, request: Native) => void) | undefined
  sensitive: ReadonlySet<string>
  forwardQuery: ReadonlySet<string>
  limits: SanitizeLimits
  redirectHosts: string[]
  hookTimeoutMs: number
  logger: Logger
  disabledWarnings: ReadonlySet<string>
  breaker: false | BreakerOptions
  cache: CacheOptions | undefined
  telemetry: false | { api?: unknown }
}

export const DEFAULT_TIMEOUT_MS = 300
/** How option errors name the function the options were given to. */
const FACTORY = 'guard'

const fn = shape.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', 'a function')
const verdict = shape.enum(VERDICTS)
const httpUrl = shape
  .string()
  .refine((value) => {
    try {
      const { protocol } = new URL(value)
      return protocol === 'https:' || (protocol === 'http:' && !pagesNeedHttps())
    } catch {
      return false
    }
  })
  .describe('an http(s) URL (https when NODE_ENV=production)')
const backend = shape.custom<DecisionBackend>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as DecisionBackend).name === 'string' &&
    typeof (value as DecisionBackend).decide === 'function',
)
const headerName = shape.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/)
const queryName = shape.string().regex(/^[^\s=&?#]{1,256}$/)
const host = shape.string().regex(/^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i)
const skipRule = shape.union([shape.string().startsWith('/'), shape.instanceof(RegExp), fn])

/** Each option's shape and, for the error message, what it accepts. */
const schemas: Record<keyof GateOptions, [Shape, string]> = {
  backend: [shape.union([backend, shape.array(backend).min(1)]), 'a decision backend or a non-empty array of them'],
  trustProxy: [
    shape.union([shape.boolean(), shape.number().int().min(0), shape.string(), shape.array(shape.string()), fn]),
    'a boolean, a hop count, a range name, CIDR strings or a function, as Express `trust proxy` takes',
  ],
  clientIpHeader: [headerName, 'a header name such as "cf-connecting-ip"'],
  timeoutMs: [shape.number().int().min(1).max(60_000), 'an integer number of milliseconds from 1 to 60000'],
  retries: [shape.number().int().min(0).max(5), 'an integer from 0 to 5'],
  onError: [
    shape.union([verdict, shape.partialRecord(shape.enum(FAILURE_CLASSES), verdict)]),
    `a verdict (${VERDICTS.join(', ')}) or an object mapping ${FAILURE_CLASSES.join(', ')} to verdicts`,
  ],
  mode: [shape.enum(['enforce', 'monitor']), "'enforce' or 'monitor'"],
  skip: [shape.union([skipRule, shape.array(skipRule)]), 'a path starting with "/", a RegExp, a function, or an array of them'],
  staticPaths: [
    shape.array(shape.string().regex(STATIC_PATH_PREFIX)),
    'an array of paths such as "/assets", without dot segments or query',
  ],
  challenge: [
    shape.strictObject({ url: httpUrl.optional(), hook: fn.optional().describe('a function (decision, request)') }),
    '{ url?: an http(s) URL (https when NODE_ENV=production), hook?: a function }',
  ],
  deny: [shape.strictObject({ url: httpUrl.optional() }), '{ url?: an http(s) URL (https when NODE_ENV=production) }'],
  onReview: [fn, 'a function (decision, request)'],
  onDecision: [fn, 'a function (decision, request)'],
  sensitiveHeaders: [shape.array(headerName), 'an array of header names'],
  forwardQuery: [shape.array(queryName), 'an array of query parameter names such as "utm_source" (no "=", "&", "?", "#" or spaces)'],
  redirectHosts: [shape.array(host), 'an array of hosts such as "example.com" or "shop.example.com:8443"'],
  hookTimeoutMs: [shape.number().int().min(1).max(60_000), 'an integer number of milliseconds from 1 to 60000'],
  logger: [loggerShape, 'a pino-compatible logger with warn() and error()'],
  warnings: [
    shape.union([shape.boolean(), shape.record(shape.string().startsWith('SP_WARN_'), shape.boolean())]),
    'a boolean or { SP_WARN_…: boolean }',
  ],
  breaker: [
    shape.union([
      shape.literal(false),
      shape.strictObject({
        consecutiveFailures: shape.number().int().min(1).optional(),
        minimumCalls: shape.number().int().min(1).optional(),
        failureRate: shape.number().gt(0).max(1).optional().describe('a number above 0, at most 1'),
        windowMs: shape.number().int().min(100).optional(),
        cooldownMs: shape.number().int().min(1).optional(),
      }),
    ]),
    'false, or { consecutiveFailures?, minimumCalls?, failureRate? (0–1], windowMs?, cooldownMs? }',
  ],
  telemetry: [
    shape.union([shape.literal(false), shape.strictObject({ api: shape.unknown().optional() })]),
    'false or { api?: the @opentelemetry/api module }',
  ],
  store: [storeShape, 'a store with increment(), get() and delete() (e.g. new MemoryStore() or a @sallyport/redis store)'],
  cache: [
    shape.strictObject({
      ttlMs: shape
        .union([shape.number().int().min(0), shape.partialRecord(verdict, shape.number().int().min(0))])
        .optional()
        .describe('an integer number of ms (0 or more), or { allow?, challenge?, deny?, review? } of them'),
      key: fn.optional(),
      checkpoints: shape.boolean().optional(),
      maxEntries: shape.number().int().min(1).optional(),
      store: shape
        .custom<Store>(
          (value) =>
            typeof value === 'object' &&
            value !== null &&
            typeof (value as Store).getValue === 'function' &&
            typeof (value as Store).setValue === 'function',
        )
        .optional(),
    }),
    '{ ttlMs?: ms or { allow?, challenge?, deny?, review? }, key?: (input) => string, checkpoints?: boolean, maxEntries?: number, store?: a store with getValue() and setValue() }',
  ],
}

/** Every option optional, described by what it accepts; no other key. */
const gateShape = shape.strictObject(
  Object.fromEntries(Object.entries(schemas).map(([key, [option, accepted]]) => [key, option.optional().describe(accepted)])),
)

const ALL_WARNINGS: WarningCode[] = [
  'SP_WARN_XFF_UNTRUSTED',
  'SP_WARN_TRUST_ALL_PROXIES',
  'SP_WARN_COOKIE_REJECTED',
  'SP_WARN_BACKEND_REFUSED',
  'SP_WARN_EPHEMERAL_SECRET',
  'SP_WARN_LIST_UNREADABLE',
  'SP_WARN_POOL_SATURATED',
  'SP_WARN_ON_ERROR_OPEN',
  'SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER',
  'SP_WARN_CHECKPOINT_UNREAD',
]

/**
 * `backend: trustedAccounts` instead of `backend: trustedAccounts({ … })` is the commonest slip
 * with a backend: name the function and the fix rather than say what a backend is.
 */
function uncalledFactory(value: unknown): SallyportError | undefined {
  const factory = [value].flat().find((item) => typeof item === 'function') as ((...args: never[]) => unknown) | undefined
  if (factory === undefined) return undefined
  const fix =
    factory.name === '' ? 'you passed a function; call it to make the backend' : `you passed the factory; call it: ${factory.name}({...})`
  return new SallyportError('SP_INVALID_OPTION', `Invalid option \`backend\` for ${FACTORY}(): ${fix}.`, { option: 'backend' })
}

/** Validates every option and resolves defaults, once. Throws `SP_INVALID_OPTION` naming the option. */
export function resolveOptions<Native>(input: GateOptions<Native> | undefined): ResolvedOptions<Native> {
  if (typeof input === 'object' && input !== null && Object.hasOwn(input, 'backend')) {
    const factory = uncalledFactory(input.backend)
    if (factory !== undefined) throw factory
  }
  const options = checkOptions(FACTORY, gateShape, input === undefined ? {} : input) as GateOptions<Native>

  if (options.backend !== undefined && options.store !== undefined) {
    throw invalidOption(
      'store',
      'to be given to the backend that uses it (e.g. `localPolicies({ store })`) when `backend` is set',
      undefined,
      FACTORY,
    )
  }
  const logger = options.logger ?? consoleLogger
  const backends =
    options.backend === undefined
      ? [localPolicies({ logger, ...(options.store === undefined ? {} : { store: options.store }) })]
      : [options.backend].flat()
  const names = new Set<string>()
  for (const { name, pages } of backends) {
    if (names.has(name)) throw invalidOption('backend', `backends with distinct names (\`${name}\` appears twice)`, undefined, FACTORY)
    names.add(name)
    const badPage = badStaticPage(pages)
    if (badPage !== null)
      throw invalidOption(
        'backend',
        `hosted pages that are ${PAGE_URLS_ACCEPTED} (\`${name}\`'s ${badPage} page is not)`,
        undefined,
        FACTORY,
      )
  }
  for (const backend of backends) checkHeaderAccess(backend)
  const onError = Object.fromEntries(FAILURE_CLASSES.map((failure) => [failure, 'allow'])) as Record<FailureClass, Verdict>
  if (typeof options.onError === 'string') for (const failure of FAILURE_CLASSES) onError[failure] = options.onError
  else Object.assign(onError, options.onError)

  const warnings = options.warnings ?? true
  const disabledWarnings = new Set<string>(
    warnings === false
      ? ALL_WARNINGS
      : Object.entries(warnings === true ? {} : warnings)
          .filter(([, on]) => !on)
          .map(([code]) => code),
  )

  const timeouts = backends.map((backend) => backend.timeoutMs).filter((value) => value !== undefined)
  return {
    backends,
    trust: options.trustProxy === undefined ? undefined : compileTrust(options.trustProxy),
    clientIpHeader: options.clientIpHeader?.toLowerCase(),
    timeoutMs: options.timeoutMs ?? (timeouts.length > 0 ? Math.max(...timeouts) : DEFAULT_TIMEOUT_MS),
    retries: options.retries ?? 1,
    onError,
    monitor: options.mode === 'monitor',
    skip: compileSkip(options.skip, options.staticPaths),
    challenge: options.challenge ?? {},
    deny: options.deny ?? {},
    onReview: options.onReview,
    onDecision: options.onDecision,
    sensitive: new Set([
      ...ALWAYS_SENSITIVE_HEADERS,
      ...DEFAULT_SENSITIVE_HEADERS,
      ...HOP_BY_HOP_HEADERS,
      ...(options.sensitiveHeaders ?? []).map((name) => name.toLowerCase()),
    ]),
    forwardQuery: new Set(options.forwardQuery),
    limits: DEFAULT_SANITIZE_LIMITS,
    redirectHosts: (options.redirectHosts ?? []).map((value) => value.toLowerCase()),
    hookTimeoutMs: options.hookTimeoutMs ?? 1000,
    logger,
    disabledWarnings,
    breaker: options.breaker ?? {},
    cache: options.cache,
    telemetry: options.telemetry ?? {},
  }
}
