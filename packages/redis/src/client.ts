import { SallyportError } from '@sallyport/core'

/**
 * A node-redis client (`createClient()`, v5), or any adapter that sends one command
 * given as an array of strings, command name first, and resolves with Redis's reply.
 */
export interface SendCommandClient {
  sendCommand(args: string[]): Promise<unknown>
}

/** An ioredis client (`new Redis()` or `new Redis.Cluster()`): commands go through `call`. */
export interface CallClient {
  call(command: string, ...args: string[]): Promise<unknown>
}

/** A node-redis cluster (`createCluster()`): commands are routed by their first key. */
export interface ClusterSendCommandClient {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>
}

export type RedisClientLike = SendCommandClient | CallClient | ClusterSendCommandClient

/** Sends one command, `[name, ...args]`, naming the one key it touches (clusters route by it). */
export type Send = (args: string[], key: string) => Promise<unknown>

/**
 * Picks how to talk to the client by its shape. ioredis is tested first: it also has a
 * `sendCommand`, but one that takes its own `Command` objects, not an array. A node-redis
 * cluster's `sendCommand(firstKey, isReadonly, args)` is told from a client's
 * `sendCommand(args, options?)` by its arity.
 */
export function commandSender(client: unknown): Send | null {
  if (typeof client !== 'object' || client === null) return null
  const candidate = client as Partial<CallClient & SendCommandClient>
  if (typeof candidate.call === 'function') {
    const call = candidate.call
    return (args) => call.call(client, args[0] as string, ...args.slice(1))
  }
  if (typeof candidate.sendCommand === 'function') {
    const sendCommand = candidate.sendCommand
    if (sendCommand.length >= 3) {
      // Always the primary: a replica may lag behind the count just written.
      return (args, key) => (sendCommand as unknown as ClusterSendCommandClient['sendCommand']).call(client, key, false, args)
    }
    return (args) => sendCommand.call(client, args)
  }
  return null
}

type Method = (this: unknown) => unknown

function method(client: unknown, name: string): Method | undefined {
  const value = (client as Record<string, unknown>)[name]
  return typeof value === 'function' ? (value as Method) : undefined
}

/**
 * Closes the user's client: gracefully first (node-redis `close`, ioredis `quit`), then by
 * force (`destroy`, `disconnect`) when that fails or takes longer than `timeoutMs` — a
 * graceful close waits for a Redis that may be down.
 */
export async function closeClient(client: unknown, timeoutMs: number): Promise<void> {
  const graceful = method(client, 'close') ?? method(client, 'quit')
  const forced = method(client, 'destroy') ?? method(client, 'disconnect')
  if (graceful !== undefined) {
    try {
      await withTimeout(Promise.resolve(graceful.call(client)), timeoutMs, 'QUIT')
      return
    } catch {
      if (forced === undefined) return
    }
  }
  try {
    await forced?.call(client)
  } catch {}
}

/** Redis's own error replies start with an upper-case code: `ERR`, `WRONGTYPE`, `NOSCRIPT`, `OOM`, … */
export function isErrorReply(error: unknown): boolean {
  return error instanceof Error && /^[A-Z][A-Z_-]+(?: |$)/.test(error.message)
}

/**
 * Settles with `promise`, or rejects with `SP_BACKEND_TIMEOUT` after `timeoutMs`. The timer
 * is cleared either way and never keeps the process alive; a late rejection of `promise` is
 * handled here, so an abandoned command never becomes an unhandled rejection.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, command: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new SallyportError('SP_BACKEND_TIMEOUT', `Redis did not answer ${command} within ${timeoutMs} ms.`))
    }, timeoutMs)
    timer.unref()
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
