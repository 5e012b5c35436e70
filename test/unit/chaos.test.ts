/**
 * Chaos: load runs through a real Express app while its Trusted Accounts backend is killed
 * and brought back. Every request must be answered exactly once without a 5xx, the breaker
 * must open and close, and nothing may be left running afterwards.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { guard } from '@sallyport/express'
import { type FakeTrustedAccounts, fakeTrustedAccounts } from '@sallyport/testing'
import { trustedAccounts } from '@sallyport/trusted-accounts'
import express from 'express-5'
import { Pool } from 'undici'
import { afterAll, describe, expect, it } from 'vitest'

const LOAD_MS = 3000
const CONNECTIONS = 16

/** Live handles of the kinds a leak would show up as. */
function handles(): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const kind of process.getActiveResourcesInfo()) {
    if (kind === 'TCPSocketWrap' || kind === 'TCPServerWrap' || kind === 'Timeout') counts[kind] = (counts[kind] ?? 0) + 1
  }
  return counts
}

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
process.on('unhandledRejection', onUnhandled)
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
})

describe('chaos: the backend dies and comes back under load', () => {
  it('answers every request once, never with a 5xx, opens and closes the breaker, and leaks nothing', async () => {
    let fake: FakeTrustedAccounts = await fakeTrustedAccounts()
    const before = handles()
    const port = Number(new URL(fake.url).port)
    const logs: string[] = []
    const gate = guard({
      backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk', baseUrl: fake.url }),
      timeoutMs: 100,
      breaker: { consecutiveFailures: 5, cooldownMs: 250 },
      logger: { warn: (object) => void logs.push(String(object.code)), error: (object) => void logs.push(String(object.code)) },
    })
    let handled = 0
    let doubleAnswers = 0
    const app = express()
    app.use(gate)
    app.use((_req, res) => {
      // Counting here catches a next() called twice; the error handler catches a second write.
      handled++
      res.json({ ok: true })
    })
    app.use((error: unknown, _req: unknown, res: express.Response, _next: unknown) => {
      doubleAnswers++
      res.status(500).json({ error: String(error) })
    })
    const server: Server = createServer(app)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const client = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: CONNECTIONS })

    const statuses = new Map<number, number>()
    let sent = 0
    let answered = 0
    const deadline = Date.now() + LOAD_MS
    const worker = async () => {
      while (Date.now() < deadline) {
        sent++
        const response = await client.request({ method: 'GET', path: '/', headers: { accept: 'application/json' } })
        await response.body.text()
        answered++
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1)
      }
    }
    const chaos = (async () => {
      await new Promise((resolve) => setTimeout(resolve, 600))
      await fake.close()
      await new Promise((resolve) => setTimeout(resolve, 1000))
      fake = await fakeTrustedAccounts({ port })
    })()
    await Promise.all([...Array.from({ length: CONNECTIONS }, worker), chaos])

    await client.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await gate.close()
    // With the fake still up, any keep-alive socket or timer Sallyport forgot would still be here.
    await expect.poll(handles, { timeout: 2000, interval: 50 }).toEqual(before)
    await fake.close()

    expect(answered).toBe(sent)
    expect([...statuses.keys()]).toEqual([200])
    expect(handled).toBe(sent)
    expect(doubleAnswers).toBe(0)
    expect(unhandled).toEqual([])
    expect(logs).toContain('SP_BREAKER_OPEN')
    expect(logs).toContain('SP_BREAKER_CLOSED')
    expect(gate.gate.breakerStates()).toEqual({ 'trusted-accounts': 'closed' })
    console.info(`[chaos] ${sent} requests in ${LOAD_MS} ms, all answered 200; breaker opened and closed`)
  }, 20_000)
})
