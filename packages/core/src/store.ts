import { checkOptions } from './check-options.js'
import { type Shape, shape } from './shape.js'

/**
 * Shared counters with expiry: velocity rules, used challenges. The in-memory store
 * serves one process; `@sallyport/redis` implements the same interface for a fleet.
 */
export interface Store {
  /**
   * Adds 1 to `key`, creating it with an expiry `ttlMs` from now when it is absent or
   * expired, and returns the new count and its expiry (epoch ms). Atomic per key.
   */
  increment(key: string, ttlMs: number): Promise<{ count: number; expiresAt: number }>
  /** The current count, or `undefined` when absent or expired. */
  get(key: string): Promise<number | undefined>
  delete(key: string): Promise<void>
  /** Reads a value written by `setValue`. Optional: a store without it cannot hold the decision cache. */
  getValue?(key: string): Promise<string | undefined>
  /** Writes a value that expires `ttlMs` from now. */
  setValue?(key: string, value: string, ttlMs: number): Promise<void>
  /** Releases connections or timers, if any. */
  close?(): Promise<void>
}

/** Accepts anything with the three counter methods: options check stores by shape, not class. */
export const storeShape = shape.custom<Store>(
  (value) =>
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Store).increment === 'function' &&
    typeof (value as Store).get === 'function' &&
    typeof (value as Store).delete === 'function',
)

export interface MemoryStoreOptions {
  /** Keys kept at most; the oldest are dropped first. Defaults to 100 000. */
  maxKeys?: number
  /** Clock, for tests. Defaults to `Date.now`. */
  now?: () => number
}

const optionsShape = shape.strictObject({
  maxKeys: shape.number().int().min(1).optional().describe('a positive integer'),
  now: shape
    .custom<() => number>((value) => typeof value === 'function')
    .optional()
    .describe('a function returning the time in epoch ms'),
} satisfies Record<keyof MemoryStoreOptions, Shape>)

interface Entry {
  count: number
  expiresAt: number
  value?: string
}

/**
 * A bounded in-process store. No timer runs in the background: expired keys are removed
 * when touched or when they reach the oldest end as new keys are written, and the oldest
 * keys make room when the store is full, so memory stays flat whatever a flood of
 * distinct keys does, and shrinks again when the flood stops.
 */
export class MemoryStore implements Store {
  readonly #entries = new Map<string, Entry>()
  readonly #maxKeys: number
  readonly #now: () => number

  constructor(options: MemoryStoreOptions = {}) {
    const { maxKeys, now } = checkOptions('new MemoryStore', optionsShape, options)
    this.#maxKeys = maxKeys ?? 100_000
    this.#now = now ?? Date.now
  }

  async increment(key: string, ttlMs: number): Promise<{ count: number; expiresAt: number }> {
    const now = this.#now()
    let entry = this.#entries.get(key)
    if (entry === undefined || entry.expiresAt <= now) {
      if (entry !== undefined) this.#entries.delete(key)
      entry = { count: 0, expiresAt: now + ttlMs }
      this.#sweep(now)
      this.#entries.set(key, entry)
    }
    entry.count++
    return { count: entry.count, expiresAt: entry.expiresAt }
  }

  async get(key: string): Promise<number | undefined> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.count
  }

  async getValue(key: string): Promise<string | undefined> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    if (entry.expiresAt <= this.#now()) {
      this.#entries.delete(key)
      return undefined
    }
    return entry.value
  }

  async setValue(key: string, value: string, ttlMs: number): Promise<void> {
    const now = this.#now()
    this.#entries.delete(key)
    this.#sweep(now)
    this.#entries.set(key, { count: 0, expiresAt: now + ttlMs, value })
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(key)
  }

  /** How many keys are held, expired ones included until touched. */
  get size(): number {
    return this.#entries.size
  }

  /**
   * Drops expired keys from the oldest end (a few per write, so a write stays O(1)), then
   * the oldest live keys while the store is full. Map order is insertion order, and a key
   * is re-inserted when its window restarts, so the oldest end holds the oldest windows.
   */
  #sweep(now: number): void {
    let budget = 4
    for (const [key, entry] of this.#entries) {
      if (this.#entries.size >= this.#maxKeys || (budget-- > 0 && entry.expiresAt <= now)) this.#entries.delete(key)
      else return
    }
  }

  async close(): Promise<void> {
    this.#entries.clear()
  }
}
