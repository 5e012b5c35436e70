import { type FakeIpqs, fakeIpqs, IPQS_MESSAGES } from '@sallyport/testing'
import { request } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'

let fake: FakeIpqs | undefined
afterEach(async () => {
  await fake?.close()
  fake = undefined
})

async function post(path: string, init: { key?: string; json?: unknown; form?: string }) {
  if (fake === undefined) throw new Error('no fake')
  const headers: Record<string, string> = {}
  if (init.key !== undefined) headers['IPQS-KEY'] = init.key
  if (init.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded'
  if (init.json !== undefined) headers['content-type'] = 'application/json'
  const response = await request(`${fake.url}${path}`, {
    method: 'POST',
    headers,
    body: init.form ?? (init.json === undefined ? null : JSON.stringify(init.json)),
  })
  return { status: response.statusCode, body: (await response.body.json()) as Record<string, unknown> }
}

describe('fakeIpqs, as the service would answer', () => {
  it('a missing or wrong IPQS-KEY header gets HTTP 200 with success: false', async () => {
    fake = await fakeIpqs()
    for (const key of [undefined, 'nope']) {
      const reply = await post('/api/json/ip', { ...(key === undefined ? {} : { key }), json: { ip: '203.0.113.9' } })
      expect(reply).toMatchObject({ status: 200, body: { success: false, message: IPQS_MESSAGES.invalidKey } })
    }
  })

  it('refuses a key sent in the URL outright', async () => {
    fake = await fakeIpqs({ key: 'k_123456' })
    const reply = await post('/api/json/ip?key=k_123456', { key: 'k_123456', json: { ip: '203.0.113.9' } })
    expect(reply.status).toBe(400)
    expect((await post('/api/json/ip/k_123456/203.0.113.9', { key: 'k_123456' })).status).toBe(404)
  })

  it.each([
    [{ strictness: 0 }, 'a missing IP', IPQS_MESSAGES.invalidIp],
    [{ ip: '203.0.113.300' }, 'a bad IP', IPQS_MESSAGES.invalidIp],
    [{ ip: '203.0.113.9', strictness: 4 }, 'strictness 4', IPQS_MESSAGES.invalidStrictness],
    [{ ip: '203.0.113.9', transaction_strictness: 3 }, 'transaction_strictness 3', IPQS_MESSAGES.invalidTransactionStrictness],
    [{ ip: '203.0.113.9', fast: 'yes' }, 'fast "yes"', IPQS_MESSAGES.invalidBoolean],
    [{ ip: '203.0.113.9', user_agent: 7 }, 'a numeric user agent', IPQS_MESSAGES.invalidString],
  ])('%o (%s) gets success: false', async (json, _label, message) => {
    fake = await fakeIpqs()
    expect(await post('/api/json/ip', { key: fake.key, json })).toMatchObject({ status: 200, body: { success: false, message } })
  })

  it('answers a form body too, and records the parameters of every call', async () => {
    fake = await fakeIpqs()
    const reply = await post('/api/json/ip', { key: fake.key, form: 'ip=2001%3Adb8%3A%3A1&strictness=1&fast=true' })
    expect(reply).toMatchObject({ status: 200, body: { success: true, fraud_score: 0, proxy: false } })
    expect(fake.checks()).toEqual([{ ip: '2001:db8::1', strictness: '1', fast: 'true' }])
  })

  it('scripted flags imply proxy as the service does; decide() sees the parameters', async () => {
    fake = await fakeIpqs({ decide: (params) => (params.ip === '198.51.100.7' ? { fraudScore: 88, fields: { tor: true } } : {}) })
    const flagged = await post('/api/json/ip', { key: fake.key, json: { ip: '198.51.100.7' } })
    expect(flagged.body).toMatchObject({ success: true, fraud_score: 88, tor: true, proxy: true })
    const clean = await post('/api/json/ip', { key: fake.key, json: { ip: '198.51.100.8' } })
    expect(clean.body).toMatchObject({ fraud_score: 0, tor: false, proxy: false })
    fake.replyOnce({ fields: { vpn: true, proxy: false } })
    expect((await post('/api/json/ip', { key: fake.key, json: { ip: '198.51.100.8' } })).body).toMatchObject({ vpn: true, proxy: false })
  })
})
