/** What a backend hands back — page URLs and cookies — is checked before it reaches the visitor. */
import { type DecisionBackend, localPolicies, SallyportError, type Verdict } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { framework, rawRequest, type Site, startSite } from './harness.js'

let site: Site | undefined
afterEach(async () => {
  vi.unstubAllEnvs()
  await site?.close()
  site = undefined
})

const HTML = 'text/html,application/xhtml+xml,*/*;q=0.8'

/** A backend whose hosted page changes per request, as a vendor reply or a getter could make it. */
function pagedBackend(verdict: Verdict) {
  const page = { current: 'https://verify.shop.test/page' }
  const backend: DecisionBackend = {
    name: 'paged',
    pages: {
      get challenge() {
        return page.current
      },
      get deny() {
        return page.current
      },
    },
    decide: async () => ({ verdict, reason: 'risky' }),
  }
  return { backend, page }
}

async function constructionError(run: () => Promise<unknown>): Promise<SallyportError> {
  let caught: unknown
  try {
    site = (await run()) as Site
  } catch (error) {
    caught = error
  }
  expect(caught, 'expected the site to fail at start-up').toBeInstanceOf(SallyportError)
  return caught as SallyportError
}

describe(`hosted page URLs (${framework})`, () => {
  it.each([
    ['challenge', 'javascript:alert(1)'],
    ['deny', 'data:text/html,<script>alert(1)</script>'],
    ['challenge', 'JavaScript:alert(document.cookie)'],
    ['deny', 'ftp://files.shop.test/blocked'],
  ] as const)('a backend configured with a %s page of %s fails at start-up', async (kind, url) => {
    const backend: DecisionBackend = { name: 'bad-pages', pages: { [kind]: url }, decide: async () => ({ verdict: kind }) }
    const error = await constructionError(() => startSite({ gate: { backend } }))
    expect(error.code).toBe('SP_INVALID_OPTION')
    expect(error.message).toContain('bad-pages')
  })

  it.each([
    ['challenge', 'javascript:alert(1)'],
    ['challenge', 'data:text/html,<script>alert(1)</script>'],
    ['deny', 'javascript:alert(1)'],
    ['deny', 'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='],
    ['challenge', '/\\evil.example/challenge'],
    ['deny', ' javascript:alert(1)'],
  ] as const)('a %s page that turns into %s per request never reaches Location: the request gets a 403', async (verdict, url) => {
    const { backend, page } = pagedBackend(verdict)
    site = await startSite({ gate: { backend } })
    page.current = url
    const response = await rawRequest(site.port, ['GET /account HTTP/1.1', 'Host: shop.test', `Accept: ${HTML}`])
    expect(response.status).toBe(403)
    expect(response.header('location')).toEqual([])
    expect(response.body).toContain(verdict === 'challenge' ? 'challenge_required' : 'Access denied')
    expect(site.handled()).toBe(0)
  })

  it('a good page URL from the same backend is still followed', async () => {
    const { backend } = pagedBackend('challenge')
    site = await startSite({ gate: { backend } })
    const response = await request(site.url).get('/account').set('Accept', HTML).expect(302)
    expect(new URL(response.headers.location ?? '').host).toBe('verify.shop.test')
  })

  it('with NODE_ENV=production an http page is refused, while a path on the site itself is followed', async () => {
    vi.stubEnv('NODE_ENV', 'production')
    const { backend, page } = pagedBackend('challenge')
    site = await startSite({ gate: { backend } })
    page.current = 'http://verify.shop.test/page'
    const plain = await request(site.url).get('/account').set('Accept', HTML).expect(403)
    expect(plain.headers.location).toBeUndefined()
    await site.close()
    site = undefined

    site = await startSite({ gate: { backend: localPolicies({ logger: { warn() {}, error() {} }, secret: 's'.repeat(32) }) } })
    const local = await request(site.url).get('/account').set('Accept', HTML).set('User-Agent', 'curl/8.5.0').expect(302)
    expect(local.headers.location).toMatch(new RegExp(`^${site.url}/\\.sallyport/challenge\\?`))
  })

  it('with NODE_ENV=production an http challenge.url option fails at start-up', async () => {
    vi.stubEnv('NODE_ENV', 'production')
    const { backend } = pagedBackend('challenge')
    const error = await constructionError(() => startSite({ gate: { backend, challenge: { url: 'http://verify.shop.test/' } } }))
    expect(error).toMatchObject({ code: 'SP_INVALID_OPTION', option: 'challenge.url' })
  })
})

describe(`cookie Domain and count limits (${framework})`, () => {
  const setting = (setCookies: string[], name = 'setter', cookies = ['vid']): DecisionBackend => ({
    name,
    cookies,
    decide: async () => ({ verdict: 'allow', setCookies }),
  })

  it('drops a cookie whose Domain is a bare name or a public suffix of the host, keeps one for the site', async () => {
    site = await startSite({
      gate: { backend: setting(['vid=1; Domain=test; Path=/', 'vid=2; Domain=.test; Path=/', 'vid=3; Domain=shop.test; Path=/']) },
    })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test'])
    expect(response.status).toBe(200)
    expect(response.header('set-cookie').sort()).toEqual(['app_session=s1; Path=/; HttpOnly', 'vid=3; Domain=shop.test; Path=/'])
    expect(site.logs).toContainEqual(['warn', 'SP_WARN_COOKIE_REJECTED'])
  })

  it('drops a cookie for a multi-label public suffix such as co.uk', async () => {
    site = await startSite({ gate: { backend: setting(['vid=1; Domain=co.uk', 'vid=2; Domain=shop.co.uk']) } })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: www.shop.co.uk'])
    expect(response.header('set-cookie').sort()).toEqual(['app_session=s1; Path=/; HttpOnly', 'vid=2; Domain=shop.co.uk'])
  })

  it('forwards at most 10 backend cookies per decision, of 300 offered', async () => {
    const names = Array.from({ length: 300 }, (_, index) => `c${index}`)
    site = await startSite({
      gate: {
        backend: setting(
          names.map((name) => `${name}=1; Path=/`),
          'flood',
          names,
        ),
      },
    })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test'])
    expect(response.status).toBe(200)
    const cookies = response.header('set-cookie')
    expect(cookies).toContain('app_session=s1; Path=/; HttpOnly')
    expect(cookies.filter((cookie) => cookie.startsWith('c'))).toEqual(names.slice(0, 10).map((name) => `${name}=1; Path=/`))
    expect(site.decisions[0]?.setCookies).toHaveLength(10)
    expect(site.logs).toContainEqual(['warn', 'SP_WARN_COOKIE_REJECTED'])
  })

  it('the limit of 10 counts every backend of a fan-out together', async () => {
    const first = Array.from({ length: 8 }, (_, index) => `a${index}`)
    const second = Array.from({ length: 8 }, (_, index) => `b${index}`)
    site = await startSite({
      gate: {
        backend: [
          setting(
            first.map((name) => `${name}=1`),
            'first',
            first,
          ),
          setting(
            second.map((name) => `${name}=1`),
            'second',
            second,
          ),
        ],
      },
    })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test'])
    expect(response.status).toBe(200)
    expect(response.header('set-cookie').filter((cookie) => cookie !== 'app_session=s1; Path=/; HttpOnly')).toHaveLength(10)
  })
})
