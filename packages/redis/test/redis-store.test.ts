import { once } from 'node:events'
import { SallyportError } from '@sallyport/core'
import { type RedisClientLike, type RedisStore, redisStore } from '@sallyport/redis'
import { Cluster, Redis } from 'ioredis'
import { createClient, createCluster } from 'redis'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from './redis-server.js'

/** A connected client as the store sees it, plus a side door for checking what Redis holds. */
interface Connection {
  client: RedisClientLike
  raw(...args: string[]): Promise<unknown>
  close(): Promise<void>
}

interface ConnectOptions {
  /** Commands sent while disconnected fail at once instead of waiting for a reconnect. */
  noOfflineQueue?: boolean
}

async function nodeRedis(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const client = createClient({ url, disableOfflineQueue: options.noOfflineQueue === true })
  // node-redis emits every reconnect failure as 'error'; without a listener Node would crash.
  client.on('error', () => {})
  await client.connect()
  return {
    client,
    raw: (...args) => client.sendCommand(args),
    close: async () => {
      if (client.isOpen) client.destroy()
    },
  }
}

async function ioredis(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: options.noOfflineQueue !== true })
  client.on('error', () => {})
  await client.connect()
  return { client, raw: (command, ...args) => client.call(command ?? '', ...args), close: async () => client.disconnect() }
}

/** The documented escape hatch for any other client: one function taking the command as strings. */
async function adapter(url: string, options: ConnectOptions = {}): Promise<Connection> {
  const inner = await ioredis(url, options)
  const client = { sendCommand: ([command = '', ...args]: string[]) => inner.raw(command, ...args) }
  return { ...inner, client }
}

async function nodeRedisCluster(server: RedisServer): Promise<Connection> {
  const cluster = createCluster({ rootNodes: [{ url: server.url }] })
  cluster.on('error', () => {})
  await cluster.connect()
  return {
    client: cluster,
    // Keyless commands (KEYS, SCRIPT FLUSH) go to any node: there is only one.
    raw: (...args) => cluster.sendCommand(args[1], false, args),
    close: async () => {
      if (cluster.isOpen) cluster.destroy()
    },
  }
}

async function ioredisCluster(server: RedisServer): Promise<Connection> {
  const cluster = new Cluster([{ host: '127.0.0.1', port: server.port }])
  cluster.on('error', () => {})
  // Cluster.connect() after lazyConnect never settled here (ioredis 5.11); 'ready' does come.
  await once(cluster, 'ready')
  return { client: cluster, raw: (command, ...args) => cluster.call(command ?? '', ...args), close: async () => cluster.disconnect() }
}

const clients = { 'node-redis': nodeRedis, ioredis, 'a sendCommand adapter': adapter }

/** Each client against the server it fits: the standalone one, or a one-node Redis Cluster. */
const suites: Array<[string, (server: RedisServer) => Promise<Connection>, 'standalone' | 'cluster']> = [
  ...Object.entries(clients).map(([name, connect]) => [name, (server: RedisServer) => connect(server.url), 'standalone'] as const),
  ['node-redis createCluster()', nodeRedisCluster, 'cluster'],
  ['ioredis Cluster', ioredisCluster, 'cluster'],
]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function elapsed(work: () => Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now()
  try {
    await work()
    return { ms: performance.now() - started, error: undefined }
  } catch (error) {
    return { ms: performance.now() - started, error }
  }
}

let server: RedisServer
let clusterServer: RedisServer
beforeAll(async () => {
  ;[server, clusterServer] = await Promise.all([startRedisServer(), startRedisServer({ cluster: true })])
})
afterAll(async () => {
  await server?.kill()
  await clusterServer?.kill()
})

describe.each(suites)('redisStore with %s', (name, connect, topology) => {
  let connection: Connection
  let store: RedisStore
  const prefix = `test:${name.replace(/\W/g, '-')}:`

  beforeAll(async () => {
    connection = await connect(topology === 'cluster' ? clusterServer : server)
    store = redisStore({ client: connection.client, prefix, timeoutMs: 1000 })
  })
  afterAll(async () => {
    await store?.close()
    await connection?.close()
  })

  it('counts up from 1 within one window and reads the count back', async () => {
    const before = Date.now()
    const first = await store.increment('count', 60_000)
    const second = await store.increment('count', 60_000)
    expect(first.count).toBe(1)
    expect(second.count).toBe(2)
    expect(first.expiresAt).toBeGreaterThanOrEqual(before + 59_000)
    expect(first.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000)
    // The second count ends the same window; it does not start a new one.
    expect(Math.abs(second.expiresAt - first.expiresAt)).toBeLessThan(50)
    expect(await store.get('count')).toBe(2)
    expect(await connection.raw('GET', `${prefix}count`)).toBe('2')
  })

  it('answers undefined for a key never counted', async () => {
    expect(await store.get('never')).toBeUndefined()
  })

  it('deletes a count, and the next one starts again at 1', async () => {
    await store.increment('deleted', 60_000)
    await store.increment('deleted', 60_000)
    await store.delete('deleted')
    expect(await store.get('deleted')).toBeUndefined()
    expect((await store.increment('deleted', 60_000)).count).toBe(1)
    await store.delete('not-there')
  })

  it('forgets a count when its window ends, and starts a fresh window', async () => {
    const first = await store.increment('short', 150)
    await store.increment('short', 150)
    expect(await store.get('short')).toBe(2)
    await sleep(250)
    expect(await store.get('short')).toBeUndefined()
    const fresh = await store.increment('short', 150)
    expect(fresh.count).toBe(1)
    expect(fresh.expiresAt).toBeGreaterThan(first.expiresAt + 200)
  })

  it('keeps the first window: later counts with another ttl do not extend it', async () => {
    await store.increment('fixed', 300)
    await sleep(100)
    const later = await store.increment('fixed', 60_000)
    expect(later.count).toBe(2)
    expect(later.expiresAt - Date.now()).toBeLessThanOrEqual(200)
    expect(Number(await connection.raw('PTTL', `${prefix}fixed`))).toBeLessThanOrEqual(200)
  })

  it('gives an expiry to a counter that has none', async () => {
    await connection.raw('SET', `${prefix}no-ttl`, '5')
    const result = await store.increment('no-ttl', 5000)
    expect(result.count).toBe(6)
    const left = Number(await connection.raw('PTTL', `${prefix}no-ttl`))
    expect(left).toBeGreaterThan(4000)
    expect(left).toBeLessThanOrEqual(5000)
  })

  it('counts 200 concurrent increments exactly once each', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, () => store.increment('burst', 60_000)))
    const counts = results.map((result) => result.count).sort((a, b) => a - b)
    expect(counts).toEqual(Array.from({ length: 200 }, (_, index) => index + 1))
    expect(new Set(results.map((result) => Math.round(result.expiresAt / 100))).size).toBeLessThanOrEqual(2)
    expect(await store.get('burst')).toBe(200)
  })

  it('stores a 10 KB key as a short digest, still counting it apart from its neighbours', async () => {
    const long = `velocity:rule:login|${'x'.repeat(10_000)}`
    const neighbour = `${long.slice(0, -1)}y`
    const digestsBefore = ((await connection.raw('KEYS', `${prefix}#*`)) as string[]).length
    expect((await store.increment(long, 60_000)).count).toBe(1)
    expect((await store.increment(long, 60_000)).count).toBe(2)
    expect((await store.increment(neighbour, 60_000)).count).toBe(1)
    expect(await store.get(long)).toBe(2)

    const keys = (await connection.raw('KEYS', `${prefix}*`)) as string[]
    expect(keys.length).toBeGreaterThan(0)
    for (const key of keys) expect(Buffer.byteLength(key)).toBeLessThanOrEqual(prefix.length + 200)
    expect(keys.filter((key) => key.startsWith(`${prefix}#`))).toHaveLength(digestsBefore + 2)

    await store.delete(long)
    expect(await store.get(long)).toBeUndefined()
    expect(await store.get(neighbour)).toBe(1)
  })

  it('bounds keys by bytes, not characters', async () => {
    const wide = '😀'.repeat(100) // 100 characters, 400 bytes
    await store.increment(wide, 60_000)
    const keys = (await connection.raw('KEYS', `${prefix}*`)) as string[]
    expect(keys).not.toContain(`${prefix}${wide}`)
    expect(await store.get(wide)).toBe(1)
  })

  it('keeps a key that only looks like a digest apart from the digest', async () => {
    const long = 'z'.repeat(300)
    await store.increment(long, 60_000)
    const keys = (await connection.raw('KEYS', `${prefix}#*`)) as string[]
    const digest = keys.map((key) => key.slice(prefix.length)).find((key) => key.length < 60)
    expect(digest).toBeDefined()
    expect((await store.increment(digest ?? '', 60_000)).count).toBe(1)
    expect(await store.get(long)).toBe(1)
  })

  it('keeps values for the decision cache until their ttl ends', async () => {
    expect(await store.getValue('decision')).toBeUndefined()
    await store.setValue('decision', '{"wouldBe":"deny"}', 150)
    expect(await store.getValue('decision')).toBe('{"wouldBe":"deny"}')
    await store.setValue('decision', '{"wouldBe":"allow"}', 150)
    expect(await store.getValue('decision')).toBe('{"wouldBe":"allow"}')
    const left = Number(await connection.raw('PTTL', `${prefix}decision`))
    expect(left).toBeGreaterThan(0)
    expect(left).toBeLessThanOrEqual(150)
    await sleep(250)
    expect(await store.getValue('decision')).toBeUndefined()
    await store.setValue(`visitor:${'c'.repeat(5000)}`, 'v', 60_000)
    expect(await store.getValue(`visitor:${'c'.repeat(5000)}`)).toBe('v')
    await expect(store.setValue('bad', 'v', 0)).rejects.toThrow(RangeError)
  })

  it('loads its script again after Redis forgets it (NOSCRIPT)', async () => {
    await store.increment('flushed', 60_000)
    await connection.raw('SCRIPT', 'FLUSH')
    expect((await store.increment('flushed', 60_000)).count).toBe(2)
    expect((await store.increment('flushed', 60_000)).count).toBe(3)
  })

  it('reports a key holding something else as an invalid reply, and Redis errors as server errors', async () => {
    await connection.raw('SET', `${prefix}text`, 'not a number')
    await expect(store.get('text')).rejects.toMatchObject({ code: 'SP_BACKEND_INVALID' })
    await connection.raw('HSET', `${prefix}hash`, 'field', '1')
    await expect(store.increment('hash', 1000)).rejects.toMatchObject({ code: 'SP_BACKEND_SERVER' })
  })
})

describe('redisStore options', () => {
  it.each([
    [{ client: {} }, 'client'],
    [{ client: null }, 'client'],
    [{ client: { sendCommand: async () => null }, timeoutMs: 0 }, 'timeoutMs'],
    [{ client: { sendCommand: async () => null }, timeoutMs: 1.5 }, 'timeoutMs'],
    [{ client: { sendCommand: async () => null }, prefix: 7 }, 'prefix'],
    [{ client: { sendCommand: async () => null }, closeClient: 'yes' }, 'closeClient'],
    [{ client: { sendCommand: async () => null }, timeout: 50 }, 'timeout'],
  ])('rejects %j, naming `%s`', (options, option) => {
    let thrown: unknown
    try {
      redisStore(options as never)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(SallyportError)
    expect(thrown).toMatchObject({ code: 'SP_INVALID_OPTION', option })
  })

  it('puts the default prefix `sallyport:` before keys', async () => {
    const sent: string[][] = []
    const store = redisStore({
      client: {
        sendCommand: async (args) => {
          sent.push(args)
          return null
        },
      },
    })
    await store.get('velocity:x')
    expect(sent).toEqual([['GET', 'sallyport:velocity:x']])
  })
})

describe('closing', () => {
  it('leaves the client open by default, and refuses calls once closed', async () => {
    const connection = await nodeRedis(server.url)
    const store = redisStore({ client: connection.client, prefix: 'close-1:' })
    await store.increment('k', 1000)
    await store.close()
    await expect(store.get('k')).rejects.toMatchObject({ code: 'SP_BACKEND_NETWORK' })
    expect(await connection.raw('GET', 'close-1:k')).toBe('1')
    await connection.close()
  })

  it.each([
    ['node-redis', nodeRedis],
    ['ioredis', ioredis],
  ])('closes a %s client with closeClient: true', async (_, connect) => {
    const connection = await connect(server.url)
    const store = redisStore({ client: connection.client, prefix: 'close-2:', closeClient: true })
    await store.increment('k', 1000)
    await store.close()
    await expect(connection.raw('PING')).rejects.toThrow()
    await connection.close()
  })
})

describe('a Redis that hangs', () => {
  let paused: RedisServer
  const connections: Connection[] = []
  beforeAll(async () => {
    paused = await startRedisServer()
  })
  afterAll(async () => {
    paused?.resume()
    for (const connection of connections) await connection.close()
    await paused?.kill()
  })

  it.each(Object.entries(clients))('times out with %s after timeoutMs, then works again', async (name, connect) => {
    const connection = await connect(paused.url)
    connections.push(connection)
    const timeoutMs = 100
    const store = redisStore({ client: connection.client, timeoutMs })
    await store.increment('hang', 60_000)
    paused.pause()
    try {
      for (const call of [() => store.increment('hang', 60_000), () => store.get('hang'), () => store.delete('hang')]) {
        const { ms, error } = await elapsed(call)
        expect(error).toBeInstanceOf(SallyportError)
        expect(error).toMatchObject({ code: 'SP_BACKEND_TIMEOUT' })
        expect(ms).toBeGreaterThanOrEqual(timeoutMs - 5)
        expect(ms).toBeLessThan(timeoutMs + 200)
      }
    } finally {
      paused.resume()
    }
    // The abandoned increment may still land once Redis wakes; either way the store carries on.
    expect((await store.increment(`after ${name}`, 60_000)).count).toBe(1)
    await store.delete('hang')
  })
})

describe('a Redis that is down', () => {
  const unhandled: unknown[] = []
  const onUnhandled = (reason: unknown) => unhandled.push(reason)
  const connections: Connection[] = []
  let dead: RedisServer

  beforeAll(() => {
    process.on('unhandledRejection', onUnhandled)
  })
  beforeEach(async () => {
    dead = await startRedisServer()
  })
  afterEach(async () => {
    for (const connection of connections.splice(0)) await connection.close()
    await dead?.kill()
  })
  afterAll(async () => {
    // Abandoned commands are rejected by the clients as they close: none may go unhandled.
    await sleep(100)
    process.off('unhandledRejection', onUnhandled)
    expect(unhandled).toEqual([])
  })

  // With its offline queue on, a client holds commands until it reconnects: the store's own
  // timeout is what ends the wait. With it off, the client refuses at once.
  const cases = Object.entries(clients).flatMap(([name, connect]) => [
    [`${name}, offline queue on (the default)`, connect, {}, 'SP_BACKEND_TIMEOUT'] as const,
    [`${name}, offline queue off`, connect, { noOfflineQueue: true }, 'SP_BACKEND_NETWORK'] as const,
  ])

  it.each(cases)('rejects every call within timeoutMs with %s', async (_, connect, options, code) => {
    const connection = await connect(dead.url, options)
    connections.push(connection)
    const timeoutMs = 100
    const store = redisStore({ client: connection.client, timeoutMs })
    await store.increment('before', 60_000)
    await dead.kill()
    await sleep(20)
    const calls = [() => store.increment('down', 60_000), () => store.get('down'), () => store.delete('down')]
    const results = await Promise.all([...calls, ...calls, ...calls].map((call) => elapsed(call)))
    for (const { ms, error } of results) {
      expect(error).toBeInstanceOf(SallyportError)
      expect(error).toMatchObject({ code })
      expect(ms).toBeLessThan(code === 'SP_BACKEND_TIMEOUT' ? timeoutMs + 200 : 50)
    }
  })
})
