import { createHash } from 'node:crypto'
import { MemoryStore, type Store } from './store.js'
import type { BackendVerdict, Checkpoint, DecisionBackend, DecisionInput, Verdict } from './types.js'

export interface CacheOptions {
  /**
   * How long a verdict is reused, in ms: one number for every verdict, or one per verdict.
   * Verdicts without a TTL are never cached. Defaults to `{ allow: 10_000, deny: 60_000 }`:
   * a challenge or a review is never reused, so a visitor who solves a challenge is not
   * held back by a stale one.
   */
  ttlMs?: number | Partial<Record<Verdict, number>>
  /**
   * Who "the same visitor" is. Whatever it returns, a verdict is reused only for the same
   * backend and the same kind of request (page load, other read, write; checkpoint event and
   * status). A key you give identifies the visitor: a deny is reused for it. Defaults to the
   * client IP, user agent and the backend's visitor cookie (such as `trusted_id`) together; a
   * deny is then kept only for a visitor that carries that cookie.
   */
  key?: (input: DecisionInput) => string | null | undefined
  /** Reuse verdicts at checkpoints too. Defaults to `false`: a login attempt is always asked about. */
  checkpoints?: boolean
  /** Entries kept at most in memory; the oldest go first. Defaults to 10 000. */
  maxEntries?: number
  /**
   * Where cached verdicts live, so every instance of a fleet reuses them (e.g. a
   * `@sallyport/redis` store). It must offer `getValue`/`setValue`. Defaults to memory.
   */
  store?: Store
}

const DEFAULT_TTL: Partial<Record<Verdict, number>> = { allow: 10_000, deny: 60_000 }

type ValueStore = Required<Pick<Store, 'getValue' | 'setValue'>>

/** What is kept of a backend's reply: enough to replay it, no cookies to send again. */
type Cached = Omit<BackendVerdict, 'setCookies'>

/** Where one backend's verdict for one request may be found, and what it may hold. */
export interface CacheSlot {
  readonly key: string
  /**
   * The visitor is told apart by something only it holds (the backend's visitor cookie, or
   * the application's own `key`): only then may a deny be kept, so a neighbour behind the
   * same NAT with the same browser cannot earn one for it.
   */
  readonly identified: boolean
}

/**
 * What kind of request this is, as far as a verdict's reuse goes: a page load, another read,
 * or a write, and the checkpoint event and status. A verdict earned by one kind is never
 * handed to another: an allow for a JSON call does not let a page load through, and a
 * site-wide allow is not reused at login.
 */
export function requestKind(method: string, navigation: boolean, checkpoint: Checkpoint | null): string {
  const kind = navigation ? 'page' : method === 'GET' || method === 'HEAD' ? 'read' : 'write'
  return checkpoint === null ? kind : `${kind}:${checkpoint.event}:${checkpoint.status}`
}

/**
 * Reuses each remote backend's verdict for the same visitor and the same kind of request
 * within its TTL, which keeps vendor cost and latency down on busy sites. Only real backend
 * verdicts are cached, never fallbacks; a backend that says it is not `cacheable` (the local
 * engine, whose path rules and velocity counters must see every request) is always asked.
 */
export class DecisionCache {
  readonly #ttl: Partial<Record<Verdict, number>>
  readonly #key: ((input: DecisionInput) => string | null | undefined) | undefined
  readonly #store: ValueStore
  readonly checkpoints: boolean

  constructor(options: CacheOptions) {
    const { ttlMs } = options
    this.#ttl =
      ttlMs === undefined ? DEFAULT_TTL : typeof ttlMs === 'number' ? { allow: ttlMs, challenge: ttlMs, deny: ttlMs, review: ttlMs } : ttlMs
    this.#store = (options.store ?? new MemoryStore({ maxKeys: options.maxEntries ?? 10_000 })) as ValueStore
    this.checkpoints = options.checkpoints ?? false
    this.#key = options.key
  }

  /**
   * The slot for this backend, visitor and kind of request, or `null` when the visitor cannot
   * be told apart. The default key binds the IP, the user agent and the backend's visitor
   * cookie together: a cookie copied to another client, or a browser behind the same NAT as
   * a bot, is a different visitor and never inherits someone else's verdict.
   */
  slotFor(backend: DecisionBackend, input: DecisionInput, kind: string): CacheSlot | null {
    let visitor: string
    let identified: boolean
    if (this.#key !== undefined) {
      let key: unknown
      try {
        key = this.#key(input)
      } catch {
        return null
      }
      if (typeof key !== 'string' || key.length === 0) return null
      visitor = key
      identified = true
    } else {
      if (input.ip === null) return null
      const hash = createHash('sha256')
        .update(input.ip)
        .update('\n')
        .update(input.headers['user-agent'] ?? '')
      identified = false
      for (const name of backend.cookies ?? []) {
        const value = input.cookie(name)
        if (value === undefined) continue
        hash.update(`\n${name}=`).update(value)
        identified = true
      }
      visitor = hash.digest('base64url')
    }
    return { key: `decision:${backend.name}:${kind}:${visitor}`, identified }
  }

  /** A cached reply, or `undefined`. A store that fails, or holds something unreadable, counts as a miss. */
  async get(slot: CacheSlot): Promise<Cached | undefined> {
    try {
      const raw = await this.#store.getValue(slot.key)
      return raw === undefined ? undefined : (JSON.parse(raw) as Cached)
    } catch {
      return undefined
    }
  }

  async set(slot: CacheSlot, reply: BackendVerdict): Promise<void> {
    const ttl = this.#ttl[reply.verdict]
    if (ttl === undefined || ttl <= 0) return
    if (reply.verdict === 'deny' && !slot.identified) return
    const { verdict, reason, requestId, complete, signals } = reply
    try {
      await this.#store.setValue(slot.key, JSON.stringify({ verdict, reason, requestId, complete, signals }), ttl)
    } catch {
      // A cache that cannot write only costs a backend call next time.
    }
  }
}
