import { invalidOption } from '../errors.js'
import type { Store } from '../store.js'
import type { Checkpoint } from '../types.js'
import { inconsistentBrowserHeaders, isNavigation, missingBrowserHeaders } from './browser.js'
import type { RequestFacts } from './facts.js'
import { type IpRange, IpSet, parseRange } from './ip-set.js'
import { type CompiledList, DomainSet, EMPTY_LIST, type ListHandle, normalizeDomain } from './lists.js'
import { asList, compilePaths, compilePatterns, type TextTest } from './patterns.js'
import { accepted } from './schema.js'
import type { CheckpointTest, Condition, HeaderTest, ListRef, Pattern, SignalTest } from './types.js'
import { compileVelocity, type StoreFailure } from './velocity.js'

/** A compiled condition. Only velocity answers asynchronously; everything else answers at once. */
export type Matcher = (facts: RequestFacts) => boolean | Promise<boolean>

export interface CompileEnv {
  readonly lists: ReadonlyMap<string, ListHandle>
  readonly store: Store
  /** The rule being compiled: velocity counters are per rule. */
  readonly rule: string
  readonly onStoreFailure: StoreFailure
}

const ALWAYS: Matcher = () => true

function allOf(matchers: readonly Matcher[]): Matcher {
  const [only] = matchers
  if (matchers.length === 1 && only !== undefined) return only
  const rest = async (facts: RequestFacts, from: number): Promise<boolean> => {
    for (let index = from; index < matchers.length; index++) if (!(await (matchers[index] as Matcher)(facts))) return false
    return true
  }
  return (facts) => {
    for (let index = 0; index < matchers.length; index++) {
      const result = (matchers[index] as Matcher)(facts)
      if (result === false) return false
      if (result !== true) return result.then((ok) => ok && rest(facts, index + 1))
    }
    return true
  }
}

function anyOf(matchers: readonly Matcher[]): Matcher {
  const [only] = matchers
  if (matchers.length === 1 && only !== undefined) return only
  const rest = async (facts: RequestFacts, from: number): Promise<boolean> => {
    for (let index = from; index < matchers.length; index++) if (await (matchers[index] as Matcher)(facts)) return true
    return false
  }
  return (facts) => {
    for (let index = 0; index < matchers.length; index++) {
      const result = (matchers[index] as Matcher)(facts)
      if (result === true) return true
      if (result !== false) return result.then((ok) => ok || rest(facts, index + 1))
    }
    return false
  }
}

function negate(matcher: Matcher): Matcher {
  return (facts) => {
    const result = matcher(facts)
    return typeof result === 'boolean' ? !result : result.then((ok) => !ok)
  }
}

function patternsAt(patterns: Pattern | readonly Pattern[], path: string, part: string): TextTest {
  try {
    return compilePatterns(patterns)
  } catch (error) {
    throw invalidOption(path, `${accepted(part)}; a regex source did not compile`, error)
  }
}

/** A named list, or inline entries compiled here (every inline entry must be usable). */
function resolveList(ref: ListRef, path: string, env: CompileEnv, kind: 'ip' | 'domain'): ListHandle {
  if (!Array.isArray(ref)) {
    const name = (ref as { list: string }).list
    const handle = env.lists.get(name)
    if (handle === undefined) {
      const known = [...env.lists.keys()]
      throw invalidOption(
        `${path}.list`,
        `the name of a list declared in \`lists\` (${known.length === 0 ? 'none are' : known.join(', ')})`,
      )
    }
    return handle
  }
  const entries = ref as readonly string[]
  let list: CompiledList = EMPTY_LIST
  if (kind === 'ip') {
    const ranges: IpRange[] = []
    entries.forEach((entry, index) => {
      const parsed = parseRange(entry.trim())
      if (parsed === null) throw invalidOption(`${path}[${index}]`, `an IP address or CIDR range (got ${JSON.stringify(entry)})`)
      ranges.push(...parsed)
    })
    list = { ...EMPTY_LIST, ips: new IpSet(ranges) }
  } else {
    const domains = new Set<string>()
    entries.forEach((entry, index) => {
      const domain = normalizeDomain(entry.trim())
      if (domain === null) throw invalidOption(`${path}[${index}]`, `a domain such as "mailinator.com" (got ${JSON.stringify(entry)})`)
      domains.add(domain)
    })
    list = { ...EMPTY_LIST, domains: new DomainSet(domains) }
  }
  return { current: list }
}

function ipTest(ref: ListRef, path: string, env: CompileEnv): Matcher {
  const handle = resolveList(ref, path, env, 'ip')
  return (facts) => {
    const ip = facts.ip
    return ip !== null && handle.current.ips.has(ip)
  }
}

function emailDomainTest(ref: ListRef, path: string, env: CompileEnv): Matcher {
  const handle = resolveList(ref, path, env, 'domain')
  return (facts) => {
    const email = facts.input.checkpoint?.email
    if (email === undefined) return false
    const at = email.lastIndexOf('@')
    if (at < 0) return false
    let domain = email
      .slice(at + 1)
      .trim()
      .toLowerCase()
    if (domain.endsWith('.')) domain = domain.slice(0, -1)
    return domain.length > 0 && handle.current.domains.has(domain)
  }
}

function headerTest(test: HeaderTest, path: string): Matcher {
  const name = test.name.toLowerCase()
  const present = test.present ?? (test.matches === undefined ? true : undefined)
  const matches = test.matches === undefined ? undefined : patternsAt(test.matches, `${path}.matches`, 'header')
  return (facts) => {
    const value = facts.input.headers[name]
    const sent = value !== undefined && value.trim().length > 0
    if (present !== undefined && sent !== present) return false
    return matches === undefined || (sent && matches(value as string))
  }
}

function checkpointTest(test: CheckpointTest): Matcher {
  if (typeof test === 'boolean') return (facts) => (facts.input.checkpoint !== null) === test
  let events: Set<string> | undefined
  let statuses: Set<string> | undefined
  if (typeof test === 'string' || Array.isArray(test)) {
    events = new Set(asList(test as string | readonly string[]))
  } else {
    const spec = test as Exclude<CheckpointTest, boolean | string | readonly string[]>
    if (spec.event !== undefined) events = new Set(asList(spec.event))
    if (spec.status !== undefined) statuses = new Set<string>(asList(spec.status))
  }
  return (facts) => {
    const checkpoint = facts.input.checkpoint
    if (checkpoint === null) return false
    return (events === undefined || events.has(checkpoint.event)) && (statuses === undefined || statuses.has(checkpoint.status))
  }
}

function signalReader(field: string): (checkpoint: Checkpoint) => unknown {
  const [head, ...rest] = field.split('.')
  if (head === 'email' || head === 'phone' || head === 'deviceToken') return (checkpoint) => checkpoint[head]
  return (checkpoint) => {
    let value: unknown = head === 'metadata' ? checkpoint.metadata : checkpoint.transaction
    for (const key of rest) {
      if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined
      value = (value as Record<string, unknown>)[key]
    }
    return value
  }
}

const NUMERIC = /^\s*-?\d+(?:\.\d+)?\s*$/

function signalTest(test: SignalTest, path: string): Matcher {
  const read = signalReader(test.field)
  const { above, below } = test
  const present = test.present ?? (test.matches === undefined && above === undefined && below === undefined ? true : undefined)
  const matches = test.matches === undefined ? undefined : patternsAt(test.matches, `${path}.matches`, 'signal')
  return (facts) => {
    const checkpoint = facts.input.checkpoint
    const value = checkpoint === null ? undefined : read(checkpoint)
    const has = value !== undefined && value !== null && value !== ''
    if (present !== undefined && has !== present) return false
    if (matches !== undefined && !((typeof value === 'string' || typeof value === 'number') && matches(String(value)))) return false
    if (above === undefined && below === undefined) return true
    const number = typeof value === 'number' ? value : typeof value === 'string' && NUMERIC.test(value) ? Number(value) : Number.NaN
    if (Number.isNaN(number)) return false
    return (above === undefined || number > above) && (below === undefined || number < below)
  }
}

/**
 * Compiles a validated condition. The keys of one object are ANDed: plain tests first,
 * then nested conditions, then velocity, so a counter only counts requests that passed
 * every other test of its object.
 */
export function compileCondition(condition: Condition | undefined, path: string, env: CompileEnv): Matcher {
  if (condition === undefined) return ALWAYS
  const first: Matcher[] = []
  const nested: Matcher[] = []
  const last: Matcher[] = []
  const c = condition
  if (c.ip !== undefined) first.push(ipTest(c.ip, `${path}.ip`, env))
  if (c.method !== undefined) {
    const methods = new Set(asList(c.method).map((method) => method.toUpperCase()))
    first.push((facts) => methods.has(facts.input.method.toUpperCase()))
  }
  if (c.path !== undefined) {
    let test: ReturnType<typeof compilePaths>
    try {
      test = compilePaths(c.path)
    } catch (error) {
      throw invalidOption(`${path}.path`, `${accepted('path')}; a regex source did not compile`, error)
    }
    first.push((facts) => test(facts.path, facts.loweredPath))
  }
  if (c.navigation !== undefined) {
    const wanted = c.navigation
    first.push((facts) => isNavigation(facts.input.method, facts.input.headers) === wanted)
  }
  if (c.checkpoint !== undefined) first.push(checkpointTest(c.checkpoint))
  if (c.userAgent !== undefined) {
    const test = patternsAt(c.userAgent, `${path}.userAgent`, 'userAgent')
    first.push((facts) => test(facts.userAgent))
  }
  if (c.browserHeaders !== undefined) {
    const test = c.browserHeaders === 'missing' ? missingBrowserHeaders : inconsistentBrowserHeaders
    first.push((facts) => test(facts.input.headers))
  }
  if (c.header !== undefined) first.push(headerTest(c.header, `${path}.header`))
  if (c.emailDomain !== undefined) first.push(emailDomainTest(c.emailDomain, `${path}.emailDomain`, env))
  if (c.signal !== undefined) first.push(signalTest(c.signal, `${path}.signal`))
  if (c.all !== undefined) nested.push(allOf(c.all.map((child, index) => compileCondition(child, `${path}.all[${index}]`, env))))
  if (c.any !== undefined) nested.push(anyOf(c.any.map((child, index) => compileCondition(child, `${path}.any[${index}]`, env))))
  if (c.not !== undefined) nested.push(negate(compileCondition(c.not, `${path}.not`, env)))
  if (c.velocity !== undefined) last.push(compileVelocity(c.velocity, env.rule, env.store, env.onStoreFailure))
  const matchers = [...first, ...nested, ...last]
  return matchers.length === 0 ? ALWAYS : allOf(matchers)
}
