import type { Rule } from './types.js'

/**
 * User agents that say outright they are not a person's browser: headless and driven
 * browsers, and HTTP libraries left on their default user agent. Substrings, matched
 * case-insensitively; `^node$` is Node's own `fetch`.
 */
export const AUTOMATION_USER_AGENTS: readonly (string | { regex: string; flags?: string })[] = Object.freeze([
  // Headless and automated browsers.
  'HeadlessChrome',
  'PhantomJS',
  'Selenium',
  'webdriver',
  'Puppeteer',
  'Playwright',
  // HTTP libraries and command-line tools.
  'curl/',
  'Wget/',
  'python-requests',
  'Python-urllib',
  'python-httpx',
  'aiohttp',
  'Go-http-client',
  'okhttp',
  'Java/',
  'Apache-HttpClient',
  'libwww-perl',
  'Scrapy',
  'GuzzleHttp',
  'axios/',
  'node-fetch',
  'undici',
  { regex: '^node$', flags: 'i' },
])

const TEN_MINUTES = 10 * 60_000

/**
 * The rule set bare `guard()` runs. Conservative on purpose: nothing here denies a plain
 * browser. Declared automation is challenged only on page loads (so API clients are left
 * alone), and only floods of checkpoint attempts are ever denied. Every rule is
 * documented in POLICIES.md; spread it to keep it next to your own rules.
 */
export const defaultRules: readonly Rule[] = Object.freeze([
  Object.freeze<Rule>({
    name: 'checkpoint-flood-severe',
    verdict: 'deny',
    priority: 200,
    description: 'More than 30 attempts at one checkpoint event from one IP in 10 minutes.',
    when: { checkpoint: true, velocity: { key: 'ip', limit: 30, windowMs: TEN_MINUTES } },
  }),
  Object.freeze<Rule>({
    name: 'checkpoint-flood',
    verdict: 'challenge',
    priority: 100,
    description: 'More than 10 attempts at one checkpoint event from one IP in 10 minutes.',
    when: { checkpoint: true, velocity: { key: 'ip', limit: 10, windowMs: TEN_MINUTES } },
  }),
  Object.freeze<Rule>({
    name: 'automation-user-agent',
    verdict: 'challenge',
    priority: 50,
    description: 'A page load from a headless browser or an HTTP library that says so in its user agent.',
    when: { navigation: true, userAgent: AUTOMATION_USER_AGENTS },
  }),
  Object.freeze<Rule>({
    name: 'browser-headers-missing',
    verdict: 'challenge',
    priority: 40,
    description: 'A page load whose user agent claims a browser, without the Accept or Accept-Language every browser sends.',
    when: { navigation: true, browserHeaders: 'missing' },
  }),
])
