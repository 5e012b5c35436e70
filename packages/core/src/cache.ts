import { createHash } from 'node:crypto'
import { MemoryStore, type Store } from './store.js'
import type { Decision, DecisionBackend, DecisionInput, Verdict } from './types.js'

export interface CacheOptions {
  /**
   * How long a verdict is reused, in ms: one number for every verdict, or one per verdict.
   * Verdicts without a TTL are never cached. Defaults to `{ allow: 10_000, deny: 60_000 }`:
   * a challenge or a review is never reused, so a visitor who solves a challenge is not
   * held back by a stale one.
   */
  ttlMs?: number | Partial<Record<Verdict, number>>
  /** Who "the same visitor" is. Defaults to the client IP, user agent and the backend's visitor cookie (such as `trusted_id`) together. */
  key?: (input: DecisionInput) => string | null | undefined
  /** Reuse verdicts at checkpoints too. Defaults to `false`: a login attempt is always asked about. */
  checkpoints?: boolean
  /** Entries kept at most in memory; the oldest go first. Defaults to 10 000. */
  maxEntries?: number
  /**
   * Where cached verdicts live, so every instance of a fleet reuses them (e.g. a
   * `@gatehouse/redis` store). It must offer `getValue`/`setValue`. Defaults to memory.
   */
  store?: Store
}

const DEFAULT_TTL: Partial<Record<Verdict, number>> = { allow: 10_000, deny: 60_000 }

/**
 * Reuses a backend's verdict for the same visitor within its TTL, which keeps vendor cost
 * and latency down on busy sites. Only real backend verdicts are cached, never fallbacks.
 */
type ValueStore = Required<Pick<Store, 'getValue' | 'setValue'>>

/** What is kept of a decision: enough to replay it, no cookies to send again. */
type Cached = Pick<Decision, 'wouldBe' | 'reason' | 'backend' | 'requestId' | 'complete' | 'signals'>

export class DecisionCache {
  readonly #ttl: Partial<Record<Verdict, number>>
  readonly #key: (input: DecisionInput) => string | null | undefined
  readonly #store: ValueStore
  readonly checkpoints: boolean

  constructor(options: CacheOptions, backends: readonly DecisionBackend[]) {
    const { ttlMs } = options
    this.#ttl =
      ttlMs === undefined ? DEFAULT_TTL : typeof ttlMs === 'number' ? { allow: ttlMs, challenge: ttlMs, deny: ttlMs, review: ttlMs } : ttlMs
    this.#store = (options.store ?? new MemoryStore({ maxKeys: options.maxEntries ?? 10_000 })) as ValueStore
    this.checkpoints = options.checkpoints ?? false
    const visitorCookies = backends.flatMap((backend) => backend.cookies ?? [])
    // The default key binds the IP, the user agent and the backend's visitor cookie together:
    // a cookie copied to another client, or a browser behind the same NAT as a bot, is a
    // different visitor and never inherits someone else's verdict.
    this.#key =
      options.key ??
      ((input) => {
        if (input.ip === null) return null
        const hash = createHash('sha256')
          .update(input.ip)
          .update('\n')
          .update(input.headers['user-agent'] ?? '')
        for (const name of visitorCookies) {
          const value = input.cookie(name)
          if (value !== undefined) hash.update(`\n${name}=`).update(value)
        }
        return hash.digest('base64url')
      })
  }

  /** The cache key for this input, or `null` when the visitor cannot be told apart. */
  keyFor(input: DecisionInput): string | null {
    try {
      const key = this.#key(input)
      return typeof key === 'string' && key.length > 0 ? `decision:${key}` : null
    } catch {
      return null
    }
  }

  /** A cached decision, or `undefined`. A store that fails counts as a miss. */
  async get(key: string): Promise<Cached | undefined> {
    try {
      const raw = await this.#store.getValue(key)
      return raw === undefined ? undefined : (JSON.parse(raw) as Cached)
    } catch {
      return undefined
    }
  }

  async set(key: string, decision: Decision): Promise<void> {
    const ttl = this.#ttl[decision.wouldBe]
    if (ttl === undefined || ttl <= 0 || decision.source !== 'backend') return
    const { wouldBe, reason, backend, requestId, complete, signals } = decision
    try {
      await this.#store.setValue(key, JSON.stringify({ wouldBe, reason, backend, requestId, complete, signals }), ttl)
    } catch {
      // A cache that cannot write only costs a backend call next time.
    }
  }
}
