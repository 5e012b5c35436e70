import { randomBytes } from 'node:crypto'

/** Whether a clearance value was issued by one challenge service, for this binding, and is still valid. */
export type ClearanceCheck = (value: string, binding: string, nowMs: number) => boolean

/**
 * What the challenge services of one process share. Two gates in one app each run a local
 * engine, but the challenge page and its verify route are answered by the first gate a
 * request reaches: the clearance it issues must count at the other gate too, or the visitor
 * is sent round the challenge for ever. Kept on `globalThis` under a registered symbol, so
 * the ESM and CommonJS builds of core, loaded side by side, share it as well.
 */
interface ProcessKeys {
  /** The random key of every service without a configured secret, made once per process. */
  ephemeral: string | undefined
  /** How each service alive in this process checks a clearance. */
  readonly live: Set<ClearanceCheck>
}

const SHARED = Symbol.for('sallyport.challenge-keys.v1')

function processKeys(): ProcessKeys {
  const holder = globalThis as { [SHARED]?: ProcessKeys }
  holder[SHARED] ??= { ephemeral: undefined, live: new Set() }
  return holder[SHARED]
}

/** The random key for services without a secret: the same for every gate in this process. */
export function ephemeralSecret(): string {
  const keys = processKeys()
  keys.ephemeral ??= randomBytes(32).toString('hex')
  return keys.ephemeral
}

/** Adds a service's check to the process's live ones; returns a function that removes it. */
export function registerCheck(check: ClearanceCheck): () => void {
  const { live } = processKeys()
  live.add(check)
  return () => live.delete(check)
}

/** A clearance another live service of this process issued: reached only when the service's own key refused it. */
export function clearedElsewhere(own: ClearanceCheck, value: string, binding: string, nowMs: number): boolean {
  for (const check of processKeys().live) {
    if (check !== own && check(value, binding, nowMs)) return true
  }
  return false
}
