import ipaddr from 'ipaddr.js'
import { invalidOption } from './errors.js'
import type { BackendVerdict, DecisionBackend, DecisionInput } from './types.js'

export interface LocalPoliciesOptions {
  /** IPs or CIDR ranges always allowed (checked first). Defaults to none. */
  allowIps?: string[]
  /** IPs or CIDR ranges denied. Defaults to none. */
  denyIps?: string[]
  /** User agents denied: a RegExp, or a case-insensitive substring. Defaults to none. */
  denyUserAgents?: Array<string | RegExp>
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]

function compileRanges(list: string[] | undefined, option: string): Range[] {
  return (list ?? []).map((entry) => {
    try {
      if (entry.includes('/')) return ipaddr.parseCIDR(entry)
      const address = ipaddr.parse(entry)
      return [address, address.kind() === 'ipv4' ? 32 : 128]
    } catch (error) {
      throw invalidOption(option, `IP addresses or CIDR ranges (got ${JSON.stringify(entry)})`, error)
    }
  })
}

function matches(ranges: Range[], ip: string | null): boolean {
  if (ranges.length === 0 || ip === null) return false
  const address = ipaddr.parse(ip)
  return ranges.some(([range, bits]) => address.kind() === range.kind() && address.match(range, bits))
}

/**
 * The embedded policy engine: no vendor account, no network. Allow-listed IPs pass,
 * deny-listed IPs and user agents are denied, everything else is allowed.
 */
export function localPolicies(options: LocalPoliciesOptions = {}): DecisionBackend {
  const allowIps = compileRanges(options.allowIps, 'allowIps')
  const denyIps = compileRanges(options.denyIps, 'denyIps')
  const denyUserAgents = (options.denyUserAgents ?? []).map((pattern) => {
    if (pattern instanceof RegExp) return (agent: string) => pattern.test(agent)
    if (typeof pattern !== 'string' || pattern.length === 0) {
      throw invalidOption('denyUserAgents', 'RegExps or non-empty strings')
    }
    const needle = pattern.toLowerCase()
    return (agent: string) => agent.toLowerCase().includes(needle)
  })

  function decide(input: DecisionInput): BackendVerdict {
    if (matches(allowIps, input.ip)) return { verdict: 'allow', reason: 'allow_ip' }
    if (matches(denyIps, input.ip)) return { verdict: 'deny', reason: 'deny_ip' }
    const agent = input.headers['user-agent'] ?? ''
    if (denyUserAgents.some((test) => test(agent))) return { verdict: 'deny', reason: 'deny_user_agent' }
    return { verdict: 'allow', reason: null }
  }

  return {
    name: 'local',
    timeoutMs: 50,
    decide: async (input) => decide(input),
  }
}
