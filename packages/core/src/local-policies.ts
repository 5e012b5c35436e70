import { resolve } from 'node:path'
import { CLEARANCE_COOKIE, challengeOptionShapes, createChallengeService } from './challenge/index.js'
import { checkOptions } from './check-options.js'
import { invalidOption } from './errors.js'
import { consoleLogger, type Logger, type WarningCode } from './logger.js'
import { type CompiledRule, compileBuiltRule, compileRules, evaluate } from './policies/compile.js'
import type { CompileEnv } from './policies/conditions.js'
import { defaultRules } from './policies/defaults.js'
import { RequestFacts } from './policies/facts.js'
import { parseRange } from './policies/ip-set.js'
import { compileEntries, fileList, inlineList, type ListHandle, type ListStatus, type NamedList } from './policies/lists.js'
import { listSource, NAME } from './policies/schema.js'
import type { ListSource, Rule } from './policies/types.js'
import type { Eventually } from './same-tick.js'
import { type Shape, shape } from './shape.js'
import { MemoryStore, type Store, storeShape } from './store.js'
import type { BackendVerdict, DecideContext, DecisionBackend, DecisionInput } from './types.js'

export interface LocalPoliciesOptions {
  /**
   * The rules, as TypeScript objects or parsed JSON; see POLICIES.md. Setting them
   * replaces the defaults: spread `defaultRules` to keep them. Defaults to `defaultRules`.
   */
  rules?: readonly Rule[]
  /** Named lists of IPs, CIDR ranges or domains, inline or in files, for `{ list: name }`. Defaults to none. */
  lists?: Record<string, ListSource>
  /** Where velocity counters and used challenges are kept. Defaults to a bounded in-memory store. */
  store?: Store
  /**
   * HMAC secret for challenge clearances (at least 32 characters). Defaults to `SALLYPORT_SECRET`,
   * else a random one made once per process and shared by every engine without a secret (with a
   * warning). Whatever the secrets, engines in one process accept each other's clearances.
   */
  secret?: string
  /** Proof-of-work size of the self-hosted challenge. Defaults to the challenge's own default. */
  difficulty?: number
  /** How long a solved challenge clears its visitor, in ms. Defaults to the challenge's own default (30 minutes). */
  clearanceTtlMs?: number
  /** IPs or CIDR ranges always allowed, before every rule. Defaults to none. */
  allowIps?: string[]
  /** IPs or CIDR ranges denied, before every rule but `allowIps`. Defaults to none. */
  denyIps?: string[]
  /** User agents denied, before every rule but the IP lists: a RegExp, or a case-insensitive substring. Defaults to none. */
  denyUserAgents?: Array<string | RegExp>
  /** Where list reloads and store failures are reported at run time. Defaults to stderr. */
  logger?: Logger
}

/** The embedded engine: a decision backend that also serves its challenge and reports on its lists. */
export interface LocalPoliciesBackend extends DecisionBackend {
  /** What a named list holds now, and whether its file could be read; `undefined` for an unknown name. */
  listStatus(name: string): ListStatus | undefined
}

/** Anything with `warn()` and `error()`, own or inherited (pino's are on its prototype). */
export const loggerShape = shape.custom<Logger>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Logger).warn === 'function' &&
    typeof (value as Logger).error === 'function',
)

const ips = shape.array(shape.string()).optional().describe('an array of IP addresses or CIDR ranges')
const optionsShape = shape.strictObject({
  rules: shape.array(shape.unknown()).optional().describe('an array of rules'),
  lists: shape.record(shape.string(), shape.unknown()).optional().describe('an object of named lists'),
  store: storeShape.optional().describe('a store with increment(), get() and delete()'),
  ...challengeOptionShapes,
  allowIps: ips,
  denyIps: ips,
  denyUserAgents: shape
    .array(shape.union([shape.string().regex(/\S/), shape.instanceof(RegExp)]))
    .optional()
    .describe('RegExps or non-blank strings'),
  logger: loggerShape.optional().describe('a pino-compatible logger with warn() and error()'),
} satisfies Record<keyof LocalPoliciesOptions, Shape>)

function validate(input: LocalPoliciesOptions): void {
  checkOptions('localPolicies', optionsShape, input)
  for (const key of ['allowIps', 'denyIps'] as const) {
    input[key]?.forEach((entry) => {
      if (parseRange(entry.trim()) === null) throw invalidOption(key, `IP addresses or CIDR ranges (got ${JSON.stringify(entry)})`)
    })
  }
}

function openLists(sources: Record<string, ListSource>, logger: Logger, problems: string[], opened: Map<string, NamedList>): void {
  for (const [name, source] of Object.entries(sources)) {
    const option = `lists.${name}`
    if (!NAME.test(name)) throw invalidOption(option, 'a list name of letters, digits, "_", "." or "-" (at most 64)')
    const result = listSource.safeParse(source)
    if (!result.success) throw invalidOption(option, 'an array of entries, or { file, reloadIntervalMs? }', result.error)
    if (Array.isArray(source)) {
      const compiled = compileEntries(source as readonly string[], (index) => {
        throw invalidOption(`${option}[${index}]`, `an IP address, a CIDR range or a domain (got ${JSON.stringify(source[index])})`)
      })
      opened.set(name, inlineList(compiled))
      continue
    }
    const { file, reloadIntervalMs } = source as { file: string; reloadIntervalMs?: number }
    const list = fileList(resolve(file), reloadIntervalMs ?? 5000, (message) => {
      try {
        logger.warn({ code: 'SP_WARN_LIST_UNREADABLE', list: name }, `List \`${name}\`: ${message}`)
      } catch {}
    })
    opened.set(name, list)
    const problem = list.loadNow()
    if (problem !== null) problems.push(`List \`${name}\`: ${problem}`)
  }
}

/** Store failures are reported at most once a minute: a store that is down fails every request. */
function storeFailureReporter(logger: Logger): (error: unknown) => void {
  let lastAt = Number.NEGATIVE_INFINITY
  let suppressed = 0
  return (error) => {
    const now = Date.now()
    if (now - lastAt < 60_000) {
      suppressed++
      return
    }
    lastAt = now
    try {
      logger.error(
        { code: 'SP_STORE_FAILED', err: error, suppressed },
        'The store failed; velocity conditions count as not matching until it recovers.',
      )
    } catch {}
    suppressed = 0
  }
}

/**
 * The embedded policy engine: no vendor account, no network. Rules are checked in
 * priority order and the first match decides; its name is the decision's reason. A
 * challenge sends the visitor to the self-hosted proof-of-work page, and a solved
 * challenge clears them past the challenge rules. See POLICIES.md.
 */
export function localPolicies(input: LocalPoliciesOptions = {}): LocalPoliciesBackend {
  validate(input)
  const logger = input.logger ?? consoleLogger
  const ownStore = input.store === undefined
  const store = input.store ?? new MemoryStore()
  const service = createChallengeService({
    store,
    ...(input.secret === undefined ? {} : { secret: input.secret }),
    ...(input.difficulty === undefined ? {} : { difficulty: input.difficulty }),
    ...(input.clearanceTtlMs === undefined ? {} : { clearanceTtlMs: input.clearanceTtlMs }),
  })

  const lists = new Map<string, NamedList>()
  const problems: string[] = []
  let rules: CompiledRule[]
  try {
    openLists(input.lists ?? {}, logger, problems, lists)
    const env: Omit<CompileEnv, 'rule'> = {
      lists: lists as ReadonlyMap<string, ListHandle>,
      store,
      onStoreFailure: storeFailureReporter(logger),
    }
    const built: CompiledRule[] = []
    const taken = new Map<string, string>()
    if (input.allowIps !== undefined && input.allowIps.length > 0) {
      built.push(compileBuiltRule('allow-ip', 'allow', { ip: input.allowIps }, 'allowIps', env))
      taken.set('allow-ip', '`allowIps`')
    }
    if (input.denyIps !== undefined && input.denyIps.length > 0) {
      built.push(compileBuiltRule('deny-ip', 'deny', { ip: input.denyIps }, 'denyIps', env))
      taken.set('deny-ip', '`denyIps`')
    }
    if (input.denyUserAgents !== undefined && input.denyUserAgents.length > 0) {
      built.push(compileBuiltRule('deny-user-agent', 'deny', { userAgent: input.denyUserAgents }, 'denyUserAgents', env))
      taken.set('deny-user-agent', '`denyUserAgents`')
    }
    rules = [...built, ...compileRules(input.rules ?? defaultRules, 'rules', env, taken)]
  } catch (error) {
    for (const list of lists.values()) list.close()
    void service.close()
    throw error
  }

  const warnings: Array<{ code: WarningCode; message: string }> = [...service.warnings]
  if (problems.length > 0) warnings.push({ code: 'SP_WARN_LIST_UNREADABLE', message: problems.join(' ') })
  const isCleared = service.isCleared.bind(service)

  return {
    name: 'local',
    timeoutMs: 50,
    // Path rules and velocity counters must see every request: never reused from the decision cache.
    cacheable: false,
    cookies: [CLEARANCE_COOKIE],
    // Rules may test any header and nothing here leaves the process: every header but the
    // sensitive ones. The query stays out all the same: no rule reads it.
    headers: 'all',
    pages: { challenge: service.pagePath },
    routes: service.routes,
    warnings,
    // The answer comes without a promise unless a rule waits on the store: the gate, and the
    // adapter after it, can answer in the same tick.
    decide: (decisionInput: DecisionInput, ctx: DecideContext): Eventually<BackendVerdict> =>
      evaluate(rules, new RequestFacts(decisionInput, ctx, isCleared)),
    listStatus: (name) => lists.get(name)?.status(),
    async close() {
      for (const list of lists.values()) list.close()
      await service.close()
      if (ownStore) await store.close?.()
    },
  }
}
