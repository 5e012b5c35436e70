/** The static-asset skip never hides a route the application serves dynamically. */
import { type DecisionBackend, type DecisionInput, localPolicies } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, rawRequest, type Site, startSite } from './harness.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

function denying() {
  const seen: string[] = []
  const backend: DecisionBackend = {
    name: 'deny',
    decide: async (input: DecisionInput) => {
      seen.push(`${input.method} ${input.path}`)
      return { verdict: 'deny', reason: 'denylisted' }
    },
  }
  return { backend, seen }
}

describe(`static-asset skip (${framework})`, () => {
  it('a dynamic route whose path ends in .css is judged: a deny backend answers 403 and the app never runs', async () => {
    const { backend, seen } = denying()
    site = await startSite({ gate: { backend } })
    const response = await request(site.url).get('/admin/users.css').set('Accept', 'application/json').expect(403)
    expect(response.body).toMatchObject({ error: 'forbidden' })
    expect(site.handled()).toBe(0)
    expect(seen).toEqual(['GET /admin/users.css'])
    expect(site.decisions[0]).toMatchObject({ verdict: 'deny', source: 'backend' })
  })

  it("the local engine's user-agent rules see asset-looking paths", async () => {
    site = await startSite({
      gate: { backend: localPolicies({ logger: { warn() {}, error() {} }, secret: 's'.repeat(32), denyUserAgents: ['badbot'] }) },
    })
    await request(site.url).get('/admin/export.js').set('User-Agent', 'badbot/2.0').expect(403)
    expect(site.handled()).toBe(0)
  })

  it('a .css under a configured static prefix is still skipped, for GET and HEAD only', async () => {
    const { backend, seen } = denying()
    site = await startSite({ gate: { backend, staticPaths: ['/assets', '/static/'] } })
    await request(site.url).get('/assets/app.css').expect(200)
    await request(site.url).head('/static/img/logo.PNG').expect(200)
    expect(seen).toEqual([])
    expect(site.decisions.map((decision) => decision.reason)).toEqual(['skip:static', 'skip:static'])

    await request(site.url).post('/assets/app.css').set('Accept', 'application/json').expect(403)
    await request(site.url).get('/assetsx/app.css').set('Accept', 'application/json').expect(403)
    await request(site.url).get('/assets/report.json').set('Accept', 'application/json').expect(403)
    expect(seen).toEqual(['POST /assets/app.css', 'GET /assetsx/app.css', 'GET /assets/report.json'])
  })

  it('a path that only looks as if it were under a static prefix is judged', async () => {
    const { backend } = denying()
    site = await startSite({ gate: { backend, staticPaths: ['/assets'] } })
    for (const target of ['/assets/../admin/users.css', '/assets/%2e%2e/admin/users.css', '/assets%2fx.css', '/ASSETS/app.css']) {
      const response = await rawRequest(site.port, [`GET ${target} HTTP/1.1`, 'Host: shop.test', 'Accept: application/json'])
      expect(response.status, target).toBe(403)
    }
    expect(site.handled()).toBe(0)
  })

  it('OPTIONS is skipped everywhere', async () => {
    const { backend, seen } = denying()
    site = await startSite({ gate: { backend } })
    await request(site.url).options('/admin/users').expect(200)
    expect(seen).toEqual([])
    expect(site.decisions[0]).toMatchObject({ source: 'skip', reason: 'skip:options' })
  })
})
