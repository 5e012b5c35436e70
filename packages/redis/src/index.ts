import { createHash } from 'node:crypto'
import { invalidOption, SallyportError, type Store } from '@sallyport/core'
import { closeClient, commandSender, isErrorReply, type RedisClientLike, type Send, withTimeout } from './client.js'

export type { CallClient, ClusterSendCommandClient, RedisClientLike, SendCommandClient } from './client.js'

export interface RedisStoreOptions {
  /**
   * The Redis connection, which you create, connect and own. Recognised by its shape:
   * an ioredis client or cluster (it has `call(command, ...args)`), a node-redis client
   * (it has `sendCommand(args)`), a node-redis cluster (`sendCommand(firstKey, isReadonly, args)`),
   * or any `{ sendCommand(args: string[]): Promise<unknown> }` adapter. Required.
   */
  client: RedisClientLike
  /** Put before every key, to share one Redis between apps. Defaults to `'sallyport:'`. */
  prefix?: string
  /**
   * How long one store call (a count, a read, a delete) may wait for Redis, in ms, before it
   * rejects with `SP_BACKEND_TIMEOUT`: a Redis that hangs must not hang a request. Defaults to 50.
   */
  timeoutMs?: number
  /** Close `client` too when the store is closed. Defaults to `false`: the client is yours. */
  closeClient?: boolean
}

/** A `Store` kept in Redis, so that every instance of an app counts together and shares cached decisions. */
export interface RedisStore extends Store {
  /** A value written by `setValue` (GET), or `undefined`; the decision cache reads with it. */
  getValue(key: string): Promise<string | undefined>
  /** Writes a value that expires `ttlMs` from now (SET … PX). */
  setValue(key: string, value: string, ttlMs: number): Promise<void>
  /** Stops the store (later calls reject); closes the client only with `closeClient: true`. */
  close(): Promise<void>
}

/** Keys longer than this (in UTF-8 bytes, before the prefix) are stored as a digest. */
export const MAX_KEY_BYTES = 200
const MAX_PREFIX_LENGTH = 100
const MAX_TIMEOUT_MS = 60_000

/**
 * One round trip: counts, and starts the window when the key is new. A key that somehow has
 * no expiry (written by hand, or by an older version) gets one too, so no counter lives forever.
 * Returns the count and the milliseconds left, so `expiresAt` is what Redis holds.
 */
const INCREMENT_SCRIPT = `local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  ttl = tonumber(ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return { count, ttl }`
const INCREMENT_SHA = createHash('sha1').update(INCREMENT_SCRIPT).digest('hex')

const optionNames: ReadonlyArray<keyof RedisStoreOptions> = ['client', 'prefix', 'timeoutMs', 'closeClient']

interface Config {
  send: Send
  client: unknown
  prefix: string
  timeoutMs: number
  closeClient: boolean
}

function resolveOptions(options: RedisStoreOptions): Config {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw invalidOption('redisStore', 'an options object')
  for (const key of Object.keys(options)) {
    if (!optionNames.includes(key as keyof RedisStoreOptions)) {
      throw invalidOption(key, `one of the known redisStore options (${optionNames.join(', ')})`)
    }
  }
  const send = commandSender(options.client)
  if (send === null) {
    throw invalidOption(
      'client',
      'a connected node-redis client (with sendCommand), an ioredis client (with call), or { sendCommand(args: string[]): Promise<unknown> }',
    )
  }
  const prefix = options.prefix ?? 'sallyport:'
  if (typeof prefix !== 'string' || prefix.length > MAX_PREFIX_LENGTH) {
    throw invalidOption('prefix', `a string of at most ${MAX_PREFIX_LENGTH} characters`)
  }
  const timeoutMs = options.timeoutMs ?? 50
  if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_TIMEOUT_MS) {
    throw invalidOption('timeoutMs', `an integer number of milliseconds from 1 to ${MAX_TIMEOUT_MS}`)
  }
  const close = options.closeClient ?? false
  if (typeof close !== 'boolean') throw invalidOption('closeClient', 'true or false')
  return { send, client: options.client, prefix, timeoutMs, closeClient: close }
}

/**
 * Keys carry what users send (IPs, custom velocity keys): a long one is stored as its
 * SHA-256, so no request can make Redis hold a 10 KB key. Keys starting with `#` are hashed
 * too, so a stored key never reads the same as another key's digest.
 */
function storedKey(prefix: string, key: string): string {
  if (typeof key !== 'string') throw new TypeError('A store key must be a string.')
  if (Buffer.byteLength(key) <= MAX_KEY_BYTES && !key.startsWith('#')) return prefix + key
  return `${prefix}#${createHash('sha256').update(key).digest('base64url')}`
}

/** Integers arrive as numbers (RESP), strings or bigints, depending on the client and its type mapping. */
function integer(value: unknown): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : null
  if (typeof value === 'bigint') return Number(value)
  if (typeof value === 'string' || value instanceof Uint8Array) {
    const text = typeof value === 'string' ? value : Buffer.from(value).toString()
    return /^-?\d{1,15}$/.test(text) ? Number(text) : null
  }
  return null
}

/** Redis expiries are whole, positive milliseconds. */
function milliseconds(ttlMs: number): string {
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError('ttlMs must be a positive number.')
  return String(Math.ceil(ttlMs))
}

function failure(command: string, error: unknown): SallyportError {
  if (error instanceof SallyportError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new SallyportError(isErrorReply(error) ? 'SP_BACKEND_SERVER' : 'SP_BACKEND_NETWORK', `Redis ${command} failed: ${message}`, {
    cause: error,
  })
}

/**
 * A `Store` on Redis: pass it as `localPolicies({ store })` (and `cache: { store }`) on every
 * instance and they share velocity counters, used challenges and cached decisions. It uses no
 * Redis library of its own: give it your node-redis or ioredis client. A Redis that fails or
 * does not answer within `timeoutMs` makes the call reject, and the policy engine counts that
 * as "no match" (fail-open).
 */
export function redisStore(options: RedisStoreOptions): RedisStore {
  const config = resolveOptions(options)
  const { send, prefix, timeoutMs } = config
  let closed = false

  /** One command within what is left of the call's time; rejects with the client's own error. */
  function exchange(args: string[], key: string, deadline: number): Promise<unknown> {
    const left = deadline - performance.now()
    if (left <= 0) return Promise.reject(new SallyportError('SP_BACKEND_TIMEOUT', `Redis did not answer within ${timeoutMs} ms.`))
    let sent: Promise<unknown>
    try {
      sent = Promise.resolve(send(args, key))
    } catch (error) {
      return Promise.reject(error)
    }
    return withTimeout(sent, Math.ceil(left), args[0] as string)
  }

  /** `exchange`, with the client's error turned into a coded `SallyportError`. */
  async function command(args: string[], key: string, deadline: number): Promise<unknown> {
    try {
      return await exchange(args, key, deadline)
    } catch (error) {
      throw failure(args[0] as string, error)
    }
  }

  function start(): number {
    if (closed) throw new SallyportError('SP_BACKEND_NETWORK', 'The Redis store is closed.')
    return performance.now() + timeoutMs
  }

  return {
    async increment(key, ttlMs) {
      const deadline = start()
      const ttl = milliseconds(ttlMs)
      const stored = storedKey(prefix, key)
      let reply: unknown
      try {
        reply = await exchange(['EVALSHA', INCREMENT_SHA, '1', stored, ttl], stored, deadline)
      } catch (error) {
        // The script cache is empty after a restart or SCRIPT FLUSH: send the script itself once.
        if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw failure('EVALSHA', error)
        reply = await command(['EVAL', INCREMENT_SCRIPT, '1', stored, ttl], stored, deadline)
      }
      const count = Array.isArray(reply) ? integer(reply[0]) : null
      const left = Array.isArray(reply) ? integer(reply[1]) : null
      if (count === null || left === null) {
        throw new SallyportError('SP_BACKEND_INVALID', 'Redis answered the increment script with no count.')
      }
      return { count, expiresAt: Date.now() + Math.max(0, left) }
    },

    async get(key) {
      const deadline = start()
      const stored = storedKey(prefix, key)
      const reply = await command(['GET', stored], stored, deadline)
      if (reply === null || reply === undefined) return undefined
      const count = integer(reply)
      if (count === null) throw new SallyportError('SP_BACKEND_INVALID', 'A Redis key the store reads holds something other than a count.')
      return count
    },

    async getValue(key) {
      const deadline = start()
      const stored = storedKey(prefix, key)
      const reply = await command(['GET', stored], stored, deadline)
      if (reply === null || reply === undefined) return undefined
      if (typeof reply === 'string') return reply
      if (reply instanceof Uint8Array) return Buffer.from(reply).toString()
      throw new SallyportError('SP_BACKEND_INVALID', 'A Redis key the store reads holds something other than a string.')
    },

    async setValue(key, value, ttlMs) {
      const deadline = start()
      if (typeof value !== 'string') throw new TypeError('A stored value must be a string.')
      const stored = storedKey(prefix, key)
      await command(['SET', stored, value, 'PX', milliseconds(ttlMs)], stored, deadline)
    },

    async delete(key) {
      const deadline = start()
      const stored = storedKey(prefix, key)
      await command(['DEL', stored], stored, deadline)
    },

    async close() {
      if (closed) return
      closed = true
      if (config.closeClient) await closeClient(config.client, timeoutMs)
    },
  }
}
