/**
 * A checkpoint placed before the body parser reads no body: its extractors see nothing and
 * the backend gets no email. Sallyport says so once, naming the route and the fix.
 */
import { request as httpRequest } from 'node:http'
import type { GateOptions } from '@sallyport/core'
import request from 'supertest'
import { afterEach, describe, expect, it } from 'vitest'
import { framework, isKoa, type Native, type Site, type SiteOptions, startSite } from './harness.js'

const CODE = 'SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER'

let site: Site | undefined
afterEach(async () => {
  await site?.close()
  site = undefined
})

interface Logged {
  code: string
  message: string
  details: Record<string, unknown>
}

/** Starts the site with a logger that keeps every warning with its message. */
async function start(options: SiteOptions, gate: GateOptions<Native> = {}): Promise<{ current: Site; warned: Logged[] }> {
  const warned: Logged[] = []
  const current = await startSite({
    ...options,
    gate: {
      logger: {
        warn: (details, message) => warned.push({ code: String(details.code), message: message ?? '', details }),
        error: () => {},
      },
      ...gate,
    },
  })
  site = current
  return { current, warned }
}

const forCode = (warned: Logged[]) => warned.filter((entry) => entry.code === CODE)

function login(current: Site, path = '/login') {
  return request(current.url).post(path).set('accept', 'application/json').send({ email: 'ada@example.com' })
}

describe(`a checkpoint before the body parser (${framework})`, () => {
  it('warns once, naming the route without its query, the checkpoint and the fix', async () => {
    const { current, warned } = await start({ checkpointBeforeBodyParser: true })
    const first = await login(current, '/login?next=%2Fsecret-place').expect(200)
    // What the mistake costs: the checkpoint went to the backend without the email.
    expect(first.body.decision.verdict).toBe('allow')
    await login(current).expect(200)
    await login(current).expect(200)
    const logged = forCode(warned)
    expect(logged).toHaveLength(1)
    const [entry] = logged as [Logged]
    expect(entry.message).toContain('POST /login')
    expect(entry.message).toContain('`login` checkpoint')
    expect(entry.message).toMatch(/body parser before the checkpoint/)
    expect(entry.message).not.toContain('secret-place')
    expect(entry.details).toMatchObject({ method: 'POST', path: '/login', event: 'login', contentType: 'application/json' })
  })

  it('warns about a chunked body too', async () => {
    const { current, warned } = await start({ checkpointBeforeBodyParser: true })
    const status = await new Promise<number>((resolve, reject) => {
      const sent = httpRequest(`${current.url}/login`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      sent.on('error', reject)
      // No length given: Node sends it with `Transfer-Encoding: chunked`.
      sent.write('{"email":')
      sent.end('"ada@example.com"}')
    })
    expect(status).toBe(200)
    expect(forCode(warned)).toHaveLength(1)
  })

  it('says nothing when the body parser runs first, when there is no body, or when switched off', async () => {
    const right = await start({})
    const answer = await login(right.current).expect(200)
    expect(answer.body.decision.verdict).toBe('allow')
    expect(forCode(right.warned)).toEqual([])
    await right.current.close()

    const empty = await start({ checkpointBeforeBodyParser: true })
    await request(empty.current.url).post('/login').set('accept', 'application/json').expect(200)
    expect(forCode(empty.warned)).toEqual([])
    await empty.current.close()

    const off = await start({ checkpointBeforeBodyParser: true }, { warnings: { [CODE]: false } })
    await login(off.current).expect(200)
    expect(forCode(off.warned)).toEqual([])
  })

  it('says nothing for a checkpoint that reads nothing from the request, or a body sent to the site-wide gate', async () => {
    const fixed = await start({ checkpointBeforeBodyParser: true, checkpoint: { email: 'fixed@example.com' } })
    await login(fixed.current).expect(200)
    expect(forCode(fixed.warned)).toEqual([])
    await fixed.current.close()

    // The site-wide gate runs before any parser on purpose: only checkpoints read the body.
    const siteWide = await start({})
    await request(siteWide.current.url).post('/orders').send({ item: 1 }).expect(200)
    expect(forCode(siteWide.warned)).toEqual([])
  })

  // Express 4's parsers leave `req.body = {}` for a type they do not read, Express 5's leave it undefined.
  // Only Express apps mount a body parser before the whole site (the harness's jsonParserFirst);
  // the case does not exist on Koa, so it is defined for Express alone rather than skipped.
  if (!isKoa) {
    it('Express: notices a body that the parser run earlier did not take, and says nothing for one it did', async () => {
      const parsedEarlier = await start({ jsonParserFirst: true, checkpointBeforeBodyParser: true })
      await login(parsedEarlier.current).expect(200)
      expect(forCode(parsedEarlier.warned)).toEqual([])
      await request(parsedEarlier.current.url).post('/login').type('form').send({ email: 'ada@example.com' }).expect(200)
      expect(forCode(parsedEarlier.warned)).toHaveLength(1)
      expect(forCode(parsedEarlier.warned)[0]?.details.contentType).toBe('application/x-www-form-urlencoded')
    })
  }
})
