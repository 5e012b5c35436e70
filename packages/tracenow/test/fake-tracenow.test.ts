import { type FakeTraceNow, fakeTraceNow, TRACENOW_QUOTA_BODY } from '@sallyport/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'

let fake: FakeTraceNow

beforeEach(async () => {
  fake = await fakeTraceNow()
})

afterEach(async () => {
  await fake.close()
})

async function post(body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const response = await fetch(`${fake.url}/trace`, {
    method: 'POST',
    headers: { authorization: `Bearer ${fake.secretKey}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: response.status, json: await response.json() }
}

const valid = { event: 'login', status: 'attempted', ip: '198.51.100.7' }

describe('fakeTraceNow checks requests as TraceNow does', () => {
  it('refuses a missing or wrong key with 401 and a { detail } body', async () => {
    expect(await post(valid, { authorization: '' })).toEqual({ status: 401, json: { detail: 'Invalid API key' } })
    expect(await post(valid, { authorization: 'Bearer tn_live_other' })).toEqual({ status: 401, json: { detail: 'Invalid API key' } })
    const response = await fetch(`${fake.url}/trace`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    expect(response.status).toBe(401)
    expect(await response.json()).toEqual({ detail: 'Missing API key' })
  })

  it.each<[string, unknown, string[]]>([
    ['no event', { status: 'attempted', ip: '198.51.100.7' }, ['body', 'event']],
    ['no status', { event: 'login', ip: '198.51.100.7' }, ['body', 'status']],
    ['a status TraceNow does not know', { ...valid, status: 'started' }, ['body', 'status']],
    ['no signal at all', { event: 'login', status: 'attempted' }, ['body']],
    ['a null signal', { ...valid, email: null }, ['body', 'email']],
    ['an empty signal', { ...valid, phone: '  ' }, ['body', 'phone']],
    ['a camelCase deviceToken', { ...valid, deviceToken: 'dt_abc' }, ['body', 'deviceToken']],
    ['a device token without dt_', { ...valid, device_token: 'abc' }, ['body', 'device_token']],
    ['an ip that is not one', { ...valid, ip: 'unknown' }, ['body', 'ip']],
    ['a number for an email', { ...valid, email: 42 }, ['body', 'email']],
    ['a body that is not an object', ['login'], ['body']],
  ])('answers 422 naming the field for %s', async (_label, body, loc) => {
    const { status, json } = await post(body)
    expect(status).toBe(422)
    expect((json as { detail: Array<{ loc: string[] }> }).detail[0]?.loc).toEqual(loc)
  })

  it('answers 422 to a body that is not JSON', async () => {
    expect((await post('event=login', { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(422)
  })

  it('records every body it received, refused ones included', async () => {
    await post(valid)
    await post({ event: 'login', status: 'attempted' })
    expect(fake.checks()).toEqual([valid, { event: 'login', status: 'attempted' }])
  })
})

describe('fakeTraceNow replies', () => {
  it('by default allows, with complete signals and enrichment only for the signals sent', async () => {
    const { status, json } = await post({ ...valid, email: 'ada@example.com' })
    expect(status).toBe(200)
    expect(json).toMatchObject({
      request_id: expect.stringMatching(/^tr_/),
      verdict: 'allow',
      policy_triggered: null,
      signals_complete: true,
      privacy_mode: false,
      ip: { is_tor: false },
      email: { is_disposable: false },
      phone: null,
      device: expect.any(Object),
    })
  })

  it('answers with the scripted verdict, then the decide() rule', async () => {
    await fake.close()
    fake = await fakeTraceNow({
      decide: (body) => (body.email?.endsWith('@mailinator.com') ? { verdict: 'deny', policyTriggered: 'Disposable email' } : {}),
    })
    fake.replyOnce({ verdict: 'challenge', policyTriggered: 'Tor exit node', signalsComplete: false })
    expect((await post(valid)).json).toMatchObject({ verdict: 'challenge', policy_triggered: 'Tor exit node', signals_complete: false })
    expect((await post({ ...valid, email: 'x@mailinator.com' })).json).toMatchObject({
      verdict: 'deny',
      policy_triggered: 'Disposable email',
    })
    expect((await post({ ...valid, email: 'ada@example.com' })).json).toMatchObject({ verdict: 'allow' })
  })

  it('refuses with the quota body TraceNow sends for a used-up plan', async () => {
    fake.reply({ refuse: 'quota' })
    expect(await post(valid)).toEqual({ status: 403, json: TRACENOW_QUOTA_BODY })
  })

  it('refuses with 429 when rate limited', async () => {
    fake.reply({ refuse: 'rate-limit' })
    expect(await post(valid)).toEqual({ status: 429, json: { detail: 'Rate limit exceeded' } })
  })
})
