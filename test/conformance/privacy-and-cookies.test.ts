import type { DecisionBackend } from '@sallyport/core'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, rawRequest, type Site, startSite } from './harness.js'

let fake: FakeTrustedAccounts
let site: Site | undefined

beforeAll(async () => {
  fake = await fakeTrustedAccounts()
})
afterAll(() => fake.close())
afterEach(async () => {
  await site?.close()
  site = undefined
  fake.reset()
})

const backend = () => trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url })

describe(`what reaches the backend (${framework})`, () => {
  it('never forwards credentials or cookie values, whatever their case or repetition', async () => {
    site = await startSite({ gate: { backend: backend(), sensitiveHeaders: ['X-Api-Key'] } })
    const response = await rawRequest(site.port, [
      'GET /account?tab=1 HTTP/1.1',
      'Host: shop.test',
      'User-Agent: Mozilla/5.0 (test)',
      'Authorization: Bearer user-token-1',
      'aUtHoRiZaTiOn: Basic dXNlcjpwYXNz',
      'PROXY-AUTHORIZATION: Basic cHJveHk6c2VjcmV0',
      'Proxy-Authenticate: Basic realm=inner',
      'Cookie: session=sess-secret-1; trusted_id=tid_123',
      'cOoKiE: cart=cart-secret-2',
      'Set-Cookie: injected=set-cookie-secret',
      'X-API-KEY: api-secret-3',
    ])
    expect(response.status).toBe(200)
    const [raw] = fake.requests
    for (const secret of [
      'user-token-1',
      'dXNlcjpwYXNz',
      'cHJveHk6c2VjcmV0',
      'realm=inner',
      'sess-secret-1',
      'cart-secret-2',
      'set-cookie-secret',
      'api-secret-3',
    ]) {
      expect(raw?.rawBody).not.toContain(secret)
    }
    const [check] = fake.checks()
    // Only the headers that describe the client: not even Content-Length, which says nothing of it.
    expect(Object.keys(check?.headers ?? {}).sort()).toEqual(['host', 'user-agent'])
    expect(check?.cookies?.sort()).toEqual(['cart', 'session', 'trusted_id'])
    // The query stays behind unless the site names a parameter in `forwardQuery`.
    expect(check).toMatchObject({ requestedPath: '/account', trustedId: 'tid_123' })
    // The fake rejects any request carrying a sensitive header, so a backend verdict proves it was clean.
    expect(site.decisions.at(-1)?.source).toBe('backend')
  })

  it('leaves the application its own request headers', async () => {
    let seenByApp: string | undefined
    site = await startSite({
      gate: {
        backend: backend(),
        onDecision: (_decision, native) => {
          seenByApp = ('req' in native ? native.req : native).headers.authorization
        },
      },
    })
    await request(site.url).get('/').set('Authorization', 'Bearer kept')
    expect(seenByApp).toBe('Bearer kept')
  })
})

describe(`Set-Cookie from the backend (${framework})`, () => {
  it('appends each backend cookie as its own header beside the application cookie', async () => {
    site = await startSite({ gate: { backend: backend() } })
    fake.reply({
      decision: 'allow',
      setCookies: [
        'trusted_id=tid_1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; HttpOnly',
        'trusted_id=tid_1; Expires=Thu, 22 Oct 2037 07:28:00 GMT; Path=/account',
      ],
    })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test'])
    expect(response.status).toBe(200)
    expect(response.header('set-cookie').sort()).toEqual([
      'app_session=s1; Path=/; HttpOnly',
      'trusted_id=tid_1; Expires=Thu, 22 Oct 2037 07:28:00 GMT; Path=/account',
      'trusted_id=tid_1; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/; HttpOnly',
    ])
  })

  it('drops foreign-domain and unlisted cookies from the wire, keeps the good one, answers 200', async () => {
    site = await startSite({ gate: { backend: backend() } })
    fake.reply({
      decision: 'allow',
      setCookies: ['trusted_id=a; Domain=evil.test; Path=/', 'session=stolen; Path=/', 'trusted_id=b; Domain=shop.test; Path=/'],
    })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: www.shop.test'])
    expect(response.status).toBe(200)
    expect(response.header('set-cookie').sort()).toEqual(['app_session=s1; Path=/; HttpOnly', 'trusted_id=b; Domain=shop.test; Path=/'])
    expect(site.logs).toContainEqual(['warn', 'SP_WARN_COOKIE_REJECTED'])
  })

  it('drops cookies with CR/LF or oversized values that a backend hands over', async () => {
    const injecting: DecisionBackend = {
      name: 'injecting',
      cookies: ['vid'],
      async decide() {
        return {
          verdict: 'allow',
          setCookies: ['vid=1\r\nX-Injected: yes', `vid=${'a'.repeat(5000)}`, 'vid=\u0000x', 'vid=ok; Path=/'],
        }
      },
    }
    site = await startSite({ gate: { backend: injecting } })
    const response = await rawRequest(site.port, ['GET / HTTP/1.1', 'Host: shop.test'])
    expect(response.status).toBe(200)
    expect(response.header('x-injected')).toEqual([])
    expect(response.header('set-cookie').sort()).toEqual(['app_session=s1; Path=/; HttpOnly', 'vid=ok; Path=/'])
  })
})

describe(`default sensitive headers (${framework})`, () => {
  it('drops common API-key and CSRF headers by default, without being told', async () => {
    site = await startSite({ gate: { backend: backend() } })
    await request(site.url)
      .get('/')
      .set('X-Api-Key', 'key-secret-9')
      .set('X-CSRF-Token', 'csrf-secret-9')
      .set('X-Auth-Token', 'auth-secret-9')
      .expect(200)
    const [raw] = fake.requests
    for (const secret of ['key-secret-9', 'csrf-secret-9', 'auth-secret-9']) expect(raw?.rawBody).not.toContain(secret)
  })
})
