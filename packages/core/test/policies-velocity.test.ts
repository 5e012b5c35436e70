import { type Checkpoint, createGate, type Logger } from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'
import { CLEARANCE_COOKIE, clearanceBinding, issueClearance } from '../src/challenge/index.js'
import type { Rule } from '../src/policies/types.js'
import { MemoryStore, type Store } from '../src/store.js'
import { CHROME_UA, closeAll, ctx, engine, input, judge, SECRET, view } from './policies-helpers.js'

afterEach(closeAll)

const attempt = (email = 'victim@site.example', event = 'login'): { method: string; path: string; checkpoint: Checkpoint } => ({
  method: 'POST',
  path: `/${event}`,
  checkpoint: { event, status: 'attempted', email },
})

/** A store that remembers the keys it was asked to count. */
function recordingStore(): Store & { keys: string[] } {
  const inner = new MemoryStore()
  const keys: string[] = []
  return {
    keys,
    increment: (key, ttl) => {
      keys.push(key)
      return inner.increment(key, ttl)
    },
    get: (key) => inner.get(key),
    delete: (key) => inner.delete(key),
  }
}

describe('velocity with the default rules', () => {
  it('goes allow → challenge → deny over a login burst from one IP, then forgets after the window', async () => {
    let now = 1_700_000_000_000
    const backend = engine({ store: new MemoryStore({ now: () => now }) })
    const seen: string[] = []
    for (let index = 1; index <= 35; index++) {
      const [verdict, reason] = await judge(backend, attempt(`user${index}@site.example`))
      seen.push(`${index}:${verdict}:${reason}`)
    }
    expect(seen.slice(0, 10).every((entry) => entry.endsWith(':allow:null'))).toBe(true)
    expect(seen[10]).toBe('11:challenge:checkpoint-flood')
    expect(seen[29]).toBe('30:challenge:checkpoint-flood')
    expect(seen[30]).toBe('31:deny:checkpoint-flood-severe')
    expect(seen[34]).toBe('35:deny:checkpoint-flood-severe')

    // Another IP, and another event from the same IP, have counters of their own.
    expect(await judge(backend, { ...attempt(), ip: '198.51.100.1' })).toEqual(['allow', null])
    expect(await judge(backend, attempt('new@site.example', 'signup'))).toEqual(['allow', null])
    // Page loads are not checkpoint attempts.
    expect(await judge(backend)).toEqual(['allow', null])

    now += 10 * 60_000
    expect(await judge(backend, attempt())).toEqual(['allow', null])
  })

  it('keeps counting toward deny for a visitor who solved the challenge', async () => {
    const cookies = { [CLEARANCE_COOKIE]: issueClearance(SECRET, clearanceBinding('203.0.113.9', CHROME_UA), Date.now() + 60_000) }
    const backend = engine()
    const verdicts: string[] = []
    for (let index = 0; index < 32; index++) verdicts.push((await judge(backend, { ...attempt(), cookies }))[0])
    expect(verdicts.slice(0, 30).every((verdict) => verdict === 'allow')).toBe(true)
    expect(verdicts.slice(30)).toEqual(['deny', 'deny'])
  })
})

describe('velocity keys', () => {
  const perEmail: Rule = {
    name: 'email-spray',
    verdict: 'challenge',
    when: { checkpoint: 'login', velocity: { key: 'email', limit: 2, windowMs: 60_000 } },
  }

  it('counts per email, any case, and never writes the address into the store', async () => {
    const store = recordingStore()
    const backend = engine({ store, rules: [perEmail] })
    expect(await judge(backend, { ...attempt('Victim@Site.example'), ip: '198.51.100.1' })).toEqual(['allow', null])
    expect(await judge(backend, { ...attempt('victim@site.example'), ip: '198.51.100.2' })).toEqual(['allow', null])
    expect(await judge(backend, { ...attempt(' VICTIM@site.example '), ip: '198.51.100.3' })).toEqual(['challenge', 'email-spray'])
    expect(await judge(backend, attempt('other@site.example'))).toEqual(['allow', null])
    expect(store.keys.some((key) => key.toLowerCase().includes('victim'))).toBe(false)
    expect(store.keys[0]).toMatch(/^velocity:email-spray:login\|[A-Za-z0-9_-]{22}$/)
    // No email, no count.
    expect(await judge(backend, { ...attempt(), checkpoint: { event: 'login', status: 'attempted' } })).toEqual(['allow', null])
    expect(store.keys).toHaveLength(4)
  })

  it('takes a function; null (or a throw) means do not count', async () => {
    const store = recordingStore()
    const backend = engine({
      store,
      rules: [
        {
          name: 'per-tenant',
          verdict: 'deny',
          when: {
            velocity: {
              key: (request) => {
                if (request.headers['x-boom'] !== undefined) throw new Error('boom')
                return request.headers['x-tenant'] ?? null
              },
              limit: 1,
              windowMs: 60_000,
            },
          },
        },
      ],
    })
    expect(await judge(backend, { headers: { 'x-tenant': 'acme' } })).toEqual(['allow', null])
    expect(await judge(backend, { headers: { 'x-tenant': 'acme' } })).toEqual(['deny', 'per-tenant'])
    expect(await judge(backend, { headers: { 'x-tenant': 'globex' } })).toEqual(['allow', null])
    expect(await judge(backend, { headers: {} })).toEqual(['allow', null])
    expect(await judge(backend, { headers: { 'x-tenant': 'acme', 'x-boom': '1' } })).toEqual(['allow', null])
    expect(store.keys).toHaveLength(3)
    expect(store.keys[0]).toMatch(/^velocity:per-tenant:\|/)
  })

  it('counts only requests that pass the other tests of its condition', async () => {
    const store = recordingStore()
    const backend = engine({
      store,
      rules: [{ name: 'posts', verdict: 'deny', when: { velocity: { key: 'ip', limit: 1, windowMs: 60_000 }, method: 'POST' } }],
    })
    for (let index = 0; index < 5; index++) await judge(backend)
    expect(store.keys).toEqual([])
    expect(await judge(backend, { method: 'POST' })).toEqual(['allow', null])
    expect(await judge(backend, { method: 'POST' })).toEqual(['deny', 'posts'])
  })
})

describe('when the store fails', () => {
  const rule: Rule = { name: 'burst', verdict: 'deny', when: { velocity: { key: 'ip', limit: 0, windowMs: 1000 } } }

  function recordingLogger(): Logger & { errors: Array<Record<string, unknown>> } {
    const errors: Array<Record<string, unknown>> = []
    return { errors, warn() {}, error: (object) => void errors.push(object) }
  }

  it('fails open: the condition is false, other rules still decide, and the failure is logged once a minute', async () => {
    const logger = recordingLogger()
    const broken: Store = {
      increment: async () => {
        throw new Error('connection refused')
      },
      get: async () => undefined,
      delete: async () => {},
    }
    const backend = engine({ store: broken, logger, rules: [rule, { name: 'catch-all', verdict: 'review', priority: -1 }] })
    for (let index = 0; index < 5; index++) expect(await judge(backend)).toEqual(['review', 'catch-all'])
    expect(logger.errors).toHaveLength(1)
    expect(logger.errors[0]).toMatchObject({ code: 'SP_STORE_FAILED' })
  })

  it('treats a reply without a count as a failure', async () => {
    const logger = recordingLogger()
    const odd = { increment: async () => ({ total: 3 }), get: async () => undefined, delete: async () => {} } as unknown as Store
    expect(await judge(engine({ store: odd, logger, rules: [rule] }))).toEqual(['allow', null])
    expect(logger.errors).toHaveLength(1)
  })

  it('does not hang on a store that never answers: the decision signal bounds it', async () => {
    const hanging: Store = { increment: () => new Promise(() => {}), get: async () => undefined, delete: async () => {} }
    const backend = engine({ store: hanging, rules: [rule] })
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('deadline')), 30)
    const started = performance.now()
    expect(await backend.decide(input(), ctx(controller.signal))).toEqual({ verdict: 'allow', reason: null })
    expect(performance.now() - started).toBeLessThan(1000)
    expect(await backend.decide(input(), ctx(controller.signal))).toEqual({ verdict: 'allow', reason: null })
  })

  it('through the gate, a hanging store ends in the timeout fallback within the budget', async () => {
    const hanging: Store = { increment: () => new Promise(() => {}), get: async () => undefined, delete: async () => {} }
    const gate = createGate({ backend: engine({ store: hanging, rules: [rule] }), timeoutMs: 40, logger: { warn() {}, error() {} } })
    const started = performance.now()
    const { decision } = await gate.decide(view())
    expect(decision).toMatchObject({ verdict: 'allow', source: 'fallback', reason: 'timeout' })
    expect(performance.now() - started).toBeLessThan(1000)
    await gate.close()
  })
})
