import { invalidOption } from '../errors.js'
import type { Eventually } from '../same-tick.js'
import type { BackendVerdict, Verdict } from '../types.js'
import { type CompileEnv, compileCondition, type Matcher } from './conditions.js'
import type { RequestFacts } from './facts.js'
import { ruleError, ruleSchema } from './schema.js'
import type { Condition, Rule } from './types.js'

export interface CompiledRule {
  readonly name: string
  readonly verdict: Verdict
  readonly priority: number
  readonly match: Matcher
}

function compiled(name: string, verdict: Verdict, priority: number, match: Matcher): CompiledRule {
  return { name, verdict, priority, match }
}

/** A rule built in code (the simple options), trusted to be well-formed. */
export function compileBuiltRule(
  name: string,
  verdict: Verdict,
  when: Condition,
  path: string,
  env: Omit<CompileEnv, 'rule'>,
): CompiledRule {
  return compiled(name, verdict, Number.POSITIVE_INFINITY, compileCondition(when, path, { ...env, rule: name }))
}

/**
 * Validates and compiles user rules (TypeScript objects or parsed JSON alike), then orders
 * them: higher `priority` first, ties in declaration order. Throws `SP_INVALID_OPTION`
 * naming the first bad rule's path, e.g. `rules[3].when.ip`.
 */
export function compileRules(
  rules: readonly unknown[],
  option: string,
  env: Omit<CompileEnv, 'rule'>,
  taken: ReadonlyMap<string, string>,
): CompiledRule[] {
  const names = new Map(taken)
  const list = rules.map((raw, index) => {
    const base = `${option}[${index}]`
    const result = ruleSchema.safeParse(raw)
    if (!result.success) throw ruleError(base, result.error)
    const rule = raw as Rule
    const clash = names.get(rule.name)
    if (clash !== undefined) throw invalidOption(`${base}.name`, `a unique rule name (\`${rule.name}\` is already used by ${clash})`)
    names.set(rule.name, base)
    const match = compileCondition(rule.when, `${base}.when`, { ...env, rule: rule.name })
    return { rule: compiled(rule.name, rule.verdict, rule.priority ?? 0, match), index }
  })
  list.sort((a, b) => b.rule.priority - a.rule.priority || a.index - b.index)
  return list.map(({ rule }) => rule)
}

/**
 * The first matching rule decides. A request holding a valid clearance skips every
 * challenge rule (it has solved one already); allow, deny and review rules still apply.
 * A skipped challenge rule is still evaluated, so its velocity counters keep counting.
 *
 * The answer comes back without a promise unless a rule has to wait (a velocity counter in
 * the store): most requests are decided in the same tick.
 */
export function evaluate(rules: readonly CompiledRule[], facts: RequestFacts): Eventually<BackendVerdict> {
  return evaluateFrom(rules, facts, 0)
}

function evaluateFrom(rules: readonly CompiledRule[], facts: RequestFacts, from: number): Eventually<BackendVerdict> {
  for (let index = from; index < rules.length; index++) {
    const rule = rules[index] as CompiledRule
    const matched = rule.match(facts)
    if (typeof matched !== 'boolean') {
      return matched.then((result) => (decides(rule, result, facts) ? verdictOf(rule) : evaluateFrom(rules, facts, index + 1)))
    }
    if (decides(rule, matched, facts)) return verdictOf(rule)
  }
  // The reply is the gate's to keep: a fresh object each time, never a shared one.
  return facts.clearanceChecked && facts.cleared
    ? { verdict: 'allow', reason: null, signals: { clearance: true } }
    : { verdict: 'allow', reason: null }
}

/** The clearance is checked only once a challenge rule matches: most requests never pay for it. */
function decides(rule: CompiledRule, matched: boolean, facts: RequestFacts): boolean {
  return matched && !(rule.verdict === 'challenge' && facts.cleared)
}

function verdictOf(rule: CompiledRule): BackendVerdict {
  return { verdict: rule.verdict, reason: rule.name }
}
