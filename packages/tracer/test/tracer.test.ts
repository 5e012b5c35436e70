import { type DecisionBackend, type DecisionInput, SallyportError } from '@sallyport/core'
import { type FakeTracer, fakeTracer, type TracerReply, tracerError, tracerProblem } from '@sallyport/testing'
import { type TracerOptions, type TracerTransaction, tracer } from '@sallyport/tracer'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

/** A busy machine delays callbacks; the slow reply takes 1000 ms, so the bound still shows the cut. */
const SLACK_MS = 80
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const ACCOUNT_ID = '3f1c2b9e-8a4d-4c6b-9f0e-1a2b3c4d5e6f'
const MERCHANT_ID = '7d9e8f10-1b2c-4d3e-8f4a-5b6c7d8e9f01'
const RULE_ID = '11111111-2222-4333-8444-555555555555'

let fake: FakeTracer
const backends: DecisionBackend[] = []

beforeEach(async () => {
  fake = await fakeTracer()
})

afterEach(async () => {
  await Promise.all(backends.splice(0).map((backend) => backend.close?.()))
  await fake.close()
})

function backendFor(options: Partial<TracerOptions> = {}, server: FakeTracer = fake): DecisionBackend {
  const backend = tracer({ apiKey: server.apiKey, baseUrl: server.url, ...options })
  backends.push(backend)
  return backend
}

function transaction(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'CARD',
    subType: 'purchase',
    amount: '100.10',
    currency: 'EUR',
    timestamp: '2025-01-31T12:00:00.250+01:00',
    account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active' },
    ...overrides,
  }
}

function input(tx: Record<string, unknown> | undefined, event = 'checkout'): DecisionInput {
  return {
    ip: '203.0.113.9',
    method: 'POST',
    path: '/checkout',
    host: 'shop.example',
    headers: { 'user-agent': 'Mozilla/5.0' },
    cookieNames: [],
    cookie: () => undefined,
    checkpoint: { event, status: 'attempted', ...(tx === undefined ? {} : { transaction: tx }) },
  }
}

/**
 * Calls the backend as the gate does, with one deadline for the whole call. The budget is roomy
 * so a loaded machine cannot turn a shape check into a timeout; the budget test passes its own.
 */
async function decide(backend: DecisionBackend, tx: Record<string, unknown> | undefined, budgetMs = 2000) {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), budgetMs)
  try {
    return await backend.decide(input(tx), { signal: controller.signal, deadline: performance.now() + budgetMs, retries: 1 })
  } finally {
    clearTimeout(timer)
  }
}

async function failure(
  backend: DecisionBackend,
  tx: Record<string, unknown> | undefined = transaction(),
  budgetMs?: number,
): Promise<SallyportError> {
  const error = await decide(backend, tx, budgetMs).then(
    () => undefined,
    (thrown: unknown) => thrown,
  )
  expect(error).toBeInstanceOf(SallyportError)
  return error as SallyportError
}

describe('options', () => {
  it.each([
    ['apiKey', { apiKey: undefined }],
    ['apiKey', { apiKey: '' }],
    ['baseUrl', { baseUrl: undefined }],
    ['baseUrl', { baseUrl: 'tracer.internal' }],
    ['baseUrl', { baseUrl: 'ftp://tracer.internal' }],
    ['baseUrl', { baseUrl: 'https://tracer.internal/?key=abc' }],
    ['amountFormat', { amountFormat: 'cents' }],
    ['timeoutMs', { timeoutMs: 0 }],
    ['timeoutMs', { timeoutMs: 99.5 }],
    ['maxResponseSize', { maxResponseSize: -1 }],
    ['transaction', { transaction: { type: 'CARD' } }],
    ['dispatcher', { dispatcher: 'pool' }],
    ['connections', { connections: 0 }],
    ['connections', { connections: 4097 }],
    ['connections', { connections: 1.5 }],
    ['connections', { connections: '8' }],
    ['apikey', { apikey: 'k' }],
  ])('refuses a bad %s at construction, naming it', (option, overrides) => {
    const build = () => tracer({ apiKey: 'trc_key', baseUrl: 'https://tracer.internal', ...overrides } as unknown as TracerOptions)
    expect(build).toThrow(SallyportError)
    expect(build).toThrow(expect.objectContaining({ code: 'SP_INVALID_OPTION', option }))
  })

  it.each<[string, Record<string, unknown>]>([
    ['unset', { baseUrl: 'https://tracer.internal' }],
    ['empty', { apiKey: '', baseUrl: 'https://tracer.internal' }],
  ])('names TRACER_API_KEY, as the README reads it, when apiKey is %s', (_label, options) => {
    const build = () => tracer(options as unknown as TracerOptions)
    expect(build).toThrow(expect.objectContaining({ code: 'SP_INVALID_OPTION', option: 'apiKey' }))
    expect(build).toThrow(/set TRACER_API_KEY or pass apiKey/)
  })

  it('never puts the key in the error, even a malformed one', () => {
    const build = () => tracer({ apiKey: 'trc live secret', baseUrl: 'https://tracer.internal' })
    expect(build).toThrow(expect.objectContaining({ code: 'SP_INVALID_OPTION', option: 'apiKey' }))
    expect(build).not.toThrow(/secret/)
  })

  it('takes connections from 1 to 4096', () => {
    for (const connections of [1, 4096]) expect(backendFor({ connections }).name).toBe('tracer')
  })

  it('refuses credentials in baseUrl, so the key never sits in a URL', () => {
    expect(() => tracer({ apiKey: 'trc_key', baseUrl: 'https://user:trc_key@tracer.internal' })).toThrow(
      expect.objectContaining({ option: 'baseUrl' }),
    )
  })

  it("recommends Tracer's 100 ms client timeout as the budget, unless told otherwise", () => {
    expect(backendFor().timeoutMs).toBe(100)
    expect(backendFor({ timeoutMs: 250 }).timeoutMs).toBe(250)
    expect(backendFor().name).toBe('tracer')
  })

  it('keeps a path prefix in baseUrl', async () => {
    await decide(backendFor({ baseUrl: `${fake.url}/tracer/` }), transaction()).catch(() => {})
    expect(fake.requests[0]?.path).toBe('/tracer/v1/validations')
  })
})

describe('the validation request', () => {
  it('sends the transaction as the API schema has it, authenticated with X-API-Key', async () => {
    const tx = transaction({
      segment: { segmentId: '22222222-3333-4444-8555-666666666666', name: 'retail' },
      portfolio: { portfolioId: '33333333-4444-4555-8666-777777777777' },
      merchant: { merchantId: MERCHANT_ID, name: 'Acme Store', category: '5411', country: 'US', metadata: { tier: 'gold' } },
      metadata: { channel: 'web', items: 3, gift: false, basket: { sku: ['A1', 'B2'] } },
    })
    const verdict = await decide(backendFor(), tx)
    expect(verdict.verdict).toBe('allow')
    const [body] = fake.checks()
    expect(body).toEqual({
      requestId: expect.stringMatching(UUID_V4),
      transactionType: 'CARD',
      subType: 'purchase',
      amount: '100.10',
      currency: 'EUR',
      transactionTimestamp: '2025-01-31T12:00:00.250+01:00',
      account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active' },
      segment: { segmentId: '22222222-3333-4444-8555-666666666666', name: 'retail' },
      portfolio: { portfolioId: '33333333-4444-4555-8666-777777777777' },
      merchant: { merchantId: MERCHANT_ID, name: 'Acme Store', category: '5411', country: 'US', metadata: { tier: 'gold' } },
      metadata: { channel: 'web', items: 3, gift: false, basket: { sku: ['A1', 'B2'] } },
    })
    const request = fake.requests[0]
    expect(request?.method).toBe('POST')
    expect(request?.path).toBe('/v1/validations')
    expect(request?.headers['x-api-key']).toBe(fake.apiKey)
    expect(request?.headers['x-request-id']).toBe(body?.requestId)
    expect(request?.headers.authorization).toBeUndefined()
  })

  it.each(['100.10', '0.01', '100', '12345678901234567890.123456789012', '9007199254740993.99'])(
    'sends the amount %s exactly as written, never through floating point',
    async (amount) => {
      await decide(backendFor(), transaction({ amount }))
      expect(fake.requests[0]?.rawBody).toContain(`"amount":"${amount}"`)
    },
  )

  it.each([
    ['a bigint', 10010n],
    ['a safe integer', 10010],
    ['a string of digits', '10010'],
  ])('in minor-units mode sends %s as an integer', async (_label, amount) => {
    const minor = await fakeTracer({ amountFormat: 'minor-units' })
    try {
      const verdict = await decide(backendFor({ amountFormat: 'minor-units' }, minor), transaction({ amount }))
      expect(verdict.verdict).toBe('allow')
      expect(minor.requests[0]?.rawBody).toContain('"amount":10010,')
    } finally {
      await minor.close()
    }
  })

  it('a Date timestamp travels as RFC 3339 in UTC, and a missing one is the time of the decision', async () => {
    const backend = backendFor()
    await decide(backend, transaction({ timestamp: new Date('2025-03-01T10:00:00+02:00') }))
    const before = Date.now()
    await decide(backend, transaction({ timestamp: undefined }))
    const [dated, now] = fake.checks()
    expect(dated?.transactionTimestamp).toBe('2025-03-01T08:00:00.000Z')
    expect(Date.parse(now?.transactionTimestamp ?? '')).toBeGreaterThanOrEqual(before - 1)
    expect(now?.transactionTimestamp).toMatch(/Z$/)
  })

  it('accepts the metadata limits exactly: 50 entries, keys of 64 characters', async () => {
    const metadata = Object.fromEntries(Array.from({ length: 50 }, (_, index) => [`k${index}_${'x'.repeat(60)}`.slice(0, 64), index]))
    const verdict = await decide(backendFor(), transaction({ metadata }))
    expect(verdict.verdict).toBe('allow')
    expect(Object.keys(fake.checks()[0]?.metadata ?? {})).toHaveLength(50)
  })

  it('uses a new requestId for every decision', async () => {
    const backend = backendFor()
    await decide(backend, transaction())
    await decide(backend, transaction())
    const [first, second] = fake.checks()
    expect(first?.requestId).not.toBe(second?.requestId)
  })

  it('lets a request without a checkpoint transaction through without a call', async () => {
    const backend = backendFor()
    expect(await decide(backend, undefined)).toEqual({ verdict: 'allow', reason: 'no_transaction' })
    const browsing = await backend.decide(
      { ...input(undefined), checkpoint: null },
      { signal: new AbortController().signal, deadline: performance.now() + 2000, retries: 1 },
    )
    expect(browsing).toEqual({ verdict: 'allow', reason: 'no_transaction' })
    expect(fake.requests).toHaveLength(0)
  })
})

describe('an invalid transaction is the app’s 400, and no call is made', () => {
  const minorCases: Array<[string, Record<string, unknown>]> = [
    ['transaction.amount', { amount: 100.5 }],
    ['transaction.amount', { amount: 0 }],
    ['transaction.amount', { amount: -5n }],
    ['transaction.amount', { amount: 2 ** 53 }],
    ['transaction.amount', { amount: 9007199254740993n }],
    ['transaction.amount', { amount: '100.10' }],
  ]
  const cases: Array<[string, Record<string, unknown>]> = [
    ['transaction.type', { type: 'card' }],
    ['transaction.type', { type: 'ACH' }],
    ['transaction.type', { type: undefined }],
    ['transaction.transactionType', { transactionType: 'CARD' }],
    ['transaction.subType', { subType: 'x'.repeat(51) }],
    ['transaction.subType', { subType: 7 }],
    ['transaction.amount', { amount: 100.1 }],
    ['transaction.amount', { amount: 100 }],
    ['transaction.amount', { amount: 10010n }],
    ['transaction.amount', { amount: '-1.00' }],
    ['transaction.amount', { amount: '0.00' }],
    ['transaction.amount', { amount: '1e3' }],
    ['transaction.amount', { amount: '1,00' }],
    ['transaction.amount', { amount: '01.50' }],
    ['transaction.amount', { amount: ' 1.00' }],
    ['transaction.amount', { amount: '1.' }],
    ['transaction.amount', { amount: undefined }],
    ['transaction.currency', { currency: 'eur' }],
    ['transaction.currency', { currency: 'EURO' }],
    ['transaction.currency', { currency: 978 }],
    ['transaction.timestamp', { timestamp: '2025-01-31T12:00:00' }],
    ['transaction.timestamp', { timestamp: '2025-01-31' }],
    ['transaction.timestamp', { timestamp: '2025-01-31t12:00:00z' }],
    ['transaction.timestamp', { timestamp: '2025-02-30T12:00:00Z' }],
    ['transaction.timestamp', { timestamp: '2025-01-31T24:00:00Z' }],
    ['transaction.timestamp', { timestamp: '2025-01-31T12:00:00+25:00' }],
    ['transaction.timestamp', { timestamp: 1738324800000 }],
    ['transaction.timestamp', { timestamp: new Date(Number.NaN) }],
    ['transaction.account', { account: undefined }],
    ['transaction.account', { account: 'acct_1' }],
    ['transaction.account.accountId', { account: { accountId: 'acct_1', type: 'checking', status: 'active' } }],
    ['transaction.account.type', { account: { accountId: ACCOUNT_ID, type: '', status: 'active' } }],
    ['transaction.account.status', { account: { accountId: ACCOUNT_ID, type: 'checking' } }],
    ['transaction.account.owner', { account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active', owner: 'ada' } }],
    ['transaction.segment.segmentId', { segment: { segmentId: 'retail' } }],
    ['transaction.portfolio.portfolioId', { portfolio: { portfolioId: 42 } }],
    ['transaction.merchant.merchantId', { merchant: { merchantId: 'm1', name: 'Acme', category: '5411', country: 'US' } }],
    ['transaction.merchant.name', { merchant: { merchantId: MERCHANT_ID, category: '5411', country: 'US' } }],
    ['transaction.merchant.category', { merchant: { merchantId: MERCHANT_ID, name: 'Acme', category: '541', country: 'US' } }],
    ['transaction.merchant.category', { merchant: { merchantId: MERCHANT_ID, name: 'Acme', category: 5411, country: 'US' } }],
    ['transaction.merchant.country', { merchant: { merchantId: MERCHANT_ID, name: 'Acme', category: '5411', country: 'us' } }],
    ['transaction.merchant.country', { merchant: { merchantId: MERCHANT_ID, name: 'Acme', category: '5411', country: 'USA' } }],
    ['transaction.metadata', { metadata: Object.fromEntries(Array.from({ length: 51 }, (_, index) => [`k${index}`, index])) }],
    ['transaction.metadata."bad-key"', { metadata: { 'bad-key': 1 } }],
    [`transaction.metadata."${'k'.repeat(64)}"`, { metadata: { [`${'k'.repeat(65)}`]: 1 } }],
    ['transaction.metadata.score', { metadata: { score: Number.NaN } }],
    ['transaction.metadata.big', { metadata: { big: 1n } }],
    ['transaction.metadata.when', { metadata: { when: new Date() } }],
    ['transaction.metadata.a.b.c.d.e', { metadata: { a: { b: { c: { d: { e: { f: 1 } } } } } } }],
    [
      'transaction.account.metadata."a b"',
      { account: { accountId: ACCOUNT_ID, type: 'checking', status: 'active', metadata: { 'a b': 1 } } },
    ],
  ]

  it.each(cases)('%s', async (field, overrides) => {
    const error = await failure(backendFor(), transaction(overrides))
    expect(error).toMatchObject({ code: 'SP_INVALID_CHECKPOINT', option: field, statusCode: 400, expose: true })
    expect(error.message).toContain(`\`${field}\``)
    expect(fake.requests).toHaveLength(0)
  })

  it.each(minorCases)('in minor-units mode: %s %o', async (field, overrides) => {
    const error = await failure(backendFor({ amountFormat: 'minor-units' }), transaction(overrides))
    expect(error).toMatchObject({ code: 'SP_INVALID_CHECKPOINT', option: field })
    expect(fake.requests).toHaveLength(0)
  })
})

describe('the transaction option maps an app’s own shape', () => {
  const order = { total: '42.00', currency: 'GBP', customer: { id: ACCOUNT_ID, kind: 'savings' }, placedAt: '2025-01-31T09:30:00Z' }
  const mapOrder = (tx: Record<string, unknown>, request: DecisionInput): TracerTransaction => {
    const customer = tx.customer as { id: string; kind: string }
    return {
      type: 'CARD',
      amount: tx.total as string,
      currency: tx.currency as string,
      timestamp: tx.placedAt as string,
      account: { accountId: customer.id, type: customer.kind, status: 'active' },
      metadata: { channel: request.checkpoint?.event ?? 'unknown' },
    }
  }

  it('sends what the mapper returns', async () => {
    await decide(backendFor({ transaction: mapOrder }), order)
    expect(fake.checks()[0]).toMatchObject({
      transactionType: 'CARD',
      amount: '42.00',
      currency: 'GBP',
      transactionTimestamp: '2025-01-31T09:30:00Z',
      account: { accountId: ACCOUNT_ID, type: 'savings', status: 'active' },
      metadata: { channel: 'checkout' },
    })
  })

  it('checks what the mapper returns like any transaction', async () => {
    const error = await failure(backendFor({ transaction: mapOrder }), { ...order, currency: 'gbp' })
    expect(error).toMatchObject({ code: 'SP_INVALID_CHECKPOINT', option: 'transaction.currency' })
    expect(fake.requests).toHaveLength(0)
  })

  it('a mapper that throws makes the app’s 400 for `transaction`, and no call', async () => {
    const error = await failure(backendFor({ transaction: mapOrder }), { total: '1.00' })
    expect(error).toMatchObject({ code: 'SP_INVALID_CHECKPOINT', option: 'transaction', statusCode: 400 })
    expect(fake.requests).toHaveLength(0)
  })

  it('a mapper returning null lets the request through without a call', async () => {
    expect(await decide(backendFor({ transaction: () => null }), order)).toEqual({ verdict: 'allow', reason: 'no_transaction' })
    expect(fake.requests).toHaveLength(0)
  })
})

describe('decisions', () => {
  it.each([
    ['ALLOW', 'allow', null],
    ['DENY', 'deny', 'tracer:deny'],
    ['REVIEW', 'review', 'tracer:review'],
  ] as const)('maps %s to %s, with the validationId as requestId', async (decision, verdict, reason) => {
    fake.reply({
      decision,
      reason: `Rule says ${decision}`,
      matchedRuleIds: [RULE_ID],
      evaluatedRuleIds: [RULE_ID, '99999999-2222-4333-8444-555555555555'],
      processingTimeMs: 3.25,
      limitUsageDetails: [
        {
          limitId: '44444444-2222-4333-8444-555555555555',
          limitAmount: '1000.00',
          currentUsage: '950.00',
          attemptedAmount: '100.10',
          exceeded: true,
          scope: `account:${ACCOUNT_ID}`,
          period: 'DAILY',
        },
      ],
    })
    const result = await decide(backendFor(), transaction())
    expect(result).toMatchObject({ verdict, reason, requestId: expect.stringMatching(UUID_V4) })
    expect(result.signals).toEqual({
      validationId: result.requestId,
      decision,
      reason: `Rule says ${decision}`,
      matchedRuleIds: [RULE_ID],
      evaluatedRuleIds: [RULE_ID, '99999999-2222-4333-8444-555555555555'],
      limitUsageDetails: [
        {
          limitId: '44444444-2222-4333-8444-555555555555',
          limitAmount: '1000.00',
          currentUsage: '950.00',
          attemptedAmount: '100.10',
          exceeded: true,
          scope: `account:${ACCOUNT_ID}`,
          period: 'DAILY',
        },
      ],
      processingTimeMs: 3.25,
      truncated: false,
      replayed: false,
    })
  })

  it('bounds what it copies from a reply into signals', async () => {
    fake.reply({
      decision: 'DENY',
      reason: `<b>${'r'.repeat(10_000)}\u0000`,
      matchedRuleIds: [...Array.from({ length: 500 }, (_, index) => `rule-${index}`), '<script>'],
      limitUsageDetails: Array.from({ length: 100 }, (_, index) => ({
        limitId: `limit-${index}`,
        limitAmount: '1.00',
        currentUsage: '1.00',
        attemptedAmount: '1.00',
        exceeded: false,
        scope: 's'.repeat(500),
        period: 'DAILY',
      })),
    })
    const { signals } = await decide(backendFor(), transaction())
    expect(String(signals?.reason).length).toBeLessThanOrEqual(256)
    expect(signals?.reason).not.toContain('\u0000')
    expect(signals?.matchedRuleIds).toHaveLength(50)
    expect(signals?.limitUsageDetails).toHaveLength(20)
    expect(JSON.stringify(signals).length).toBeLessThan(12_000)
  })

  it.each([
    ['a body that is not JSON', { fault: 'bad-json' }],
    ['an unknown decision word', { extra: { decision: 'BLOCK' } }],
    ['a lowercase decision word', { extra: { decision: 'deny' } }],
    ['no validationId', { extra: { validationId: undefined } }],
    ['a validationId with markup', { extra: { validationId: '<img src=x>' } }],
    ['matchedRuleIds that are not a list', { extra: { matchedRuleIds: 'all' } }],
    ['a reply for another requestId', { extra: { requestId: '00000000-0000-4000-8000-000000000000' } }],
    ['a 10 MB body', { fault: 'huge-body' }],
  ] satisfies Array<[string, TracerReply]>)('%s is an invalid failure, never a verdict', async (_label, reply) => {
    fake.reply(reply)
    const error = await failure(backendFor())
    expect(error.code).toBe('SP_BACKEND_INVALID')
  })

  it('an error body with a success status is a failure carrying the vendor code', async () => {
    fake.reply({ fault: { status: 200, body: JSON.stringify({ code: 'TRC-0042', title: 'Rules unavailable', message: 'try later' }) } })
    const error = await failure(backendFor())
    expect(error).toMatchObject({ code: 'SP_BACKEND_INVALID', vendorCode: 'TRC-0042', status: 200 })
  })

  it('a 2xx other than 200 or 201 is not a decision', async () => {
    fake.reply({ fault: { status: 202, body: JSON.stringify({ validationId: RULE_ID, decision: 'ALLOW' }) } })
    expect((await failure(backendFor())).code).toBe('SP_BACKEND_INVALID')
  })
})

describe('errors', () => {
  it('a wrong key is a client failure that names the cause and never the key', async () => {
    const error = await failure(backendFor({ apiKey: 'trc_wrong_key' }))
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 401, vendorCode: 'TRC-0001' })
    expect(error.message).toContain('API key')
    expect(error.message).toContain('Missing or invalid API key')
    expect(error.message).not.toContain('trc_wrong_key')
  })

  it('a vendor message that echoes the key is redacted', async () => {
    fake.reply({ fault: tracerError(403, 'TRC-0010', 'Forbidden', `key ${fake.apiKey} may not validate`) })
    const error = await failure(backendFor())
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 403, vendorCode: 'TRC-0010' })
    expect(error.message).not.toContain(fake.apiKey)
    expect(error.message).toContain('[redacted]')
  })

  it('problem JSON is parsed into the vendor code and message', async () => {
    fake.reply({ fault: tracerProblem(422, { title: 'Unprocessable Entity', detail: 'account is suspended', code: 'TRC-0107' }) })
    const error = await failure(backendFor())
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 422, vendorCode: 'TRC-0107' })
    expect(error.message).toContain('Unprocessable Entity: account is suspended')
  })

  it('a vendor message is bounded and stripped of control characters', async () => {
    fake.reply({ fault: tracerError(400, 'TRC-0002', 'Bad\r\nRequest', 'x'.repeat(5000)) })
    const error = await failure(backendFor())
    expect(error.message.length).toBeLessThan(400)
    expect(error.message).not.toMatch(/[\r\n]/)
  })

  it('a vendor code that is not <SERVICE>-NNNN is not copied', async () => {
    fake.reply({ fault: tracerError(400, '<script>', 'Bad Request', 'no') })
    expect((await failure(backendFor())).vendorCode).toBeUndefined()
  })

  it('a body over 100 KB is refused with 413, a client failure', async () => {
    const error = await failure(backendFor(), transaction({ metadata: { note: 'n'.repeat(110 * 1024) } }))
    expect(error).toMatchObject({ code: 'SP_BACKEND_CLIENT', status: 413, vendorCode: 'TRC-0003' })
    expect(error.message).toContain('100 KB')
  })

  it('a 5xx is retried once with the same requestId and body, then a server failure', async () => {
    fake.reply({ fault: tracerError(503, 'TRC-0500', 'Service Unavailable', 'rules are reloading') })
    const error = await failure(backendFor())
    expect(error).toMatchObject({ code: 'SP_BACKEND_SERVER', status: 503, vendorCode: 'TRC-0500' })
    expect(fake.requests).toHaveLength(2)
    expect(fake.requests[0]?.rawBody).toBe(fake.requests[1]?.rawBody)
  })

  it('a retried 5xx that then succeeds is a normal decision', async () => {
    fake.replyOnce({ fault: tracerProblem(502, { title: 'Bad Gateway' }) })
    fake.reply({ decision: 'DENY' })
    const result = await decide(backendFor(), transaction())
    expect(result.verdict).toBe('deny')
    const [first, second] = fake.checks()
    expect(second?.requestId).toBe(first?.requestId)
  })

  it('a lost reply is retried, and the 200 with the first result is a normal reply', async () => {
    fake.replyOnce({ decision: 'REVIEW', lostReply: true })
    fake.reply({ decision: 'ALLOW' })
    const result = await decide(backendFor(), transaction())
    expect(result).toMatchObject({ verdict: 'review', signals: { replayed: true } })
    expect(fake.requests).toHaveLength(2)
  })

  it('a slow Tracer is let go as soon as the budget runs out', async () => {
    fake.reply({ delayMs: 1000 })
    const backend = backendFor()
    const controller = new AbortController()
    let abortedAt = Number.POSITIVE_INFINITY
    controller.signal.addEventListener('abort', () => {
      abortedAt = performance.now()
    })
    const timer = setTimeout(() => controller.abort(), backend.timeoutMs)
    const error = await backend
      .decide(input(transaction()), { signal: controller.signal, deadline: performance.now() + (backend.timeoutMs ?? 0), retries: 1 })
      .catch((thrown: unknown) => thrown)
    clearTimeout(timer)
    expect(performance.now() - abortedAt).toBeLessThanOrEqual(SLACK_MS)
    expect(error).toMatchObject({ code: 'SP_BACKEND_TIMEOUT' })
  })
})
