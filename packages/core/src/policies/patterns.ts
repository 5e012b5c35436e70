import type { PathPattern, Pattern } from './types.js'

/** A compiled text test. */
export type TextTest = (text: string) => boolean
/** A compiled path test: the path without its query, and the same lowercased. */
export type PathTest = (path: string, lowered: string) => boolean

export function asList<T>(value: T | readonly T[]): readonly T[] {
  return Array.isArray(value) ? (value as readonly T[]) : [value as T]
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * A RegExp without `g` and `y`: those make `test` remember where it stopped, so the
 * same pattern would answer differently on the next request. Throws on a bad source.
 */
export function toRegExp(pattern: RegExp | { regex: string; flags?: string }): RegExp {
  if (pattern instanceof RegExp) return new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''))
  return new RegExp(pattern.regex, (pattern.flags ?? '').replace(/[gy]/g, ''))
}

function anyOf(tests: readonly RegExp[]): TextTest {
  const [first] = tests
  if (tests.length === 1 && first !== undefined) return (text) => first.test(text)
  return (text) => {
    for (const test of tests) if (test.test(text)) return true
    return false
  }
}

/** Every substring folds into one case-insensitive alternation: one scan of the text for them all. */
export function compilePatterns(patterns: Pattern | readonly Pattern[]): TextTest {
  const list = asList(patterns)
  const substrings = list.filter((pattern): pattern is string => typeof pattern === 'string')
  const regexes = list.filter((pattern): pattern is Exclude<Pattern, string> => typeof pattern !== 'string').map(toRegExp)
  if (substrings.length > 0) regexes.unshift(new RegExp(substrings.map(escapeRegExp).join('|'), 'i'))
  return anyOf(regexes)
}

function withoutTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
}

export function compilePaths(patterns: PathPattern | readonly PathPattern[]): PathTest {
  const exact = new Set<string>()
  const prefixes: string[] = []
  const regexes: RegExp[] = []
  for (const pattern of asList(patterns)) {
    if (typeof pattern === 'string') {
      if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1).toLowerCase())
      else exact.add(withoutTrailingSlash(pattern.toLowerCase()))
    } else if (pattern instanceof RegExp || 'regex' in pattern) {
      regexes.push(toRegExp(pattern))
    } else if ('exact' in pattern) {
      exact.add(withoutTrailingSlash(pattern.exact.toLowerCase()))
    } else {
      prefixes.push(pattern.prefix.toLowerCase())
    }
  }
  const matchesRegex = regexes.length === 0 ? () => false : anyOf(regexes)
  return (path, lowered) => {
    if (exact.size > 0 && exact.has(withoutTrailingSlash(lowered))) return true
    for (const prefix of prefixes) if (lowered.startsWith(prefix)) return true
    return matchesRegex(path)
  }
}
