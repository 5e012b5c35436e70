import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { inspect } from 'node:util'
import { httpBackend } from '@sallyport/core'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { framework, type LogLine, type Site, startSite } from './harness.js'

let fake: FakeTrustedAccounts
let plainHttp: Server
let site: Site | undefined

beforeAll(async () => {
  fake = await fakeTrustedAccounts()
  plainHttp = createServer((_req, res) => res.end('{"verdict":"allow"}'))
  await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve))
})
afterAll(async () => {
  await fake.close()
  await new Promise((resolve) => plainHttp.close(resolve))
})
afterEach(async () => {
  await site?.close()
  site = undefined
  fake.reset()
})

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

const warned = (current: Site, code: string): LogLine[] => current.lines.filter((line) => line.level === 'warn' && line.code === code)

async function pageLoads(current: Site, count: number): Promise<void> {
  for (let index = 0; index < count; index++) await request(current.url).get('/').set('Accept', 'application/json').expect(200)
}

describe(`a backend that cannot be reached says so (${framework})`, () => {
  it('logs the first connection failure at warn with the backend, host and cause, then stays quiet until the breaker line, which names them too', async () => {
    const port = await closedPort()
    site = await startSite({ gate: { backend: httpBackend({ url: `http://127.0.0.1:${port}/decide`, name: 'risk' }) } })
    await pageLoads(site, 3)
    expect(site.decisions.map((decision) => decision.reason)).toEqual(['network', 'network', 'network'])
    const [first, ...more] = warned(site, 'SP_BACKEND_FAILED')
    expect(more).toEqual([])
    expect(first?.message).toContain(`risk at 127.0.0.1:${port}`)
    expect(first?.message).toContain('ECONNREFUSED')
    expect(first?.object).toMatchObject({ backend: 'risk', host: `127.0.0.1:${port}`, failure: 'network', cause: 'ECONNREFUSED' })
    // Every failure is still there for whoever traces at debug.
    expect(site.lines.filter((line) => line.level === 'debug' && line.code === 'SP_BACKEND_FAILED')).toHaveLength(3)

    await pageLoads(site, 3)
    const [open] = warned(site, 'SP_BREAKER_OPEN')
    expect(open?.message).toContain(`risk at 127.0.0.1:${port}`)
    expect(open?.message).toContain('ECONNREFUSED')
    expect(open?.object).toMatchObject({ backend: 'risk', host: `127.0.0.1:${port}`, cause: 'ECONNREFUSED' })
    expect(warned(site, 'SP_BACKEND_FAILED')).toHaveLength(1)
  })

  it('names a TLS failure as one: https to a port that speaks plain http', async () => {
    const { port } = plainHttp.address() as AddressInfo
    site = await startSite({ gate: { backend: httpBackend({ url: `https://127.0.0.1:${port}/decide` }), retries: 0 } })
    await pageLoads(site, 2)
    const lines = warned(site, 'SP_BACKEND_FAILED')
    expect(lines).toHaveLength(1)
    expect(lines[0]?.message).toContain(`http at 127.0.0.1:${port}`)
    expect(lines[0]?.message).toMatch(/TLS/)
    expect(lines[0]?.object.cause).toBe('ERR_SSL_WRONG_VERSION_NUMBER')
  })

  it('says "check the key" once for a vendor answering 401, naming its host, never the key', async () => {
    const host = new URL(fake.url).host
    site = await startSite({
      gate: { backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url }) },
    })
    fake.reply({ fault: { status: 401 } })
    await pageLoads(site, 3)
    const lines = warned(site, 'SP_WARN_BACKEND_REFUSED')
    expect(lines).toHaveLength(1)
    expect(lines[0]?.message).toContain(`trusted-accounts at ${host}`)
    expect(lines[0]?.message).toContain('HTTP 401')
    expect(lines[0]?.message).toMatch(/check the key/i)
    expect(lines[0]?.object).toMatchObject({ backend: 'trusted-accounts', host, status: 401, failure: 'client' })
    for (const line of site.lines) {
      const printed = `${line.message} ${inspect(line.object, { depth: 10 })}`
      expect(printed).not.toContain(fake.secretKey)
      expect(printed.toLowerCase()).not.toContain('bearer')
    }
  })

  it('logs the first failure of each class on its own', async () => {
    site = await startSite({
      gate: { backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url }), retries: 0 },
    })
    fake.reply({ fault: { status: 503 } })
    await pageLoads(site, 2)
    fake.reply({ fault: { status: 401 } })
    await pageLoads(site, 2)
    fake.reply({ fault: 'bad-json' })
    await pageLoads(site, 2)
    // The site declares a login checkpoint, which Trusted Accounts alone does not read: that warning is another test's.
    const failures = site.lines.filter((line) => line.level === 'warn' && line.code !== 'SP_WARN_CHECKPOINT_UNREAD')
    expect(failures.map((line) => [line.code, line.object.failure])).toEqual([
      ['SP_BACKEND_FAILED', 'server'],
      ['SP_WARN_BACKEND_REFUSED', 'client'],
      ['SP_BACKEND_FAILED', 'invalid'],
    ])
  })

  it('keeps a refusal quiet when SP_WARN_BACKEND_REFUSED is switched off', async () => {
    site = await startSite({
      gate: {
        backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_test', baseUrl: fake.url }),
        warnings: { SP_WARN_BACKEND_REFUSED: false, SP_WARN_CHECKPOINT_UNREAD: false },
      },
    })
    fake.reply({ fault: { status: 401 } })
    await pageLoads(site, 2)
    expect(site.lines.filter((line) => line.level === 'warn')).toEqual([])
  })
})
