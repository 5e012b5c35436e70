import { createHash } from 'node:crypto'
import type { Store } from '../store.js'
import type { DecisionInput } from '../types.js'
import type { RequestFacts } from './facts.js'
import type { VelocityKey, VelocityTest } from './types.js'

/** Hears about each store failure; the engine rate-limits what reaches the log. */
export type StoreFailure = (error: unknown) => void

/** Emails and custom keys may be personal data, and any length: the store sees a digest. */
function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22)
}

/**
 * One client's network for counting: an IPv4 address, or an IPv6 /64 — one subscriber gets
 * a whole /64 and can rotate through it at will, so counting single IPv6 addresses counts nothing.
 */
export function velocityNetwork(ip: string): string {
  if (!ip.includes(':')) return ip
  const groups = ip.split('::')
  const head = (groups[0] ?? '').split(':').filter((part) => part !== '')
  const tail = groups.length > 1 ? (groups[1] ?? '').split(':').filter((part) => part !== '') : []
  const full = [...head, ...Array(Math.max(0, 8 - head.length - tail.length)).fill('0'), ...tail]
  return `${full.slice(0, 4).join(':')}::/64`
}

/** The shared counting key of clients without a known IP; no IP or network looks like it. */
export const UNKNOWN_CLIENT = 'unknown-client'

function keyReader(key: VelocityKey): (input: DecisionInput) => string | null {
  // A client whose IP cannot be known is counted with every other such client: not
  // counting it would let a reset connection or a garbage X-Forwarded-For skip every limit.
  if (key === 'ip') return (input) => (input.ip === null ? UNKNOWN_CLIENT : velocityNetwork(input.ip))
  if (key === 'email') {
    return (input) => {
      const email = input.checkpoint?.email
      return email === undefined ? null : digest(email.trim().toLowerCase())
    }
  }
  return (input) => {
    let value: unknown
    try {
      value = key(input)
    } catch {
      // The user's key function failing is "no key": the condition does not match.
      return null
    }
    return typeof value === 'string' && value.length > 0 ? digest(value) : null
  }
}

/**
 * Adds one to a counter, giving up (with `null`) on a store error or when the decision's
 * signal aborts: a slow or broken store must not hold a request past its deadline.
 */
export async function countWithin(
  store: Store,
  key: string,
  windowMs: number,
  signal: AbortSignal,
  onFailure: StoreFailure,
): Promise<number | null> {
  if (signal.aborted) return null
  let stop: (() => void) | undefined
  const aborted = new Promise<null>((resolve) => {
    stop = () => resolve(null)
    signal.addEventListener('abort', stop, { once: true })
  })
  try {
    const result = await Promise.race([store.increment(key, windowMs), aborted])
    if (result === null) return null
    if (typeof result?.count !== 'number' || Number.isNaN(result.count)) throw new TypeError('The store returned no count.')
    return result.count
  } catch (error) {
    onFailure(error)
    return null
  } finally {
    if (stop !== undefined) signal.removeEventListener('abort', stop)
  }
}

/**
 * A velocity condition: counts each request that reaches it, per rule, checkpoint event
 * and key, and matches once the count goes above `limit`. Store keys are
 * `velocity:<rule>:<event>|<key>` (rule names hold no `:`, events no `|`).
 */
export function compileVelocity(
  test: VelocityTest,
  rule: string,
  store: Store,
  onFailure: StoreFailure,
): (facts: RequestFacts) => boolean | Promise<boolean> {
  const read = keyReader(test.key)
  const prefix = `velocity:${rule}:`
  const { limit, windowMs } = test
  return (facts) => {
    const value = read(facts.input)
    if (value === null) return false
    const key = `${prefix}${facts.input.checkpoint?.event ?? ''}|${value}`
    return countWithin(store, key, windowMs, facts.signal, onFailure).then((count) => count !== null && count > limit)
  }
}
