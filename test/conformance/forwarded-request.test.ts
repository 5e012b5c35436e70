/**
 * What of a request leaves for a vendor: the headers that describe the client, the path
 * without its query (but the parameters the site names), and a Referer without its query.
 */
import { type DecisionBackend, type DecisionInput, localPolicies } from '@sallyport/core'
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

const vendor = () => trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url })

/** Credentials that proxies, identity-aware load balancers and API gateways put in headers of their own. */
const CREDENTIAL_HEADERS: Array<[string, string]> = [
  ['X-Forwarded-Access-Token', 'fwd-access-secret'],
  ['X-Auth-Request-Access-Token', 'oauth2-proxy-secret'],
  ['X-Amzn-Oidc-Accesstoken', 'alb-access-secret'],
  ['X-Amzn-Oidc-Data', 'alb-claims-secret'],
  ['Cf-Access-Jwt-Assertion', 'cf-access-secret'],
  ['X-Goog-Api-Key', 'goog-key-secret'],
  ['Api-Key', 'plain-api-key-secret'],
  ['X-Id-Token', 'id-token-secret'],
  ['X-Refresh-Token', 'refresh-token-secret'],
  ['X-Client-Cert', 'client-cert-secret'],
  ['X-Forwarded-Client-Cert', 'By=spiffe://mesh;Hash=xfcc-secret'],
  ['Authentication', 'Bearer authentication-secret'],
]

const BROWSER_HEADERS = [
  'Host: shop.test',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0',
  'Accept: text/html',
  'Accept-Language: en-GB',
  'Sec-CH-UA: "Chromium";v="126"',
  'Sec-Fetch-Site: cross-site',
  'Origin: https://idp.test',
  'DNT: 1',
]

function recording(extra?: Pick<DecisionBackend, 'headers'>): { backend: DecisionBackend; inputs: DecisionInput[] } {
  const inputs: DecisionInput[] = []
  return {
    inputs,
    backend: {
      name: 'recording',
      ...extra,
      async decide(input) {
        inputs.push(input)
        return { verdict: 'allow' }
      },
    },
  }
}

describe(`what a vendor receives of a request (${framework})`, () => {
  it('no credential under any header name, no OAuth code in the path, no token in the Referer', async () => {
    site = await startSite({ gate: { backend: vendor() } })
    const response = await rawRequest(site.port, [
      'GET /callback?code=oauth-code-secret&state=xyz-state-secret HTTP/1.1',
      ...BROWSER_HEADERS,
      'Referer: https://idp.test/reset?token=reset-token-secret#frag-secret',
      ...CREDENTIAL_HEADERS.map(([name, value]) => `${name}: ${value}`),
    ])
    expect(response.status).toBe(200)
    expect(site.decisions.at(-1)?.source).toBe('backend')

    const [raw] = fake.requests
    for (const secret of [
      'oauth-code-secret',
      'xyz-state-secret',
      'reset-token-secret',
      'frag-secret',
      ...CREDENTIAL_HEADERS.map(([, value]) => value),
    ]) {
      expect(raw?.rawBody).not.toContain(secret)
    }
    const [check] = fake.checks()
    expect(check?.requestedPath).toBe('/callback')
    expect(check?.headers).toEqual({
      host: 'shop.test',
      'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0.0.0',
      accept: 'text/html',
      'accept-language': 'en-GB',
      'sec-ch-ua': '"Chromium";v="126"',
      'sec-fetch-site': 'cross-site',
      origin: 'https://idp.test',
      dnt: '1',
      referer: 'https://idp.test/reset',
    })
    // The application itself still gets the whole URL.
    expect(JSON.parse(response.body).path).toBe('/callback?code=oauth-code-secret&state=xyz-state-secret')
  })

  it('forwards the query parameters the site names in forwardQuery, and only those', async () => {
    site = await startSite({ gate: { backend: vendor(), forwardQuery: ['utm_source', 'ref'] } })
    await request(site.url).get('/landing?code=oauth-code-secret&utm_source=newsletter&state=s1&ref=partner%201').expect(200)
    const [check] = fake.checks()
    expect(check?.requestedPath).toBe('/landing?utm_source=newsletter&ref=partner%201')
    expect(fake.requests[0]?.rawBody).not.toContain('oauth-code-secret')
  })

  it('cuts a long Referer', async () => {
    site = await startSite({ gate: { backend: vendor() } })
    await request(site.url)
      .get('/')
      .set('Referer', `https://shop.test/${'p'.repeat(5000)}`)
      .expect(200)
    const referer = fake.checks()[0]?.headers?.referer ?? ''
    expect(referer.startsWith('https://shop.test/ppp')).toBe(true)
    expect(referer.length).toBeLessThanOrEqual(1024)
  })
})

describe(`headers a backend declares (${framework})`, () => {
  it('reach that backend only, and sensitiveHeaders still removes them', async () => {
    const declaring = recording({ headers: ['X-Device-Id'] })
    const other = recording()
    other.backend = { ...other.backend, name: 'other' }
    site = await startSite({ gate: { backend: [declaring.backend, other.backend] } })
    await request(site.url).get('/').set('X-Device-Id', 'dev-1').set('User-Agent', 'Mozilla/5.0').expect(200)
    expect(declaring.inputs[0]?.headers).toMatchObject({ 'x-device-id': 'dev-1', 'user-agent': 'Mozilla/5.0' })
    expect(other.inputs[0]?.headers['x-device-id']).toBeUndefined()
    expect(other.inputs[0]?.headers['user-agent']).toBe('Mozilla/5.0')
    await site.close()

    const muted = recording({ headers: ['x-device-id'] })
    site = await startSite({ gate: { backend: muted.backend, sensitiveHeaders: ['X-Device-Id', 'Accept-Language'] } })
    await request(site.url).get('/').set('X-Device-Id', 'dev-1').set('Accept-Language', 'en').set('User-Agent', 'Mozilla/5.0').expect(200)
    expect(muted.inputs[0]?.headers['x-device-id']).toBeUndefined()
    expect(muted.inputs[0]?.headers['accept-language']).toBeUndefined()
    expect(muted.inputs[0]?.headers['user-agent']).toBe('Mozilla/5.0')
  })
})

describe(`the local engine, which never sends the request anywhere (${framework})`, () => {
  it('still tests any header but the denylisted credentials, and never sees the query', async () => {
    const paths: string[] = []
    const engine = localPolicies({
      logger: { warn() {}, error() {} },
      secret: 's'.repeat(32),
      rules: [
        { name: 'tenant-blocked', verdict: 'deny', when: { header: { name: 'x-tenant', matches: 'blocked' } } },
        { name: 'sees-authorization', verdict: 'deny', when: { header: { name: 'authorization' } } },
        {
          name: 'count-paths',
          verdict: 'allow',
          when: {
            velocity: {
              key: (input) => {
                paths.push(input.path)
                return null
              },
              limit: 1,
              windowMs: 1000,
            },
          },
        },
      ],
    })
    site = await startSite({ gate: { backend: engine } })
    await request(site.url).get('/').set('Accept', 'application/json').set('X-Tenant', 'blocked').expect(403)
    await request(site.url).get('/callback?code=oauth-code-secret').set('Authorization', 'Bearer user-token').expect(200)
    expect(site.decisions.map((decision) => decision.reason)).toEqual(['tenant-blocked', null])
    expect(paths).toEqual(['/callback'])
  })
})
