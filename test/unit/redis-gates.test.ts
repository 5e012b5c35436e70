/**
 * Two instances of one site behind a load balancer, each its own Express 5 app with its own
 * gate, store and Redis client (node-redis on one, ioredis on the other), sharing one real
 * Redis: one velocity limit holds across both. And when that Redis is down or hangs, logins
 * still go through, within the decision budget.
 */
import { type Decision, type DecisionBackend, localPolicies, MemoryStore, type Rule, type Store } from '@sallyport/core'
import { guard } from '@sallyport/express'
import { type RedisStore, redisStore } from '@sallyport/redis'
import express from 'express-5'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type RedisServer, startRedisServer } from '../../packages/redis/test/redis-server.js'

const rules: Rule[] = [
  {
    name: 'login-velocity',
    verdict: 'deny',
    when: { all: [{ checkpoint: { event: 'login' } }, { velocity: { key: 'ip', limit: 5, windowMs: 60_000 } }] },
  },
]

interface Instance {
  app: express.Express
  decisions: Decision[]
  /** Codes Sallyport logged. */
  logs: string[]
  /** Logins the site's own handler saw. */
  handled: () => number
  close(): Promise<void>
}

function instance(store: Store, gateTimeoutMs?: number): Instance {
  const decisions: Decision[] = []
  const logs: string[] = []
  const record = (object: Record<string, unknown>) => logs.push(String(object.code))
  const logger = { warn: record, error: record }
  const gate = guard({
    backend: localPolicies({ store, rules, secret: 's'.repeat(32), logger }),
    logger,
    onDecision: (decision) => decisions.push(decision),
    ...(gateTimeoutMs === undefined ? {} : { timeoutMs: gateTimeoutMs }),
  })
  let handled = 0
  const app = express()
  app.post('/login', express.json(), gate.checkpoint({ event: 'login', email: (req) => String(req.body?.email) }), (_req, res) => {
    handled++
    res.json({ ok: true })
  })
  return { app, decisions, logs, handled: () => handled, close: () => gate.close() }
}

/** One instance on node-redis, one on ioredis, each with its own store, as two processes would have. */
async function pairOn(server: RedisServer, prefix: string, gateTimeoutMs?: number) {
  const nodeClient = createClient({ url: server.url })
  nodeClient.on('error', () => {})
  await nodeClient.connect()
  const ioClient = new Redis(server.url, { lazyConnect: true })
  ioClient.on('error', () => {})
  await ioClient.connect()
  const stores: RedisStore[] = [redisStore({ client: nodeClient, prefix }), redisStore({ client: ioClient, prefix })]
  const [a, b] = stores.map((store) => instance(store, gateTimeoutMs)) as [Instance, Instance]
  return {
    a,
    b,
    async close() {
      await a.close()
      await b.close()
      for (const store of stores) await store.close()
      if (nodeClient.isOpen) nodeClient.destroy()
      ioClient.disconnect()
    },
  }
}

/** Login attempts alternating between the instances, as a round-robin balancer sends them. */
async function alternateLogins(instances: [Instance, Instance], attempts: number): Promise<Array<{ status: number; ms: number }>> {
  const results: Array<{ status: number; ms: number }> = []
  for (let index = 0; index < attempts; index++) {
    const started = performance.now()
    const response = await request((index % 2 === 0 ? instances[0] : instances[1]).app)
      .post('/login')
      .set('accept', 'application/json')
      .send({ email: 'victim@example.com', password: 'guess' })
    results.push({ status: response.status, ms: performance.now() - started })
  }
  return results
}

describe('two gates sharing one Redis', () => {
  let server: RedisServer
  const cleanups: Array<() => Promise<void>> = []
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup()
  })
  afterAll(async () => {
    await server?.kill()
  })

  it('enforce one velocity limit together: the 6th login overall is denied though each gate saw 3', async () => {
    const pair = await pairOn(server, 'shared-limit:')
    cleanups.push(pair.close)
    const results = await alternateLogins([pair.a, pair.b], 6)

    expect(results.map((result) => result.status)).toEqual([200, 200, 200, 200, 200, 403])
    expect(pair.a.decisions).toHaveLength(3)
    expect(pair.b.decisions).toHaveLength(3)
    expect(pair.a.handled()).toBe(3)
    expect(pair.b.handled()).toBe(2)
    expect(pair.b.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'login-velocity', source: 'backend', backend: 'local' })

    // The limit stays shut on both instances for the rest of the window.
    const more = await alternateLogins([pair.a, pair.b], 2)
    expect(more.map((result) => result.status)).toEqual([403, 403])
    expect(pair.a.logs).toEqual([])
    expect(pair.b.logs).toEqual([])
  })

  it('(for contrast) with the default in-memory stores, each gate counts alone and all 6 get through', async () => {
    const a = instance(new MemoryStore())
    const b = instance(new MemoryStore())
    cleanups.push(
      () => a.close(),
      () => b.close(),
    )
    const results = await alternateLogins([a, b], 6)
    expect(results.map((result) => result.status)).toEqual([200, 200, 200, 200, 200, 200])
  })
})

describe('two gates sharing one Redis as their decision cache', () => {
  let server: RedisServer
  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterAll(async () => {
    await server?.kill()
  })

  it('reuse a verdict one of them got from the backend', async () => {
    let backendCalls = 0
    const backend: DecisionBackend = {
      name: 'counting',
      cookies: ['vid'],
      async decide() {
        backendCalls++
        return { verdict: 'deny', reason: 'known-bad' }
      },
    }
    const clients = [createClient({ url: server.url }), createClient({ url: server.url })]
    const sites = await Promise.all(
      clients.map(async (client) => {
        client.on('error', () => {})
        await client.connect()
        const store = redisStore({ client, prefix: 'cache:' })
        const decisions: Decision[] = []
        const gate = guard({
          backend,
          cache: { store },
          onDecision: (decision) => decisions.push(decision),
          logger: { warn() {}, error() {} },
        })
        const app = express()
        app.use(gate)
        app.get('/', (_req, res) => {
          res.send('home')
        })
        return { app, decisions, gate, store, client }
      }),
    )
    const [a, b] = sites as [(typeof sites)[number], (typeof sites)[number]]
    try {
      // A deny is shared only for the visitor who earned it: the one with this visitor cookie.
      expect((await request(a.app).get('/').set('Cookie', 'vid=v1')).status).toBe(403)
      // The cache is written after the answer, off the request's path: give it a moment to land.
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect((await request(b.app).get('/').set('Cookie', 'vid=v1')).status).toBe(403)
      expect(backendCalls).toBe(1)
      expect(a.decisions[0]).toMatchObject({ source: 'backend', reason: 'known-bad' })
      expect(b.decisions[0]).toMatchObject({ source: 'cache', verdict: 'deny', reason: 'known-bad', backend: 'counting' })
    } finally {
      for (const site of sites) {
        await site.gate.close()
        await site.store.close()
        site.client.destroy()
      }
    }
  })
})

describe('two gates whose Redis fails', () => {
  let server: RedisServer
  let pair: Awaited<ReturnType<typeof pairOn>> | undefined
  afterEach(async () => {
    server?.resume()
    await pair?.close()
    pair = undefined
    await server?.kill()
  })

  it('let logins through (fail-open) at once when Redis is down', async () => {
    server = await startRedisServer()
    pair = await pairOn(server, 'down:')
    await server.kill()
    const results = await alternateLogins([pair.a, pair.b], 8)

    expect(results.map((result) => result.status)).toEqual(Array(8).fill(200))
    // The local engine's budget is 50 ms; the rest is supertest starting a server per request.
    for (const { ms } of results) expect(ms).toBeLessThan(300)
    for (const decision of [...pair.a.decisions, ...pair.b.decisions]) expect(decision.verdict).toBe('allow')
  })

  it('let logins through and log SP_STORE_FAILED when the store gives up before the decision budget', async () => {
    server = await startRedisServer()
    // Store calls give up after 50 ms; the gate waits up to 500 ms, so the engine sees the failure.
    pair = await pairOn(server, 'down-logged:', 500)
    await server.kill()
    const results = await alternateLogins([pair.a, pair.b], 6)

    expect(results.map((result) => result.status)).toEqual(Array(6).fill(200))
    for (const { ms } of results) expect(ms).toBeLessThan(300)
    for (const decision of [...pair.a.decisions, ...pair.b.decisions]) {
      expect(decision).toMatchObject({ verdict: 'allow', reason: null, source: 'backend' })
    }
    // Reported once per instance, not once per request.
    expect(pair.a.logs).toEqual(['SP_STORE_FAILED'])
    expect(pair.b.logs).toEqual(['SP_STORE_FAILED'])
  })

  it('let logins through within the budget when Redis hangs', async () => {
    server = await startRedisServer()
    pair = await pairOn(server, 'hang:')
    server.pause()
    const results = await alternateLogins([pair.a, pair.b], 6)

    expect(results.map((result) => result.status)).toEqual(Array(6).fill(200))
    for (const { ms } of results) expect(ms).toBeLessThan(300)
  })
})
