import { randomUUID } from 'node:crypto'
import { type FakeTracer, fakeTracer } from '@sallyport/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/** The fake must refuse what Tracer refuses, or our tests would pass on requests Tracer rejects. */
let fake: FakeTracer

beforeEach(async () => {
  fake = await fakeTracer()
})

afterEach(async () => {
  await fake.close()
})

function valid(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    requestId: randomUUID(),
    transactionType: 'WIRE',
    amount: '2500.00',
    currency: 'BRL',
    transactionTimestamp: '2025-01-31T12:00:00-03:00',
    account: { accountId: randomUUID(), type: 'savings', status: 'active' },
    ...overrides,
  }
}

async function post(body: unknown, headers: Record<string, string> = { 'x-api-key': fake.apiKey }) {
  const response = await fetch(`${fake.url}/v1/validations`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

describe('fakeTracer', () => {
  it('answers a valid request with 201 and a ValidationResponse', async () => {
    const body = valid()
    const reply = await post(body)
    expect(reply.status).toBe(201)
    expect(reply.body).toMatchObject({
      validationId: expect.any(String),
      requestId: body.requestId,
      decision: 'ALLOW',
      matchedRuleIds: [],
      evaluatedRuleIds: [],
      limitUsageDetails: [],
      processingTimeMs: expect.any(Number),
      evaluatedAt: expect.any(String),
      truncated: false,
    })
  })

  it('answers a repeated requestId with the first result and 200', async () => {
    const body = valid()
    fake.replyOnce({ decision: 'DENY' })
    const first = await post(body)
    const again = await post(body)
    expect([first.status, again.status]).toEqual([201, 200])
    expect(again.body).toEqual(first.body)
  })

  it.each([
    ['no key', {}],
    ['a wrong key', { 'x-api-key': 'trc_other' }],
    ['a Bearer header instead', { authorization: 'Bearer trc_test_key' }],
  ])('refuses %s with 401 and a TRC error body', async (_label, headers) => {
    const reply = await post(valid(), headers)
    expect(reply).toEqual({ status: 401, body: { code: 'TRC-0001', title: 'Unauthorized', message: expect.any(String) } })
  })

  it('refuses a body over 100 KB with 413', async () => {
    const reply = await post(valid({ metadata: { note: 'x'.repeat(101 * 1024) } }))
    expect(reply).toMatchObject({ status: 413, body: { code: 'TRC-0003' } })
  })

  it.each([
    ['requestId', { requestId: 'req-1' }],
    ['transactionType', { transactionType: 'ACH' }],
    ['amount', { amount: 2500 }],
    ['amount', { amount: '1e3' }],
    ['amount', { amount: '0.00' }],
    ['currency', { currency: 'brl' }],
    ['transactionTimestamp', { transactionTimestamp: '2025-01-31T12:00:00' }],
    ['transactionTimestamp', { transactionTimestamp: '2025-02-30T12:00:00Z' }],
    ['account', { account: undefined }],
    ['account.accountId', { account: { accountId: 'a1', type: 'savings', status: 'active' } }],
    ['account.owner', { account: { accountId: randomUUID(), type: 'savings', status: 'active', owner: 'x' } }],
    ['merchant.category', { merchant: { merchantId: randomUUID(), name: 'Acme', category: '54', country: 'BR' } }],
    ['metadata', { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`k${index}`, 1])) }],
    ['metadata', { metadata: { 'not-ok': 1 } }],
    ['subType', { subType: 's'.repeat(51) }],
    ['transaction', { transaction: {} }],
  ])('refuses a bad %s with 400 and a TRC error body', async (field, overrides) => {
    const reply = await post(valid(overrides))
    expect(reply.status).toBe(400)
    expect(reply.body).toMatchObject({ code: 'TRC-0002', title: 'Validation Error' })
    expect(String(reply.body.message)).toContain(field.split('.')[0])
  })

  it('takes integer minor units when configured so, and refuses decimal strings then', async () => {
    const minor = await fakeTracer({ amountFormat: 'minor-units' })
    try {
      const url = `${minor.url}/v1/validations`
      const send = (amount: unknown) =>
        fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': minor.apiKey },
          body: JSON.stringify(valid({ amount })),
        }).then((response) => response.status)
      expect(await send(250000)).toBe(201)
      expect(await send('2500.00')).toBe(400)
    } finally {
      await minor.close()
    }
  })

  it('records every body for checks()', async () => {
    const body = valid()
    await post(body)
    expect(fake.checks()).toEqual([body])
  })
})
