import type { IncomingHttpHeaders } from 'node:http'
import { type Checkpoint, createGate, type Gate, type GateOptions, type Logger, type RequestView } from '@sallyport/core'
import { type IpqsOptions, ipqs } from '@sallyport/ipqs'
import { type FakeIpqs, fakeIpqs, IPQS_MESSAGES } from '@sallyport/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

const silent: Logger = { warn() {}, error() {} }
const SHA = 'b'.repeat(64)

let fake: FakeIpqs
const cleanups: Array<() => Promise<void>> = []

beforeEach(async () => {
  fake = await fakeIpqs({ key: 'IpqsKey0123456789abcdefABCDEF0123' })
})

afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()))
  await fake.close()
})

type Native = { transaction?: Record<string, unknown> }

function gateFor(options: Partial<IpqsOptions> = {}, gateOptions: GateOptions<Native> = {}): Gate<Native> {
  const gate = createGate<Native>({ backend: ipqs({ key: fake.key, baseUrl: fake.url, ...options }), logger: silent, ...gateOptions })
  cleanups.push(() => gate.close())
  return gate
}

const browser = { host: 'shop.example', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64)', 'accept-language': 'de-DE,de;q=0.9' }

function view(init: { headers?: IncomingHttpHeaders; remoteAddress?: string; native?: Native } = {}): RequestView<Native> {
  return {
    native: init.native ?? {},
    method: 'POST',
    url: '/signup',
    headers: init.headers ?? { ...browser, accept: 'application/json' },
    remoteAddress: init.remoteAddress ?? '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

async function signup(gate: Gate<Native>, transaction: Record<string, unknown>, init: Parameters<typeof view>[0] = {}) {
  const checkpoint = gate.checkpoint({ event: 'signup', transaction: (native: Native) => native.transaction })
  return gate.decide(view({ ...init, native: { transaction } }), checkpoint)
}

describe('the lookup call', () => {
  it('posts the IP, user agent, language and strictness to /api/json/ip with the key in the IPQS-KEY header only', async () => {
    const { decision } = await gateFor().decide(view())
    expect(decision).toMatchObject({ source: 'backend', backend: 'ipqs', verdict: 'allow' })
    expect(fake.requests).toHaveLength(1)
    const [call] = fake.requests
    expect(call?.method).toBe('POST')
    expect(call?.path).toBe('/api/json/ip')
    expect(call?.headers['ipqs-key']).toBe(fake.key)
    expect(call?.headers['content-type']).toMatch(/^application\/json/)
    expect(call?.rawBody).not.toContain(fake.key)
    expect(fake.checks()).toEqual([
      { ip: '203.0.113.9', strictness: 0, user_agent: browser['user-agent'], user_language: browser['accept-language'] },
    ])
  })

  it('sends each lookup option under its service name, and none that was not set', async () => {
    await gateFor({
      strictness: 2,
      fast: true,
      mobile: false,
      allowPublicAccessPoints: true,
      lighterPenalties: true,
      transactionStrictness: 1,
    }).decide(view({ headers: { host: 'api.example' } }))
    expect(fake.checks()).toEqual([
      {
        ip: '203.0.113.9',
        strictness: 2,
        fast: true,
        mobile: false,
        allow_public_access_points: true,
        lighter_penalties: true,
        transaction_strictness: 1,
      },
    ])
  })

  it('keeps a path prefix on baseUrl, for a proxy mounted under a path', async () => {
    await gateFor({ baseUrl: `${fake.url}/vendors/ipqs/?ignored=1` }).decide(view())
    expect(fake.requests[0]?.path).toBe('/vendors/ipqs/api/json/ip')
  })

  it('does not send a user agent or language the gate was told to keep private', async () => {
    await gateFor({}, { sensitiveHeaders: ['user-agent', 'accept-language'] }).decide(view())
    expect(fake.checks()[0]).toEqual({ ip: '203.0.113.9', strictness: 0 })
  })

  it('makes no call and follows the failure policy when there is no usable client IP', async () => {
    const { decision } = await gateFor({}, { trustProxy: true }).decide(
      view({ remoteAddress: '10.0.0.1', headers: { ...browser, 'x-forwarded-for': 'garbage' } }),
    )
    expect(fake.requests).toHaveLength(0)
    expect(decision).toMatchObject({ verdict: 'allow', reason: 'no_client_ip', source: 'fallback' })
  })

  it('maps the reply: verdict, reason, request id and signals', async () => {
    fake.reply({ fraudScore: 91, fields: { vpn: true, request_id: 'Abc123XyZ', ISP: 'Hosting Ltd', ASN: 64496, country_code: 'NL' } })
    const { decision } = await gateFor().decide(view())
    expect(decision).toMatchObject({
      verdict: 'deny',
      reason: 'fraud_score>=90',
      requestId: 'Abc123XyZ',
      complete: true,
      signals: { fraud_score: 91, vpn: true, proxy: true, tor: false, ISP: 'Hosting Ltd', ASN: 64496, country_code: 'NL' },
    })
  })
})

describe('transactions from a checkpoint', () => {
  it('are sent beside the lookup parameters, over the static ones', async () => {
    const gate = gateFor({ transaction: { billing_country: 'US', order_quantity: 1 } })
    await signup(gate, {
      username: 'ada',
      billing_email: 'ada@example.com',
      billing_country: 'GB',
      password_hash: SHA,
      credit_card_bin: '411111',
      credit_card_hash: SHA,
      order_amount: 19.99,
      recurring: false,
      coupon: undefined,
    })
    expect(fake.checks()).toEqual([
      {
        billing_country: 'GB',
        order_quantity: 1,
        username: 'ada',
        billing_email: 'ada@example.com',
        password_hash: SHA,
        credit_card_bin: '411111',
        credit_card_hash: SHA,
        order_amount: 19.99,
        recurring: false,
        ip: '203.0.113.9',
        strictness: 0,
        user_agent: browser['user-agent'],
        user_language: browser['accept-language'],
      },
    ])
  })

  it.each([
    ['a raw card number as the hash', { credit_card_hash: '4111111111111111' }, 'transaction.credit_card_hash'],
    ['a raw card number with spaces', { card_number: '5555 5555 5555 4444' }, 'transaction.card_number'],
    ['a whole card number as the BIN', { credit_card_bin: '4111111111111111' }, 'transaction.credit_card_bin'],
    ['a raw password', { username: 'ada', password: 'correct horse' }, 'transaction.password'],
    ['a password hash that is not SHA-256 hex', { password_hash: 'md5:5f4dcc3b5aa765d61d8327deb882cf99' }, 'transaction.password_hash'],
    ['an IP override', { ip: '8.8.8.8' }, 'transaction.ip'],
  ])('%s is a 400 for the app, and no call is made', async (_label, transaction, field) => {
    const outcome = await signup(gateFor(), transaction)
    expect(fake.requests).toHaveLength(0)
    expect(outcome.decision).toMatchObject({ verdict: 'deny', reason: 'invalid_checkpoint' })
    expect(outcome.action.type).toBe('error')
    const error = outcome.action.type === 'error' ? outcome.action.error : undefined
    expect(error).toMatchObject({ code: 'SP_INVALID_CHECKPOINT', statusCode: 400, option: field })
    for (const value of Object.values(transaction)) expect(error?.message).not.toContain(value)
  })

  it('is refused even when no lookup would follow for want of an IP', async () => {
    const outcome = await signup(gateFor({}, { trustProxy: true }), { password: 'x' }, { headers: { 'x-forwarded-for': 'nonsense' } })
    expect(outcome.action.type).toBe('error')
    expect(fake.requests).toHaveLength(0)
  })

  it('a checkpoint without a transaction sends only the lookup parameters', async () => {
    const gate = gateFor()
    await gate.decide(view(), gate.checkpoint({ event: 'signup' } satisfies Partial<Checkpoint>))
    expect(Object.keys(fake.checks()[0] ?? {}).sort()).toEqual(['ip', 'strictness', 'user_agent', 'user_language'])
  })
})

describe('failures', () => {
  it('a wrong key (HTTP 200, success: false) falls back as `client` and the warning names the cause, not the key', async () => {
    const warnings: string[] = []
    const logger: Logger = { warn: (_object, message) => warnings.push(String(message)), error() {} }
    const { decision } = await gateFor({ key: 'WrongKey000' }, { logger, onError: { client: 'challenge' } }).decide(view())
    expect(decision).toMatchObject({ verdict: 'challenge', source: 'fallback', reason: 'client' })
    expect(warnings.join('\n')).toContain('API key is invalid or unauthorized')
    expect(warnings.join('\n')).not.toContain('WrongKey000')
  })

  it.each([
    [IPQS_MESSAGES.insufficientCredits, 'client'],
    [IPQS_MESSAGES.temporary, 'server'],
  ])('success: false "%s" falls back as `%s`', async (message, reason) => {
    fake.reply({ failure: message })
    const { decision } = await gateFor({}, { onError: 'review' }).decide(view())
    expect(decision).toMatchObject({ verdict: 'review', source: 'fallback', reason, requestId: null })
  })
})
