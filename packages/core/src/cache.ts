import type { Decision, DecisionBackend, DecisionInput, Verdict } from './types.js'

export interface CacheOptions {
  /**
   * How long a verdict is reused, in ms: one number for every verdict, or one per verdict.
   * Verdicts without a TTL are never cached. Defaults to `{ allow: 10_000, deny: 60_000 }`:
   * a challenge or a review is never reused, so a visitor who solves a challenge is not
   * held back by a stale one.
   */
  ttlMs?: number | Partial<Record<Verdict, number>>
  /** Who "the same visitor" is. Defaults to the backend's visitor cookie (such as `trusted_id`), else the client IP. */
  key?: (input: DecisionInput) => string | null | undefined
  /** Reuse verdicts at checkpoints too. Defaults to `false`: a login attempt is always asked about. */
  checkpoints?: boolean
  /** Entries kept at most; the oldest go first. Defaults to 10 000. */
  maxEntries?: number
}

interface Entry {
  decision: Decision
  expiresAt: number
}

const DEFAULT_TTL: Partial<Record<Verdict, number>> = { allow: 10_000, deny: 60_000 }

/**
 * Reuses a backend's verdict for the same visitor within its TTL, which keeps vendor cost
 * and latency down on busy sites. Only real backend verdicts are cached, never fallbacks.
 */
export class DecisionCache {
  readonly #ttl: Partial<Record<Verdict, number>>
  readonly #key: (input: DecisionInput) => string | null | undefined
  readonly #maxEntries: number
  readonly #entries = new Map<string, Entry>()
  readonly checkpoints: boolean

  constructor(options: CacheOptions, backends: readonly DecisionBackend[]) {
    const { ttlMs } = options
    this.#ttl =
      ttlMs === undefined ? DEFAULT_TTL : typeof ttlMs === 'number' ? { allow: ttlMs, challenge: ttlMs, deny: ttlMs, review: ttlMs } : ttlMs
    this.#maxEntries = options.maxEntries ?? 10_000
    this.checkpoints = options.checkpoints ?? false
    const visitorCookies = backends.flatMap((backend) => backend.cookies ?? [])
    this.#key =
      options.key ??
      ((input) => {
        for (const name of visitorCookies) {
          const value = input.cookie(name)
          if (value !== undefined && value.length > 0 && value.length <= 256) return `cookie:${name}=${value}`
        }
        return input.ip === null ? null : `ip:${input.ip}`
      })
  }

  /** The cache key for this input, or `null` when the visitor cannot be told apart. */
  keyFor(input: DecisionInput): string | null {
    try {
      const key = this.#key(input)
      return typeof key === 'string' && key.length > 0 ? key : null
    } catch {
      return null
    }
  }

  get(key: string, now: number): Decision | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= now) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.decision
  }

  set(key: string, decision: Decision, now: number): void {
    const ttl = this.#ttl[decision.wouldBe]
    if (ttl === undefined || ttl <= 0 || decision.source !== 'backend') return
    this.#entries.delete(key)
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    this.#entries.set(key, { decision, expiresAt: now + ttl })
  }
}
