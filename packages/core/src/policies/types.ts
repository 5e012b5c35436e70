import type { CheckpointStatus, DecisionInput, Verdict } from '../types.js'

/**
 * Text to look for: a plain string is a case-insensitive substring; a RegExp is tested as
 * it is (its `g` and `y` flags are dropped); in JSON, `{ "regex": "source", "flags": "i" }`.
 */
export type Pattern = string | RegExp | { regex: string; flags?: string }

/**
 * A path test, against the path without its query. `{ exact }` and `{ prefix }` compare
 * case-insensitively (as Express and Koa route), and `exact` ignores one trailing slash.
 * A plain string is `exact`, or `prefix` when it ends in `*` (`'/api/*'`).
 */
export type PathPattern = string | RegExp | { exact: string } | { prefix: string } | { regex: string; flags?: string }

/** Entries written inline (IPs, CIDR ranges or domains), or the name of a list declared in `lists`. */
export type ListRef = readonly string[] | { list: string }

/** Where a named list comes from: entries inline, or a file of one entry per line. */
export type ListSource =
  | readonly string[]
  | {
      /** One IP, CIDR range or domain per line; `#` starts a comment. Reloaded when it changes. */
      file: string
      /** How often the file is checked for changes, in ms. Defaults to 5000. */
      reloadIntervalMs?: number
    }

/** Which checkpoints: `true` any, `false` none (plain requests), event names, or event and status. */
export type CheckpointTest =
  | boolean
  | string
  | readonly string[]
  | { event?: string | readonly string[]; status?: CheckpointStatus | readonly CheckpointStatus[] }

export interface HeaderTest {
  /** Header name, any case. */
  name: string
  /** `true`: the header is sent; `false`: it is absent or empty. */
  present?: boolean
  /** The header is sent and matches one of these. */
  matches?: Pattern | readonly Pattern[]
}

export interface SignalTest {
  /** `email`, `phone`, `deviceToken`, `metadata.<key>` or `transaction.<path>` (e.g. `transaction.amount`). */
  field: string
  /** `true`: the checkpoint carries the field; `false`: it does not. */
  present?: boolean
  /** The field (a string, or a number as text) matches one of these. */
  matches?: Pattern | readonly Pattern[]
  /** The field is a number greater than this. */
  above?: number
  /** The field is a number less than this. */
  below?: number
}

/** What a velocity condition counts by. A function returning `null` skips counting (the condition is false). */
export type VelocityKey = 'ip' | 'email' | ((input: DecisionInput) => string | null | undefined)

export interface VelocityTest {
  key: VelocityKey
  /** The condition matches once the count in the window goes above this. */
  limit: number
  /** Length of the counting window, in ms. */
  windowMs: number
}

/**
 * A test of the request. Every key set must hold (they are ANDed, cheap tests first and
 * velocity last); `all`, `any` and `not` combine nested conditions.
 */
export interface Condition {
  all?: readonly Condition[]
  any?: readonly Condition[]
  not?: Condition
  /** The client IP is in one of these ranges (IPv4-mapped IPv6 counts as IPv4). */
  ip?: ListRef
  /** The user agent matches one of these. */
  userAgent?: Pattern | readonly Pattern[]
  /**
   * `'missing'`: the user agent claims a desktop or mobile browser but Accept or
   * Accept-Language is absent. `'inconsistent'`: `sec-ch-ua` disagrees with the user agent.
   */
  browserHeaders?: 'missing' | 'inconsistent'
  header?: HeaderTest
  /** One of these methods (any case). */
  method?: string | readonly string[]
  path?: PathPattern | readonly PathPattern[]
  /** `true`: a page load: GET or HEAD whose Accept includes `text/html`, is `*\/*`, or is absent. */
  navigation?: boolean
  checkpoint?: CheckpointTest
  /** The checkpoint's email is at one of these domains, or a subdomain of one. */
  emailDomain?: ListRef
  signal?: SignalTest
  /** More than `limit` requests reached this test with the same key in `windowMs`, per rule and checkpoint event. */
  velocity?: VelocityTest
}

export interface Rule {
  /** Unique; becomes the decision's `reason`. Letters, digits, `_`, `.`, `-`. */
  name: string
  verdict: Verdict
  /** Higher runs first; ties run in declaration order. Defaults to 0. */
  priority?: number
  /** When the rule applies. Defaults to always. */
  when?: Condition
  /** For people reading the rules; ignored by the engine. */
  description?: string
}
