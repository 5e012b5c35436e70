import { SallyportError } from '@sallyport/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { LocalPoliciesOptions } from '../src/local-policies.js'
import { closeAll, engine, judge } from './policies-helpers.js'

afterEach(closeAll)

/** Rules as a JSON file holds them. */
const RULES_JSON = `[
  { "name": "office", "verdict": "allow", "priority": 100, "when": { "ip": { "list": "office" } } },
  { "name": "disposable-signup", "verdict": "review", "description": "throwaway inboxes",
    "when": { "checkpoint": { "event": "signup" }, "emailDomain": { "list": "disposable" } } },
  { "name": "scanner", "verdict": "deny", "when": { "any": [
      { "userAgent": [{ "regex": "^(sqlmap|nikto)", "flags": "i" }, "masscan"] },
      { "path": [{ "prefix": "/wp-admin" }, "/.env", { "regex": "\\\\.php$" }] } ] } },
  { "name": "api-bursts", "verdict": "challenge",
    "when": { "path": "/api/*", "not": { "header": { "name": "x-api-key" } },
              "velocity": { "key": "ip", "limit": 2, "windowMs": 60000 } } }
]`

function invalid(options: unknown): SallyportError {
  let caught: unknown
  try {
    engine(options as LocalPoliciesOptions)
  } catch (error) {
    caught = error
  }
  expect(caught, 'expected construction to throw').toBeInstanceOf(SallyportError)
  expect((caught as SallyportError).code).toBe('SP_INVALID_OPTION')
  return caught as SallyportError
}

describe('rules loaded from JSON', () => {
  it('run exactly like TypeScript rules', async () => {
    const backend = engine({
      rules: JSON.parse(RULES_JSON),
      lists: { office: ['192.0.2.0/24'], disposable: ['mailinator.com'] },
    })
    expect(await judge(backend, { ip: '192.0.2.4', headers: { 'user-agent': 'sqlmap/1.7' } })).toEqual(['allow', 'office'])
    expect(await judge(backend, { headers: { 'user-agent': 'SQLMap/1.7' } })).toEqual(['deny', 'scanner'])
    expect(await judge(backend, { path: '/index.php?x=1' })).toEqual(['deny', 'scanner'])
    expect(await judge(backend, { path: '/.env' })).toEqual(['deny', 'scanner'])
    expect(await judge(backend, { path: '/wp-admin/setup' })).toEqual(['deny', 'scanner'])
    const signup = { event: 'signup', status: 'attempted', email: 'x@mailinator.com' } as const
    expect(await judge(backend, { method: 'POST', path: '/signup', checkpoint: signup })).toEqual(['review', 'disposable-signup'])
    const verdicts = []
    for (let index = 0; index < 4; index++) verdicts.push((await judge(backend, { path: '/api/items', headers: {} }))[0])
    expect(verdicts).toEqual(['allow', 'allow', 'challenge', 'challenge'])
  })

  it.each<[string, unknown, string]>([
    ['a rule that is not an object', ['deny'], 'rules[0]'],
    ['a missing name', [{ verdict: 'deny' }], 'rules[0].name'],
    ['a name with a colon', [{ name: 'a:b', verdict: 'deny' }], 'rules[0].name'],
    ['an unknown verdict', [{ name: 'a', verdict: 'block' }], 'rules[0].verdict'],
    ['an unknown rule field', [{ name: 'a', verdict: 'deny', mode: 'x' }], 'rules[0].mode'],
    ['a non-finite priority', [{ name: 'a', verdict: 'deny', priority: '10' }], 'rules[0].priority'],
    ['an empty condition', [{ name: 'a', verdict: 'deny', when: {} }], 'rules[0].when'],
    [
      'an unknown condition',
      [
        { name: 'ok', verdict: 'allow' },
        { name: 'a', verdict: 'deny', when: { ipAddress: ['1.2.3.4'] } },
      ],
      'rules[1].when.ipAddress',
    ],
    [
      'a bad CIDR deep inside',
      [
        { name: 'a', verdict: 'deny' },
        { name: 'b', verdict: 'deny' },
        { name: 'c', verdict: 'deny' },
        { name: 'd', verdict: 'deny', when: { ip: ['10.0.0.0/8', '10.0.0.0/33'] } },
      ],
      'rules[3].when.ip[1]',
    ],
    ['an ip that is a string', [{ name: 'a', verdict: 'deny', when: { ip: '10.0.0.0/8' } }], 'rules[0].when.ip'],
    ['an unknown list', [{ name: 'a', verdict: 'deny', when: { ip: { list: 'tor' } } }], 'rules[0].when.ip.list'],
    ['a regex that does not compile', [{ name: 'a', verdict: 'deny', when: { userAgent: { regex: '(' } } }], 'rules[0].when.userAgent'],
    ['bad regex flags', [{ name: 'a', verdict: 'deny', when: { userAgent: { regex: 'x', flags: 'q' } } }], 'rules[0].when.userAgent.flags'],
    [
      'a nested bad test',
      [{ name: 'a', verdict: 'deny', when: { all: [{ path: '/a' }, { not: { navigation: 'yes' } }] } }],
      'rules[0].when.all[1].not.navigation',
    ],
    ['an empty any', [{ name: 'a', verdict: 'deny', when: { any: [] } }], 'rules[0].when.any'],
    [
      'a velocity without a window',
      [{ name: 'a', verdict: 'deny', when: { velocity: { key: 'ip', limit: 3 } } }],
      'rules[0].when.velocity.windowMs',
    ],
    [
      'a velocity keyed on a header',
      [{ name: 'a', verdict: 'deny', when: { velocity: { key: 'ua', limit: 3, windowMs: 10 } } }],
      'rules[0].when.velocity.key',
    ],
    ['a bad checkpoint status', [{ name: 'a', verdict: 'deny', when: { checkpoint: { status: 'done' } } }], 'rules[0].when.checkpoint'],
    [
      'an unknown header test field',
      [{ name: 'a', verdict: 'deny', when: { header: { name: 'x', equals: 'y' } } }],
      'rules[0].when.header.equals',
    ],
    [
      'a signal field outside the checkpoint',
      [{ name: 'a', verdict: 'deny', when: { signal: { field: 'headers.cookie' } } }],
      'rules[0].when.signal.field',
    ],
    [
      'a bad domain',
      [{ name: 'a', verdict: 'deny', when: { emailDomain: ['ok.example', 'not a domain'] } }],
      'rules[0].when.emailDomain[1]',
    ],
    ['a blank substring', [{ name: 'a', verdict: 'deny', when: { userAgent: ['bot', ' '] } }], 'rules[0].when.userAgent[1]'],
    ['a path without a slash', [{ name: 'a', verdict: 'deny', when: { path: 'login' } }], 'rules[0].when.path'],
    [
      'a duplicate name',
      [
        { name: 'a', verdict: 'deny' },
        { name: 'a', verdict: 'allow' },
      ],
      'rules[1].name',
    ],
  ])('name the bad part of %s', (_what, rules, option) => {
    const error = invalid({ rules })
    expect(error.option).toBe(option)
    expect(error.message).toContain(`\`${option}\``)
  })

  it('describe what the bad part accepts', () => {
    expect(invalid({ rules: [{ name: 'a', verdict: 'deny', when: { ip: 42 } }] }).message).toMatch(/CIDR ranges, or \{ list/)
    expect(invalid({ rules: [{ name: 'a', verdict: 'deny', when: { nope: 1 } }] }).message).toMatch(/at least one of all, any, not, ip/)
  })

  it('refuse a rule named like a simple option rule when that option is set', () => {
    expect(invalid({ denyIps: ['10.0.0.0/8'], rules: [{ name: 'deny-ip', verdict: 'allow' }] }).option).toBe('rules[0].name')
    expect(() => engine({ rules: [{ name: 'deny-ip', verdict: 'allow' }] })).not.toThrow()
  })
})

describe('localPolicies options', () => {
  it.each<[string, unknown, string]>([
    ['rules that are not an array', { rules: { name: 'a' } }, 'rules'],
    ['an unknown option', { rule: [] }, 'rule'],
    ['a bad allowIps entry', { allowIps: ['10.0.0.1', 'nope'] }, 'allowIps'],
    ['a bad denyIps entry', { denyIps: ['300.1.1.1'] }, 'denyIps'],
    ['an empty denyUserAgents pattern', { denyUserAgents: [''] }, 'denyUserAgents'],
    ['a blank denyUserAgents pattern', { denyUserAgents: ['  '] }, 'denyUserAgents'],
    ['a store without increment', { store: { get() {}, delete() {} } }, 'store'],
    ['a short secret', { secret: 'short' }, 'secret'],
    ['a bad list name', { lists: { 'tor exits': [] } }, 'lists.tor exits'],
    ['a bad inline list entry', { lists: { office: ['10.0.0.0/8', '10.0.0.0/99'] } }, 'lists.office[1]'],
    ['a list that is neither entries nor a file', { lists: { tor: { path: '/tmp/x' } } }, 'lists.tor'],
    ['a too-eager reload interval', { lists: { tor: { file: '/tmp/x', reloadIntervalMs: 1 } } }, 'lists.tor'],
  ])('reject %s, naming it', (_what, options, option) => {
    expect(invalid(options).option).toBe(option)
  })
})
