import { type DecisionBackend, invalidCheckpoint, MemoryStore, type Verdict } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, type Site, startSite } from './harness.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

const fixed = (name: string, verdict: Verdict, extra: Partial<DecisionBackend> = {}): DecisionBackend => ({
  name,
  decide: async () => ({ verdict, reason: `${name}:${verdict}`, signals: { score: verdict.length } }),
  ...extra,
})
const hanging = (name: string, timeoutMs: number): DecisionBackend => ({
  name,
  timeoutMs,
  decide: (_input, { signal }) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
})

describe(`several backends at once (${framework})`, () => {
  it('the strictest verdict wins and each backend has its part in signals', async () => {
    site = await startSite({ gate: { backend: [fixed('a', 'allow'), fixed('b', 'challenge'), fixed('c', 'review')] } })
    const response = await request(site.url).get('/api').expect(403)
    expect(response.body).toEqual({ error: 'challenge_required', reason: 'b:challenge' })
    expect(site.decisions.at(-1)).toMatchObject({
      verdict: 'challenge',
      backend: 'b',
      source: 'backend',
      signals: {
        a: { verdict: 'allow', source: 'backend', reason: 'a:allow', signals: { score: 5 } },
        b: { verdict: 'challenge', source: 'backend' },
        c: { verdict: 'review', source: 'backend' },
      },
    })
  })

  it('a failing backend contributes its fallback verdict', async () => {
    const failing: DecisionBackend = {
      name: 'failing',
      decide: async () => {
        throw new Error('down')
      },
    }
    site = await startSite({ gate: { backend: [fixed('ok', 'allow'), failing], onError: { network: 'review' } } })
    const response = await request(site.url).get('/').expect(200)
    expect(response.body.decision).toMatchObject({ verdict: 'review', source: 'fallback', reason: 'network', backend: 'failing' })
  })

  it("a backend's own shorter timeout cuts only that backend", async () => {
    site = await startSite({ gate: { backend: [fixed('fast', 'allow'), hanging('slow', 40)], timeoutMs: 1000 } })
    await request(site.url).get('/').expect(200)
    const decision = site.decisions.at(-1)
    expect(decision?.signals).toMatchObject({ fast: { source: 'backend' }, slow: { source: 'fallback', reason: 'timeout' } })
    expect(decision?.latencyMs).toBeLessThan(200)
  })

  it('two backends with the same name are refused at construction', async () => {
    await expect(startSite({ gate: { backend: [fixed('x', 'allow'), fixed('x', 'deny')] } })).rejects.toMatchObject({
      code: 'SP_INVALID_OPTION',
      option: 'backend',
    })
  })
})

describe(`invalid checkpoint data (${framework})`, () => {
  const strict: DecisionBackend = {
    name: 'strict',
    decide: async (input) => {
      if (input.checkpoint !== null) throw invalidCheckpoint('transaction.currency', 'an ISO 4217 code such as "EUR"')
      return { verdict: 'allow' }
    },
  }

  it("reaches the framework's error handling as a 400, and the route does not run", async () => {
    site = await startSite({ gate: { backend: strict } })
    const response = await request(site.url).post('/login').send({ email: 'ada@example.com' })
    expect(response.status).toBe(400)
    expect(site.handled()).toBe(0)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'invalid_checkpoint' })
  })

  it('in monitor mode is logged and the route runs', async () => {
    site = await startSite({ gate: { backend: strict, mode: 'monitor' } })
    await request(site.url).post('/login').send({ email: 'ada@example.com' }).expect(200)
    expect(site.logs).toContainEqual(['error', 'SP_INVALID_CHECKPOINT'])
  })
})

describe(`the decision cache (${framework})`, () => {
  const counting = (verdict: Verdict) => {
    const calls = { count: 0 }
    const backend: DecisionBackend = {
      name: 'counting',
      cookies: ['vid'],
      decide: async () => {
        calls.count++
        return { verdict, reason: `counted:${verdict}`, requestId: `r${calls.count}` }
      },
    }
    return { backend, calls }
  }

  it('reuses a verdict for the same visitor within its TTL and says so', async () => {
    const { backend, calls } = counting('deny')
    site = await startSite({ gate: { backend, cache: { ttlMs: { deny: 60_000 } } } })
    // A deny is kept for a visitor its visitor cookie tells apart.
    await request(site.url).get('/a').set('Cookie', 'vid=one').expect(403)
    await request(site.url).get('/b').set('Cookie', 'vid=one').expect(403)
    expect(calls.count).toBe(1)
    expect(site.decisions.map((decision) => decision.source)).toEqual(['backend', 'cache'])
    expect(site.decisions[1]).toMatchObject({ verdict: 'deny', reason: 'counted:deny', requestId: 'r1' })
  })

  it('keys on the visitor cookie the backend declares before the IP', async () => {
    const { backend, calls } = counting('allow')
    site = await startSite({ gate: { backend, cache: { ttlMs: 60_000 } } })
    await request(site.url).get('/').set('Cookie', 'vid=one').expect(200)
    await request(site.url).get('/').set('Cookie', 'vid=one').expect(200)
    await request(site.url).get('/').set('Cookie', 'vid=two').expect(200)
    expect(calls.count).toBe(2)
  })

  it('never caches checkpoints unless asked, nor challenges by default, nor fallbacks', async () => {
    const allow = counting('allow')
    site = await startSite({ gate: { backend: allow.backend, cache: {}, skip: ['/login'] } })
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(200)
    await request(site.url).post('/login').send({ email: 'a@example.com' }).expect(200)
    expect(allow.calls.count).toBe(2)
    await site.close()

    const challenge = counting('challenge')
    site = await startSite({ gate: { backend: challenge.backend, cache: {} } })
    await request(site.url).get('/').expect(403)
    await request(site.url).get('/').expect(403)
    expect(challenge.calls.count).toBe(2)
    await site.close()

    let failures = 0
    const failing: DecisionBackend = {
      name: 'failing',
      decide: async () => {
        failures++
        throw new Error('down')
      },
    }
    site = await startSite({ gate: { backend: failing, cache: { ttlMs: 60_000 }, breaker: false } })
    await request(site.url).get('/').expect(200)
    await request(site.url).get('/').expect(200)
    expect(failures).toBe(2)
  })

  it('shares cached verdicts between gates through one store', async () => {
    const store = new MemoryStore()
    const first = counting('deny')
    site = await startSite({ gate: { backend: first.backend, cache: { store } } })
    await request(site.url).get('/').set('Cookie', 'vid=v1').expect(403)
    await site.close()
    const second = counting('allow')
    site = await startSite({ gate: { backend: second.backend, cache: { store } } })
    await request(site.url).get('/').set('Cookie', 'vid=v1').expect(403)
    expect(second.calls.count).toBe(0)
    expect(site.decisions.at(-1)).toMatchObject({ source: 'cache', verdict: 'deny', backend: 'counting' })
  })
})

describe(`ties between backends (${framework})`, () => {
  it('name the backend that answered rather than one that fell back', async () => {
    const down: DecisionBackend = {
      name: 'vendor',
      decide: async () => {
        throw new Error('down')
      },
    }
    site = await startSite({ gate: { backend: [down, fixed('local', 'allow')] } })
    await request(site.url).get('/').expect(200)
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'allow', source: 'backend', backend: 'local', reason: 'local:allow' })
  })
})
