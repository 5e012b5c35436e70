import { AUTOMATION_USER_AGENTS, defaultRules } from './defaults.js'
import type { Rule } from './types.js'

/**
 * Requests one IP (or IPv6 /64) may make in a minute before `request-flood` challenges it.
 * A heavy page pulling 200 files from your own server with a cold cache is a third of it;
 * a person browsing a cached site makes tens a minute. A scraper on Scrapy's defaults
 * (8 requests at a time per site, no delay) against pages served in 100 ms passes it in
 * under ten seconds. One minute, so a client refused by mistake is let in again soon.
 */
const REQUESTS_PER_MINUTE = 600

/**
 * `defaultRules`, plus the two rules that judge what the defaults leave alone: requests
 * that are not page loads (API calls, `fetch()`, form posts) from a declared HTTP library
 * or headless browser, and any client making requests faster than a person's browser.
 * Both are challenges: a browser solves one and carries on, while an API client, which
 * cannot, gets `403 challenge_required`. That is the point, and the risk: legitimate API
 * clients, mobile apps, webhooks and monitors on an HTTP library's default user agent are
 * refused too. POLICIES.md ("The strict rules") says how to let them through.
 */
export const strictRules: readonly Rule[] = Object.freeze([
  ...defaultRules,
  Object.freeze<Rule>({
    name: 'automation-user-agent-request',
    verdict: 'challenge',
    priority: 50,
    description: 'A request other than a page load (API call, fetch, form post) from a headless browser or an HTTP library that says so.',
    when: { navigation: false, userAgent: AUTOMATION_USER_AGENTS },
  }),
  Object.freeze<Rule>({
    name: 'request-flood',
    verdict: 'challenge',
    priority: 30,
    description: `More than ${REQUESTS_PER_MINUTE} requests from one IP in a minute, checkpoints aside.`,
    // Checkpoint attempts are counted by the checkpoint rules; counting them here too would
    // count each login twice (once by the site-wide gate, once at the checkpoint).
    when: { checkpoint: false, velocity: { key: 'ip', limit: REQUESTS_PER_MINUTE, windowMs: 60_000 } },
  }),
])
