// Gatehouse demo: the Express example guarded by Trusted Accounts, played against a local
// fake Trusted Accounts API, with scripted visitors. Every step states what should happen;
// the exit code is 0 only when all of them did.
//
//   pnpm demo                  (from the repository root: builds, then runs this file)
//   node demo.mjs --serve      (then keeps the site up for you to click through)

import { randomBytes } from 'node:crypto'
import { fakeTrustedAccounts } from '@gatehouse/testing'
import { trustedAccounts } from '@gatehouse/trusted-accounts'
import { Agent, request } from 'undici'
import { createApp, listen } from './server.mjs'

const SERVE = process.argv.includes('--serve')
const BLOCKED_IP = '203.0.113.66'
const BOT_AGENT = /bot|crawler|spider|scrapy|python-requests|headless/i
const BROWSER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'
const SCRAPER_AGENT = 'EvilScraperBot/2.1 (+https://scraper.invalid)'
const HTML = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8'
const JSON_ONLY = 'application/json'
/** Header the demo tags each visitor with, so decisions and backend calls can be matched to it. */
const VISITOR = 'x-demo-visitor'
/** Trusted Accounts' recommended budget, which the gate uses since it sets no `timeoutMs`. */
const BUDGET_MS = 400
/** How late the budget's timer may fire on a busy machine. */
const TIMER_SLACK_MS = 150
/** What the whole HTTP round trip may add on top: the site's own work and the client. */
const ROUND_TRIP_SLACK_MS = 1000

/** A fallback decision is made within the budget, and the visitor has the page soon after. */
const WITHIN_BUDGET = { maxDecisionMs: BUDGET_MS + TIMER_SLACK_MS, maxMs: BUDGET_MS + ROUND_TRIP_SLACK_MS }

const watchdog = setTimeout(() => {
  console.error('The demo did not finish within 20 s; giving up.')
  process.exit(1)
}, 20_000)
watchdog.unref()

/** The fake Trusted Accounts API: blocks one IP, challenges bot user agents, gives new visitors a trusted_id. */
async function startFake() {
  let requestCount = 0
  return fakeTrustedAccounts({
    decide(body) {
      requestCount++
      const setCookies = body.trustedId
        ? []
        : [`trusted_id=tid_${randomBytes(12).toString('base64url')}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax`]
      const extra = { requestId: `req_${requestCount}` }
      if (body.ip === BLOCKED_IP) return { decision: 'block', setCookies, extra }
      if (BOT_AGENT.test(body.headers?.['user-agent'] ?? '')) return { decision: 'challenge', setCookies, extra }
      return { decision: 'allow', setCookies, extra }
    },
  })
}

/** The Express example guarded by Trusted Accounts (pointed at the fake), listening on 127.0.0.1. */
async function startSite(fake, { trustProxy, port = 0, onDecision, logger }) {
  const backend = trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk_demo', baseUrl: fake.url })
  const { app, gate } = createApp({ backend, trustProxy, onDecision, ...(logger === undefined ? {} : { logger }) })
  let site
  try {
    site = await listen(app, { port, host: '127.0.0.1' })
  } catch (error) {
    await gate.close()
    throw error
  }
  return {
    url: site.url,
    async close() {
      const closed = site.close()
      site.server.closeAllConnections()
      await closed
      await gate.close()
    },
  }
}

function header(response, name) {
  const value = response.headers[name]
  return Array.isArray(value) ? value : value === undefined ? [] : [value]
}

function trustedIdFrom(response) {
  for (const cookie of header(response, 'set-cookie')) {
    const match = /^trusted_id=([^;]*)/.exec(cookie)
    if (match) return match[1]
  }
  return undefined
}

/** Compares what happened with what a step expects; returns the differences. */
function differences(step, outcome) {
  const problems = []
  const { expect } = step
  const { response, decision, ipSeen, ms } = outcome
  if (response.status !== expect.status) problems.push(`HTTP ${response.status}, expected ${expect.status}`)
  if (decision === undefined) problems.push('no decision reached onDecision')
  else {
    for (const field of ['verdict', 'reason', 'source']) {
      if (field in expect && decision[field] !== expect[field]) {
        problems.push(`${field} ${JSON.stringify(decision[field])}, expected ${JSON.stringify(expect[field])}`)
      }
    }
  }
  if ('ip' in expect && ipSeen !== expect.ip) problems.push(`IP seen ${ipSeen ?? 'none'}, expected ${expect.ip ?? 'none'}`)
  if (expect.maxDecisionMs !== undefined && decision !== undefined && decision.latencyMs > expect.maxDecisionMs) {
    problems.push(`the decision took ${decision.latencyMs.toFixed(0)} ms, expected at most ${expect.maxDecisionMs} ms`)
  }
  if (expect.maxMs !== undefined && ms > expect.maxMs) problems.push(`took ${ms.toFixed(0)} ms, expected at most ${expect.maxMs} ms`)
  for (const problem of step.check?.(outcome) ?? []) if (problem) problems.push(problem)
  return problems
}

function pad(values, widths) {
  return values.map((value, index) => String(value).padEnd(widths[index] ?? 0)).join('  ')
}

async function main() {
  const decisions = new Map()
  const logged = []
  const onDecision = (decision, req) => {
    const visitor = req.headers[VISITOR]
    if (typeof visitor !== 'string') {
      if (SERVE)
        console.log(`  ${req.method} ${req.originalUrl} → ${decision.verdict} (${decision.source}, ${decision.reason ?? 'no reason'})`)
      return
    }
    const list = decisions.get(visitor) ?? []
    list.push(decision)
    decisions.set(visitor, list)
  }
  const logger = {
    warn: (object, message) => logged.push({ level: 'warn', code: object.code, message }),
    error: (object, message) => logged.push({ level: 'error', code: object.code, message }),
  }

  const fake = await startFake()
  // The site sits behind a proxy on this machine: loopback peers are trusted to set X-Forwarded-For.
  const site = await startSite(fake, { trustProxy: 'loopback', onDecision, logger })
  // The same site with no proxy trusted: X-Forwarded-For from its peers is ignored.
  const direct = await startSite(fake, { trustProxy: false, onDecision, logger })
  const agent = new Agent({ keepAliveTimeout: 1000, connections: 4 })
  const shared = {}

  const steps = [
    {
      visitor: 'browser',
      what: 'an ordinary browser opens the home page',
      request: { path: '/', headers: { 'user-agent': BROWSER_AGENT, accept: HTML } },
      expect: { status: 200, verdict: 'allow', reason: null, source: 'backend', ip: '127.0.0.1' },
      check({ response }) {
        shared.trustedId = trustedIdFrom(response)
        return [shared.trustedId === undefined && 'no trusted_id cookie was set']
      },
    },
    {
      visitor: 'returning browser',
      what: 'the browser comes back with its trusted_id, a session cookie and a credential',
      request: () => ({
        path: '/products',
        headers: {
          'user-agent': BROWSER_AGENT,
          accept: HTML,
          cookie: `trusted_id=${shared.trustedId}; session=s3cret-session`,
          authorization: 'Bearer s3cret-token',
        },
      }),
      expect: { status: 200, verdict: 'allow', reason: null, source: 'backend', ip: '127.0.0.1' },
      check({ checks }) {
        const sent = checks.at(-1)
        if (sent === undefined) return ['the backend was not called']
        const text = JSON.stringify(sent)
        return [
          sent.trustedId !== shared.trustedId && `the backend got trustedId ${sent.trustedId}, expected ${shared.trustedId}`,
          JSON.stringify(sent.cookies) !== '["trusted_id","session"]' && `the backend got cookies ${JSON.stringify(sent.cookies)}`,
          text.includes('s3cret') && 'a cookie value or credential reached the backend',
        ]
      },
    },
    {
      visitor: 'login',
      what: 'the browser signs in: the login checkpoint reads the email from the parsed form',
      request: () => ({
        method: 'POST',
        path: '/login',
        headers: {
          'user-agent': BROWSER_AGENT,
          accept: HTML,
          'content-type': 'application/x-www-form-urlencoded',
          cookie: `trusted_id=${shared.trustedId}`,
        },
        body: 'email=ada%40example.com&password=correct-horse',
      }),
      expect: { status: 200, verdict: 'allow', reason: null, source: 'backend', ip: '127.0.0.1' },
      check({ decisions: list, body, checks }) {
        return [
          list.length !== 2 && `${list.length} decisions, expected 2 (site-wide and checkpoint)`,
          !body.includes('Welcome back, ada@example.com') && 'the login page did not greet the user',
          JSON.stringify(checks).includes('correct-horse') && 'the password reached the backend',
        ]
      },
    },
    {
      visitor: 'scraper bot',
      what: 'a scraper opens a page: challenged, sent to the hosted challenge page',
      request: { path: '/products?page=2', headers: { 'user-agent': SCRAPER_AGENT, accept: HTML } },
      expect: { status: 302, verdict: 'challenge', reason: 'trusted-accounts:challenge', source: 'backend', ip: '127.0.0.1' },
      check({ response, siteUrl }) {
        const location = new URL(header(response, 'location')[0] ?? 'about:blank')
        shared.challengeLocation = location.href
        const query = location.searchParams
        return [
          location.origin + location.pathname !== 'https://challenge.trustedaccounts.org/challenge.html' &&
            `redirected to ${location.href}`,
          !query.get('trusted_id') && 'no trusted_id in the challenge URL',
          query.get('publishable_key') !== 'pk_demo' && 'no publishable_key in the challenge URL',
          query.get('redirect_url') !== `${siteUrl}/products?page=2` && `redirect_url is ${query.get('redirect_url')}`,
        ]
      },
    },
    {
      visitor: 'scraper bot (API)',
      what: 'the scraper calls the JSON API: no redirect for an API client, a 403 it can read',
      request: { path: '/api/products', headers: { 'user-agent': SCRAPER_AGENT, accept: JSON_ONLY } },
      expect: { status: 403, verdict: 'challenge', reason: 'trusted-accounts:challenge', source: 'backend', ip: '127.0.0.1' },
      check: ({ body }) => [!body.includes('"challenge_required"') && `body ${body}`],
    },
    {
      visitor: 'blocked IP via proxy',
      what: `a visitor from ${BLOCKED_IP} arrives through the trusted loopback proxy`,
      request: { path: '/api/products', headers: { 'user-agent': BROWSER_AGENT, accept: JSON_ONLY, 'x-forwarded-for': BLOCKED_IP } },
      expect: { status: 403, verdict: 'deny', reason: 'trusted-accounts:block', source: 'backend', ip: BLOCKED_IP },
      check: ({ body }) => [!body.includes('"forbidden"') && `body ${body}`],
    },
    {
      visitor: 'forged XFF via proxy',
      what: 'a client writes its own X-Forwarded-For; the proxy appends the real address',
      request: { path: '/products', headers: { 'user-agent': BROWSER_AGENT, accept: HTML, 'x-forwarded-for': '10.1.2.3, 198.51.100.23' } },
      expect: { status: 200, verdict: 'allow', source: 'backend', ip: '198.51.100.23' },
    },
    {
      visitor: 'spoofed XFF, no proxy',
      what: 'a client connects directly with its own X-Forwarded-For; no proxy is trusted, so the socket peer counts',
      site: 'direct',
      request: { path: '/products', headers: { 'user-agent': BROWSER_AGENT, accept: HTML, 'x-forwarded-for': '203.0.113.67' } },
      expect: { status: 200, verdict: 'allow', source: 'backend', ip: '127.0.0.1' },
      check: () => [!logged.some((entry) => entry.code === 'GH_WARN_XFF_UNTRUSTED') && 'no GH_WARN_XFF_UNTRUSTED warning was logged'],
    },
    {
      visitor: 'health check',
      what: 'the load balancer polls /health: skipped, no backend call',
      request: { path: '/health', headers: { 'user-agent': 'kube-probe/1.30' } },
      expect: { status: 200, verdict: 'allow', reason: 'skip:rule', source: 'skip', ip: null },
    },
    {
      visitor: 'backend hangs',
      what: `the backend accepts the call and never answers: fail-open within the ${BUDGET_MS} ms budget`,
      before: () => fake.replyOnce({ fault: 'hang' }),
      request: { path: '/products', headers: { 'user-agent': BROWSER_AGENT, accept: HTML } },
      expect: { status: 200, verdict: 'allow', reason: 'timeout', source: 'fallback', ip: '127.0.0.1', ...WITHIN_BUDGET },
    },
    {
      visitor: 'backend down',
      what: 'the backend is gone (connection refused): fail-open at once',
      before: () => fake.close(),
      request: { path: '/products', headers: { 'user-agent': BROWSER_AGENT, accept: HTML } },
      expect: { status: 200, verdict: 'allow', reason: 'network', source: 'fallback', ip: null, ...WITHIN_BUDGET },
    },
  ]

  const rows = []
  let failed = 0
  try {
    for (const step of steps) {
      await step.before?.()
      const siteUrl = step.site === 'direct' ? direct.url : site.url
      const spec = typeof step.request === 'function' ? step.request() : step.request
      const checksBefore = fake.checks().length
      const started = performance.now()
      let response
      let body = ''
      try {
        response = await request(`${siteUrl}${spec.path}`, {
          method: spec.method ?? 'GET',
          headers: { ...spec.headers, [VISITOR]: step.visitor },
          body: spec.body,
          dispatcher: agent,
          headersTimeout: 5000,
          bodyTimeout: 5000,
        })
        body = await response.body.text()
      } catch (error) {
        const ms = performance.now() - started
        failed++
        const outcome = { response: { status: '-', headers: {} }, body, ms, decision: undefined, ipSeen: null }
        rows.push({ step, outcome, problems: [`the request failed: ${error.message}`] })
        continue
      }
      const ms = performance.now() - started
      const list = decisions.get(step.visitor) ?? []
      // What the backend was sent for this visitor (none for a skipped request or an unreachable backend).
      const checks = fake.checks().slice(checksBefore)
      const outcome = {
        response: { status: response.statusCode, headers: response.headers },
        body,
        ms,
        decision: list.at(-1),
        decisions: list,
        checks,
        ipSeen: checks.at(-1)?.ip ?? null,
        siteUrl,
      }
      const problems = differences(step, outcome)
      if (problems.length > 0) failed++
      rows.push({ step, outcome, problems })
    }
  } finally {
    await agent.close()
    await Promise.all([site.close(), direct.close(), fake.close()])
  }

  const widths = [22, 15, 9, 28, 10, 5, 7, 5]
  console.log('\nGatehouse demo: the Express example guarded by Trusted Accounts (a local fake), behind a loopback proxy\n')
  console.log(pad(['visitor', 'IP seen', 'verdict', 'reason', 'source', 'HTTP', 'ms'.padStart(5), 'check'], widths))
  console.log(
    pad(
      widths.map((width) => '-'.repeat(width)),
      widths,
    ).trimEnd(),
  )
  for (const { step, outcome, problems } of rows) {
    const { decision } = outcome
    console.log(
      pad(
        [
          step.visitor,
          outcome.ipSeen ?? '-',
          decision?.verdict ?? '-',
          decision?.reason ?? '-',
          decision?.source ?? '-',
          outcome.response.status,
          outcome.ms.toFixed(0).padStart(5),
          problems.length === 0 ? 'ok' : 'FAIL',
        ],
        widths,
      ).trimEnd(),
    )
    for (const problem of problems) console.log(`    ✗ ${problem}`)
  }

  console.log('\nWhat each visitor shows:')
  for (const { step } of rows) console.log(`  ${step.visitor.padEnd(widths[0] + 2)}${step.what}`)
  console.log('\nNotes:')
  console.log(`  "IP seen" is the client IP Gatehouse sent to the backend ("-": no backend call was made or reached).`)
  for (const { step, outcome } of rows) {
    if (step.expect.maxDecisionMs !== undefined && outcome.decision !== undefined) {
      console.log(`  ${step.visitor}: decided in ${outcome.decision.latencyMs.toFixed(0)} ms against a ${BUDGET_MS} ms budget.`)
    }
  }
  if (shared.challengeLocation) console.log(`  Challenge redirect: ${shared.challengeLocation}`)
  for (const entry of logged) console.log(`  Logged ${entry.level} ${entry.code}: ${entry.message}`)

  const passed = rows.length - failed
  console.log(
    failed === 0
      ? `\nAll ${rows.length} steps behaved as expected.`
      : `\n${failed} of ${rows.length} steps did not behave as expected (${passed} did).`,
  )
  process.exitCode = failed === 0 ? 0 : 1

  if (SERVE) await serve(onDecision)
}

/** Keeps a fresh fake and site up for a person to click through, until Ctrl+C. */
async function serve(onDecision) {
  clearTimeout(watchdog)
  const fake = await startFake()
  let site
  const port = Number(process.env.PORT ?? 3000)
  try {
    site = await startSite(fake, { trustProxy: 'loopback', port, onDecision })
  } catch {
    site = await startSite(fake, { trustProxy: 'loopback', port: 0, onDecision })
  }
  console.log(`\nServing ${site.url}/ (Trusted Accounts fake on ${fake.url}). Press Ctrl+C to stop.`)
  const tries = [
    [`open ${site.url}/ in a browser`, 'allowed, gets a trusted_id cookie'],
    [`curl -i -A '${SCRAPER_AGENT}' -H 'accept: text/html' ${site.url}/`, '302 to the challenge page'],
    [`curl -i -H 'x-forwarded-for: ${BLOCKED_IP}' ${site.url}/api/products`, '403, the IP is blocked'],
  ]
  const width = Math.max(...tries.map(([command]) => command.length))
  console.log('Try:')
  for (const [command, result] of tries) console.log(`  ${command.padEnd(width)}  → ${result}`)
  console.log('Decisions:')
  await new Promise((resolve) => {
    process.once('SIGINT', resolve)
    process.once('SIGTERM', resolve)
  })
  await site.close()
  await fake.close()
}

await main()
