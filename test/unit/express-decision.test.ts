/**
 * `req.sallyport` on Express 4 and 5: Sallyport keeps it in an accessor on Express's shared
 * request prototype (adding a property to a request Express has re-prototyped costs a new
 * hidden class each time). These tests hold it to what a user sees: the decision is there in
 * every app and sub-app, it can be reassigned, and requests never share one.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { type Decision, type DecisionBackend, localPolicies } from '@sallyport/core'
import { type GuardRequest, guard } from '@sallyport/express'
import request from 'supertest'
import { describe, expect, it } from 'vitest'

const quiet = { warn() {}, error() {} }
const browser = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36',
  accept: 'text/html',
  'accept-language': 'en',
}
type Express = typeof import('express')
type Req = GuardRequest & { sallyport?: Decision }

describe.each(['express-4', 'express-5'])('req.sallyport on %s', (version) => {
  async function load(): Promise<Express> {
    return ((await import(version)) as { default: Express }).default
  }

  it('is set before the route, differs per request, and is seen by a sub-app mounted after the guard', async () => {
    const express = await load()
    const app = express()
    const rules = [{ name: 'flagged', verdict: 'review' as const, when: { header: { name: 'x-flag', present: true } } }]
    app.use(guard({ logger: quiet, backend: localPolicies({ logger: quiet, rules }) }))
    const sub = express()
    sub.get('/page', (req, res) => {
      res.json({ where: 'sub', decision: (req as Req).sallyport ?? null })
    })
    app.use('/sub', sub)
    app.get('/page', (req, res) => {
      res.json({ where: 'main', decision: (req as Req).sallyport ?? null })
    })

    const main = await request(app).get('/page').set(browser)
    expect(main.status).toBe(200)
    expect(main.body.decision).toMatchObject({ verdict: 'allow', source: 'backend', backend: 'local' })
    const inSub = await request(app).get('/sub/page').set(browser)
    expect(inSub.body).toMatchObject({ where: 'sub', decision: { verdict: 'allow', source: 'backend' } })
    const flagged = await request(app)
      .get('/page')
      .set({ ...browser, 'x-flag': '1' })
    expect(flagged.body.decision).toMatchObject({ verdict: 'review', reason: 'flagged' })
    await request(app).get('/page').set(browser).expect(200)
    expect((await request(app).get('/page').set(browser)).body.decision.reason).toBeNull()
  })

  it('reaches the parent app after a guarded sub-app hands the request back', async () => {
    const express = await load()
    const app = express()
    const sub = express()
    sub.use(guard({ logger: quiet, backend: localPolicies({ logger: quiet }) }))
    app.use('/shop', sub)
    app.get('/shop/cart', (req, res) => {
      res.json({ decision: (req as Req).sallyport ?? null })
    })
    const response = await request(app).get('/shop/cart').set(browser)
    expect(response.body.decision).toMatchObject({ verdict: 'allow', source: 'backend' })
  })

  it('can be reassigned and read back by later middleware, and is undefined on unguarded routes', async () => {
    const express = await load()
    const app = express()
    app.get('/open', (req, res) => {
      res.json({ has: (req as Req).sallyport !== undefined })
    })
    app.use(guard({ logger: quiet, backend: localPolicies({ logger: quiet }) }))
    app.use((req, _res, next) => {
      const decision = (req as Req).sallyport as Decision
      ;(req as Req).sallyport = { ...decision, reason: 'rewritten' }
      next()
    })
    app.get('/page', (req, res) => {
      res.json({ reason: (req as Req).sallyport?.reason })
    })
    expect((await request(app).get('/page').set(browser)).body).toEqual({ reason: 'rewritten' })
    expect((await request(app).get('/open').set(browser)).body).toEqual({ has: false })
  })

  it("follows each app's own `trust proxy`, across apps and sub-apps taking turns", async () => {
    const express = await load()
    // Echoes the client IP Sallyport resolved, so each answer shows which trust was applied.
    const echo: DecisionBackend = {
      name: 'echo',
      decide: async (input) => ({ verdict: 'allow', signals: { ip: input.ip } }),
    }
    const shared = guard({ logger: quiet, backend: echo })
    const route = (req: Req, res: import('express').Response) => {
      res.json({ ip: req.sallyport?.signals.ip ?? null })
    }
    const trusting = express()
    trusting.set('trust proxy', 1)
    trusting.use(shared)
    trusting.get('/ip', route)
    const plain = express()
    plain.use(shared)
    plain.get('/ip', route)
    // A sub-app that trusts one proxy, mounted in an app that trusts none, with its own guard.
    const parent = express()
    const sub = express()
    sub.set('trust proxy', 1)
    sub.use(guard({ logger: quiet, backend: echo }))
    sub.get('/ip', route)
    parent.use('/sub', sub)
    parent.use(shared)
    parent.get('/ip', route)

    const forwarded = { ...browser, 'x-forwarded-for': '203.0.113.7' }
    const ipOf = async (app: import('express').Express, path: string) => (await request(app).get(path).set(forwarded)).body.ip
    for (let turn = 0; turn < 2; turn++) {
      expect(await ipOf(trusting, '/ip')).toBe('203.0.113.7')
      expect(await ipOf(plain, '/ip')).toMatch(/127\.0\.0\.1$/)
      expect(await ipOf(parent, '/sub/ip')).toBe('203.0.113.7')
      expect(await ipOf(parent, '/ip')).toMatch(/127\.0\.0\.1$/)
    }
    // A setting changed while the app runs applies to the next request.
    plain.set('trust proxy', 1)
    expect(await ipOf(plain, '/ip')).toBe('203.0.113.7')
  })
})

describe('req.sallyport without Express', () => {
  it('is an own property on a plain Node request', async () => {
    const middleware = guard({ logger: quiet, backend: localPolicies({ logger: quiet }) })
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      middleware(req as GuardRequest, res, (error) => {
        const decision = (req as Req).sallyport
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ error: error ?? null, own: Object.hasOwn(req, 'sallyport'), verdict: decision?.verdict ?? null }))
      })
    })
    const response = await request(server).get('/').set(browser)
    expect(response.body).toEqual({ error: null, own: true, verdict: 'allow' })
  })
})
