import type { SallyportError } from '../errors.js'
import { invalidOption } from '../errors.js'
import { type AnyShape, formatPath, type Shape, type ShapeError, shape } from '../shape.js'
import { CHECKPOINT_STATUSES, VERDICTS } from '../types.js'

/**
 * The rule format, as shapes: the same shape TypeScript users write and JSON files
 * hold. Checking is structural here; what needs parsing (CIDR ranges, regex sources, list
 * names) is checked when the rule compiles, with the same kind of error.
 */

/** Rule and list names: they appear in reasons, logs and store keys, so no `:` or `|`. */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/
const EVENT = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const SIGNAL_FIELD = /^(?:email|phone|deviceToken|(?:metadata|transaction)(?:\.[A-Za-z0-9_-]{1,64}){1,8})$/

const fn = shape.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', 'a function')
const regexObject = shape.strictObject({
  regex: shape.string().min(1).max(2000),
  flags: shape
    .string()
    .regex(/^[dgimsuvy]*$/)
    .optional(),
})
/** A blank substring would match almost every request: surely a mistake. */
const substring = shape.string().max(512).regex(/\S/)
const pattern = shape.union([substring, shape.instanceof(RegExp), regexObject])
const patterns = shape.union([pattern, shape.array(pattern).min(1)])
const listRef = shape.union([shape.array(shape.string().min(1).max(300)), shape.strictObject({ list: shape.string().regex(NAME) })])
const pathPattern = shape.union([
  shape.string().startsWith('/').max(2000),
  shape.instanceof(RegExp),
  shape.strictObject({ exact: shape.string().startsWith('/').max(2000) }),
  shape.strictObject({ prefix: shape.string().startsWith('/').max(2000) }),
  regexObject,
])
const event = shape.string().regex(EVENT)
const status = shape.enum(CHECKPOINT_STATUSES)
const oneOrMore = <T extends AnyShape>(item: T) => shape.union([item, shape.array(item).min(1)])

const leaves = {
  ip: listRef,
  userAgent: patterns,
  browserHeaders: shape.enum(['missing', 'inconsistent']),
  header: shape.strictObject({
    name: shape.string().regex(HEADER_NAME),
    present: shape.boolean().optional(),
    matches: patterns.optional(),
  }),
  method: oneOrMore(shape.string().regex(/^[A-Za-z]{1,20}$/)),
  path: oneOrMore(pathPattern),
  navigation: shape.boolean(),
  checkpoint: shape.union([
    shape.boolean(),
    oneOrMore(event),
    shape.strictObject({ event: oneOrMore(event).optional(), status: oneOrMore(status).optional() }),
  ]),
  emailDomain: listRef,
  signal: shape.strictObject({
    field: shape.string().regex(SIGNAL_FIELD),
    present: shape.boolean().optional(),
    matches: patterns.optional(),
    above: shape.number().finite().optional(),
    below: shape.number().finite().optional(),
  }),
  velocity: shape.strictObject({
    key: shape.union([shape.enum(['ip', 'email']), fn]),
    limit: shape.number().int().min(0).max(1_000_000_000),
    windowMs: shape
      .number()
      .int()
      .min(1)
      .max(31 * 24 * 3_600_000),
  }),
} as const

export type LeafKey = keyof typeof leaves
export const LEAF_KEYS = Object.keys(leaves) as LeafKey[]
export const CONDITION_KEYS: readonly string[] = ['all', 'any', 'not', ...LEAF_KEYS]

/** What each part of a rule accepts, for error messages. */
const ACCEPTED: Record<string, string> = {
  name: 'a unique name of letters, digits, "_", "." or "-" (at most 64, starting with a letter or digit)',
  verdict: "'allow', 'challenge', 'deny' or 'review'",
  priority: 'a finite number (higher runs first; defaults to 0)',
  description: 'a string',
  when: 'a condition object with at least one test',
  rule: 'a rule object { name, verdict, priority?, when?, description? }',
  condition: `a condition object with at least one of ${CONDITION_KEYS.join(', ')}`,
  all: 'a non-empty array of conditions',
  any: 'a non-empty array of conditions',
  not: 'a condition',
  ip: 'an array of IP addresses or CIDR ranges, or { list: "<a name in lists>" }',
  userAgent: 'a substring, a RegExp, { regex, flags? }, or a non-empty array of them',
  browserHeaders: "'missing' or 'inconsistent'",
  header: '{ name, present?: boolean, matches?: patterns }',
  method: 'an HTTP method or an array of them',
  path: 'a path starting with "/" (exact, or a prefix when it ends in "*"), { exact }, { prefix }, a RegExp, { regex, flags? }, or an array of them',
  navigation: 'a boolean',
  checkpoint: "a boolean, an event name, an array of event names, or { event?, status?: 'attempted' | 'succeeded' | 'failed' }",
  emailDomain: 'an array of domains, or { list: "<a name in lists>" }',
  signal:
    '{ field: "email" | "phone" | "deviceToken" | "metadata.<key>" | "transaction.<path>", present?, matches?, above?: number, below?: number }',
  velocity:
    "{ key: 'ip' | 'email' | (input) => string | null, limit: an integer of at least 0, windowMs: an integer from 1 to 2678400000 }",
}

export function accepted(part: string): string {
  return ACCEPTED[part] ?? 'a valid value'
}

export const conditionSchema: Shape = shape.lazy(() =>
  shape
    .strictObject({
      all: shape.array(conditionSchema).min(1).optional(),
      any: shape.array(conditionSchema).min(1).optional(),
      not: conditionSchema.optional(),
      ...Object.fromEntries(LEAF_KEYS.map((key) => [key, leaves[key].optional()])),
    })
    .refine((value) => Object.values(value).some((test) => test !== undefined), 'a condition with at least one test'),
)

export const ruleSchema = shape.strictObject({
  name: shape.string().regex(NAME),
  verdict: shape.enum(VERDICTS),
  priority: shape.number().finite().optional(),
  when: conditionSchema.optional(),
  description: shape.string().max(2000).optional(),
})

export const listSource = shape.union([
  shape.array(shape.string().max(300)),
  shape.strictObject({
    file: shape.string().min(1),
    reloadIntervalMs: shape.number().int().min(10).max(86_400_000).optional(),
  }),
])

/** `rules[3].when.all[0].ip[2]` from a base and path segments. */
export function optionPath(base: string, segments: readonly PropertyKey[]): string {
  return formatPath(segments, base)
}

/**
 * Which part of a rule a path points into: a rule field, or the innermost condition test.
 * Walks forward so a test's own fields (a header's `name`) are not mistaken for the rule's.
 */
function partAt(segments: readonly PropertyKey[]): string {
  const [field, ...rest] = segments
  if (field === undefined) return 'rule'
  if (field !== 'when') return typeof field === 'string' ? field : 'rule'
  let part = 'when'
  let index = 0
  while (index < rest.length) {
    const segment = rest[index]
    if (typeof segment !== 'string' || !CONDITION_KEYS.includes(segment)) return part
    part = segment
    if (segment === 'all' || segment === 'any') {
      if (typeof rest[index + 1] !== 'number') return part
      part = 'condition'
      index += 2
    } else if (segment === 'not') {
      part = 'condition'
      index++
    } else {
      return part
    }
  }
  return part
}

/** The first problem found in a rule, as a `SP_INVALID_OPTION` error naming where it is. */
export function ruleError(base: string, error: ShapeError): SallyportError {
  const issue = error.issues[0]
  if (issue === undefined) return invalidOption(base, accepted('rule'), error)
  const segments = issue.path
  const part = partAt(segments)
  const unknown = issue.code === 'unrecognized_keys' ? issue.keys?.[0] : undefined
  if (unknown !== undefined) {
    const where = segments.length === 0 ? 'rule' : part === 'when' ? 'condition' : part
    return invalidOption(optionPath(base, [...segments, unknown.slice(0, 64)]), accepted(where), error)
  }
  return invalidOption(optionPath(base, segments), accepted(part), error)
}
