/**
 * A person whose login is challenged (the default rules: more than 10 attempts from one IP
 * in 10 minutes) is sent to the self-hosted challenge and back to the form; an API client
 * keeps its JSON 403.
 */
import { CLEARANCE_COOKIE } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, hookRespond, type Site, startSite } from './harness.js'
import { solveChallengePage } from './proof-of-work.js'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

const HTML = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36'
const FORM = 'application/x-www-form-urlencoded'
/** The checkpoint-flood rule challenges the 11th attempt. */
const LIMIT = 10

/** What a browser sends when a person submits a login form (Fetch metadata included). */
function formHeaders(current: Site, extra: Record<string, string | undefined> = {}): Record<string, string> {
  const headers: Record<string, string | undefined> = {
    accept: HTML,
    'accept-language': 'en',
    'user-agent': BROWSER,
    'content-type': FORM,
    origin: current.url,
    referer: `${current.url}/login`,
    'sec-fetch-mode': 'navigate',
    'sec-fetch-dest': 'document',
    'sec-fetch-site': 'same-origin',
    ...extra,
  }
  return Object.fromEntries(Object.entries(headers).filter((entry): entry is [string, string] => entry[1] !== undefined))
}

function submit(current: Site, extra: Record<string, string | undefined> = {}) {
  return request(current.url).post('/login').set(formHeaders(current, extra)).send('email=ada%40example.com&password=hunter2')
}

/** Uses up the attempts the flood rule allows, from a browser form. */
async function useUpAttempts(current: Site): Promise<void> {
  for (let attempt = 1; attempt <= LIMIT; attempt++) await submit(current).expect(200)
}

function returnUrlOf(location: unknown): string | null {
  return new URL(String(location)).searchParams.get('redirect_url')
}

describe(`a person challenged at a checkpoint (${framework})`, () => {
  it('a form POST past the limit is sent to the challenge page (303), to come back to the page the form is on', async () => {
    site = await startSite({ gate: {} })
    await useUpAttempts(site)
    const response = await submit(site, { referer: `${site.url}/account/sign-in?next=%2Forders` }).expect(303)
    const location = new URL(String(response.headers.location))
    expect(location.origin + location.pathname).toBe(`${site.url}/.sallyport/challenge`)
    expect(location.searchParams.get('redirect_url')).toBe(`${site.url}/account/sign-in?next=%2Forders`)
    expect(response.headers['cache-control']).toBe('no-store')
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'challenge', reason: 'checkpoint-flood' })
    expect(site.handled()).toBe(LIMIT)
  })

  it.each<[string, Record<string, string | undefined>]>([
    ['Sec-Fetch-Mode: navigate, multipart form', { 'content-type': 'multipart/form-data; boundary=x' }],
    ['no Fetch metadata, urlencoded form', { 'sec-fetch-mode': undefined, 'sec-fetch-dest': undefined, 'sec-fetch-site': undefined }],
    ['no Fetch metadata, text/plain form', { 'sec-fetch-mode': undefined, 'content-type': 'text/plain' }],
  ])('knows a browser form by its Fetch metadata or its form type (%s)', async (_name, extra) => {
    site = await startSite({ gate: {} })
    await useUpAttempts(site)
    const response = await submit(site, extra).expect(303)
    expect(returnUrlOf(response.headers.location)).toBe(`${site.url}/login`)
  })

  it.each<[string, (current: Site) => string | undefined]>([
    ['no Referer', () => undefined],
    ['another site', () => 'https://evil.example/login'],
    ['the same host on another port', () => 'http://127.0.0.1:1/login'],
    ['a scheme-relative Referer', () => '//evil.example/login'],
    ['a javascript: Referer', () => 'javascript:alert(1)'],
    ['credentials in the Referer', (current) => `http://user:pass@${new URL(current.url).host}/login`],
  ])('never returns to a Referer off the site; the POST path as a GET instead (%s)', async (_name, referer) => {
    site = await startSite({ gate: {} })
    await useUpAttempts(site)
    const response = await submit(site, { referer: referer(site) }).expect(303)
    expect(returnUrlOf(response.headers.location)).toBe(`${site.url}/login`)
    expect(String(response.headers.location)).not.toContain('evil.example')
  })

  it.each<[string, Record<string, string | undefined>]>([
    ['a JSON API call', { accept: 'application/json', 'content-type': 'application/json', 'sec-fetch-mode': undefined }],
    ['fetch() posting a form', { 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' }],
    ['fetch() from the same origin, asking for anything', { accept: '*/*', 'sec-fetch-mode': 'same-origin', 'sec-fetch-dest': 'empty' }],
    ['a client that prefers JSON to HTML', { accept: 'application/json, text/html;q=0.5', 'sec-fetch-mode': undefined }],
    ['an XMLHttpRequest', { 'sec-fetch-mode': undefined, 'x-requested-with': 'XMLHttpRequest' }],
  ])('keeps the JSON 403 for API clients (%s)', async (_name, extra) => {
    site = await startSite({ gate: {} })
    await useUpAttempts(site)
    const body = extra['content-type'] === 'application/json' ? '{"email":"ada@example.com"}' : 'email=ada%40example.com'
    const response = await request(site.url)
      .post('/login')
      .set(formHeaders(site, extra))
      .send(body)
      .expect(403)
      .expect('content-type', /application\/json/)
    expect(response.body).toEqual({ error: 'challenge_required', reason: 'checkpoint-flood' })
  })

  it('after solving, the next attempt passes the challenge rule; past 30 attempts the flood is still denied', async () => {
    site = await startSite({ gate: {} })
    await useUpAttempts(site)
    const challenged = await submit(site).expect(303)
    const pageUrl = new URL(String(challenged.headers.location))
    const page = await request(site.url)
      .get(pageUrl.pathname + pageUrl.search)
      .set({ accept: HTML, 'accept-language': 'en', 'user-agent': BROWSER })
      .expect(200)
    const verified = await request(site.url)
      .post('/.sallyport/verify')
      .type('form')
      .set('user-agent', BROWSER)
      .send({ payload: solveChallengePage(page.text), redirect_url: pageUrl.searchParams.get('redirect_url') ?? '' })
      .expect(303)
    expect(verified.headers.location).toBe(`${site.url}/login`)
    const setCookie = ([] as string[]).concat(verified.headers['set-cookie'] ?? [])
    const clearance = setCookie.find((value) => value.startsWith(`${CLEARANCE_COOKIE}=`))?.split(';')[0] ?? ''
    expect(clearance).not.toBe('')

    const passed = await submit(site, { cookie: clearance }).expect(200)
    expect(passed.body).toMatchObject({ route: 'login', decision: { verdict: 'allow', signals: { clearance: true } } })
    // The clearance is the person's, not the IP's: a request without it is still challenged.
    await submit(site).expect(303)

    // 13 attempts so far; the severe rule (deny) ignores the clearance and stops the 31st.
    for (let attempt = 14; attempt <= 30; attempt++) await submit(site, { cookie: clearance }).expect(200)
    const denied = await submit(site, { cookie: clearance })
      .expect(403)
      .expect('content-type', /text\/html/)
    expect(denied.text).toContain('Access denied')
    expect(site.decisions.at(-1)).toMatchObject({ verdict: 'deny', reason: 'checkpoint-flood-severe' })
  })

  it('a challenge hook still answers a challenged form POST', async () => {
    site = await startSite({ gate: { challenge: { hook: (_decision, native) => hookRespond(native, 429, { error: 'slow_down' }) } } })
    await useUpAttempts(site)
    const response = await submit(site).expect(429)
    expect(response.body).toEqual({ error: 'slow_down' })
  })
})
