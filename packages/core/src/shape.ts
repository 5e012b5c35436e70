/**
 * A small structural checker for options and backend replies, in zod's vocabulary:
 * `shape.strictObject({ url: shape.url({ protocol: /^https?$/ }).optional() }).safeParse(value)`.
 *
 * - Objects read their declared fields from the value's own properties only: an inherited
 *   `toString` or a polluted prototype never counts as a field.
 * - `strictObject` and `looseObject` return the value itself, unless a field's check changed
 *   it (`.transform`, `.catch`): then a fresh plain object with the value's own keys, never a
 *   `__proto__` key. `object` always returns a fresh plain object of the declared fields, so
 *   unknown keys are stripped. Arrays and records return the value itself unless an item changed.
 * - Checking stops at the first problem: `error.issues` holds that one issue, with the path
 *   to it, and a message that says what was expected there (never the value).
 * - A union reports the one branch that had the right type but failed a check (a too-long
 *   string, a bad field in an object); when none or several did, the union itself.
 */

export type IssueCode =
  | 'invalid_type'
  | 'invalid_value'
  | 'too_small'
  | 'too_big'
  | 'invalid_format'
  | 'invalid_key'
  | 'unrecognized_keys'
  | 'invalid_union'
  | 'custom'

export interface Issue {
  code: IssueCode
  /** Keys and array indexes from the checked value to the problem. */
  path: PropertyKey[]
  /** What was expected there, worded to follow "expected": `an integer`, or the nearest `.describe()` text. */
  message: string
  /** `unrecognized_keys`: the unknown keys, in order. */
  keys?: string[]
  /** `unrecognized_keys`: the keys the object accepts. */
  known?: readonly string[]
}

/** `challenge.url`, `rules[2].when.ip`: a path as Sallyport names options. */
export function formatPath(path: readonly PropertyKey[], base = ''): string {
  let out = base
  for (const segment of path) out += typeof segment === 'number' ? `[${segment}]` : out === '' ? String(segment) : `.${String(segment)}`
  return out
}

export class ShapeError extends Error {
  override readonly name = 'ShapeError'
  constructor(readonly issues: Issue[]) {
    const [issue] = issues
    super(
      issue === undefined
        ? 'Invalid value.'
        : `Invalid value${issue.path.length > 0 ? ` at \`${formatPath(issue.path)}\`` : ''}: expected ${issue.message}.`,
    )
  }
}

export type SafeParseResult<T> = { success: true; data: T } | { success: false; error: ShapeError }

/** The type a shape's `parse` returns, as `z.infer` does. */
export type Infer<S extends Shape> = S['_output']

interface Failure extends Issue {
  /** A type mismatch (not a failed check): a union does not report this branch. */
  fatal: boolean
  /** The message is a description or an explicit one: no outer `.describe()` replaces it. */
  fixed: boolean
}

const FAIL: unique symbol = Symbol('fail')
/**
 * The last problem found. Checks are synchronous: whoever receives FAIL reads this at once,
 * before any other check runs. One slot instead of a context object per call.
 */
let failure: Failure = { code: 'custom', path: [], message: '', fatal: true, fixed: false }

function fail(code: IssueCode, message: string, fatal: boolean, fixed = false): typeof FAIL {
  failure = { code, path: [], message, fatal, fixed }
  return FAIL
}

function at(key: PropertyKey): typeof FAIL {
  failure.path.unshift(key)
  return FAIL
}

const hasOwn = Object.hasOwn as (value: object, key: PropertyKey) => boolean

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A fresh plain object with the value's own enumerable keys, `__proto__` left out. */
function ownCopy(value: Record<string, unknown>): Record<string, unknown> {
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(value)) if (key !== '__proto__') copy[key] = value[key]
  return copy
}

type Refinement = string | { message?: string; error?: string }

export abstract class Shape<T = unknown, Opt extends boolean = boolean> {
  declare readonly _output: T
  /** `true` when the key may be absent from an object (`.optional()`, `.nullish()`). */
  declare readonly _optional: Opt
  /** @internal The checked value, or FAIL with the problem in `failure`. */
  abstract _run(value: unknown): unknown

  safeParse(value: unknown): SafeParseResult<T> {
    const out = this._run(value)
    if (out !== FAIL) return { success: true, data: out as T }
    const { code, path, message, keys, known } = failure
    const issue: Issue = { code, path, message }
    if (keys !== undefined) issue.keys = keys
    if (known !== undefined) issue.known = known
    return { success: false, error: new ShapeError([issue]) }
  }

  /** The checked value, or throws a {@link ShapeError}. */
  parse(value: unknown): T {
    const result = this.safeParse(value)
    if (result.success) return result.data
    throw result.error
  }

  optional(): Shape<T | undefined, true> {
    return new Mod('optional', this)
  }
  nullable(): Shape<T | null, Opt> {
    return new Mod('nullable', this)
  }
  nullish(): Shape<T | null | undefined, true> {
    return new Mod('nullish', this)
  }
  /** Passes when `check` returns truthy for the checked value; else fails with `message` (default `a valid value`). */
  refine(check: (value: T) => unknown, message?: Refinement): Shape<T, Opt> {
    const text = typeof message === 'string' ? message : (message?.error ?? message?.message)
    return new Mod('refine', this, check, text)
  }
  /** Maps the checked value; `map` runs only when the value passed, and what it throws is thrown. */
  transform<U>(map: (value: T) => U): Shape<U, Opt> {
    return new Mod('transform', this, map)
  }
  /** `value` instead of failing. */
  catch<U extends T | undefined>(value: U): Shape<T | U, Opt> {
    return new Mod('catch', this, value)
  }
  /** What the value should be, worded to follow "expected": replaces the messages of the problems found inside. */
  describe(text: string): Shape<T, Opt> {
    return new Mod('describe', this, undefined, text)
  }
}

export type AnyShape = Shape<unknown, boolean>

class Mod<T, Opt extends boolean> extends Shape<T, Opt> {
  constructor(
    readonly kind: 'optional' | 'nullable' | 'nullish' | 'refine' | 'transform' | 'catch' | 'describe',
    readonly inner: AnyShape,
    readonly arg?: unknown,
    readonly text?: string,
  ) {
    super()
  }
  _run(value: unknown): unknown {
    const { kind } = this
    if (kind === 'optional' && value === undefined) return value
    if (kind === 'nullable' && value === null) return value
    if (kind === 'nullish' && (value === undefined || value === null)) return value
    const out = this.inner._run(value)
    if (out === FAIL) {
      if (kind === 'catch') return this.arg
      if (kind === 'describe' && !failure.fixed) {
        failure.message = this.text as string
        failure.fixed = true
      }
      return FAIL
    }
    if (kind === 'transform') return (this.arg as (value: unknown) => unknown)(out)
    if (kind === 'refine' && !(this.arg as (value: unknown) => unknown)(out)) {
      return fail('custom', this.text ?? 'a valid value', false, this.text !== undefined)
    }
    return out
  }
}

/**
 * A type test (the first link, `prev` undefined), then one check per link, in order:
 * `shape.string().min(1).regex(re)`. Tests are made once, with the shape.
 */
class Chain<T> extends Shape<T, false> {
  constructor(
    readonly prev: Chain<T> | undefined,
    readonly test: (value: never) => unknown,
    readonly expected: string,
    readonly code: IssueCode = 'invalid_type',
  ) {
    super()
  }
  _run(value: unknown): unknown {
    const out = this.prev === undefined ? value : this.prev._run(value)
    if (out === FAIL || (this.test as (value: unknown) => unknown)(out)) return out
    return fail(this.code, this.expected, this.prev === undefined || this.code === 'invalid_type')
  }
}

function matcher(pattern: RegExp): (text: string) => boolean {
  return (text) => {
    pattern.lastIndex = 0
    return pattern.test(text)
  }
}

export class StringShape extends Chain<string> {
  min(n: number): StringShape {
    return new StringShape(
      this,
      (v: string) => v.length >= n,
      n === 1 ? 'a non-empty string' : `a string of at least ${n} characters`,
      'too_small',
    )
  }
  max(n: number): StringShape {
    return new StringShape(this, (v: string) => v.length <= n, `a string of at most ${n} characters`, 'too_big')
  }
  regex(pattern: RegExp): StringShape {
    return new StringShape(this, matcher(pattern), `a string matching ${pattern}`, 'invalid_format')
  }
  startsWith(prefix: string): StringShape {
    return new StringShape(this, (v: string) => v.startsWith(prefix), `a string starting with ${JSON.stringify(prefix)}`, 'invalid_format')
  }
}

/** Numbers are finite (NaN and ±Infinity fail, as in zod 4); `.finite()` is kept for the vocabulary. */
export class NumberShape extends Chain<number> {
  int(): NumberShape {
    return new NumberShape(this, Number.isSafeInteger, 'an integer')
  }
  min(n: number): NumberShape {
    return new NumberShape(this, (v: number) => v >= n, `a number of at least ${n}`, 'too_small')
  }
  nonnegative(): NumberShape {
    return this.min(0)
  }
  gt(n: number): NumberShape {
    return new NumberShape(this, (v: number) => v > n, `a number greater than ${n}`, 'too_small')
  }
  max(n: number): NumberShape {
    return new NumberShape(this, (v: number) => v <= n, `a number of at most ${n}`, 'too_big')
  }
  finite(): NumberShape {
    return this
  }
}

export class ArrayShape<I extends AnyShape> extends Shape<Array<Infer<I>>, false> {
  constructor(
    readonly item: I,
    readonly minItems = 0,
  ) {
    super()
  }
  min(n: number): ArrayShape<I> {
    return new ArrayShape(this.item, n)
  }
  _run(value: unknown): unknown {
    if (!Array.isArray(value)) return fail('invalid_type', 'an array', true)
    if (value.length < this.minItems) return fail('too_small', `an array of at least ${this.minItems} item(s)`, false)
    let copy: unknown[] | undefined
    for (let index = 0; index < value.length; index++) {
      const raw: unknown = value[index]
      const out = this.item._run(raw)
      if (out === FAIL) return at(index)
      if (out !== raw) {
        copy ??= value.slice()
        copy[index] = out
      }
    }
    return copy ?? value
  }
}

type Shapes = Record<string, AnyShape>
type OptionalKeys<S extends Shapes> = { [K in keyof S]: S[K]['_optional'] extends true ? K : never }[keyof S]
type Pretty<T> = { [K in keyof T]: T[K] } & {}
export type ObjectOutput<S extends Shapes> = Pretty<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>

export class ObjectShape<S extends Shapes, T> extends Shape<T, false> {
  readonly #keys: readonly string[]
  constructor(
    readonly shape: S,
    readonly mode: 'strip' | 'strict' | 'loose',
  ) {
    super()
    this.#keys = Object.keys(shape)
  }
  _run(value: unknown): unknown {
    if (!isObject(value)) return fail('invalid_type', 'an object', true)
    let copy: Record<string, unknown> | undefined = this.mode === 'strip' ? {} : undefined
    for (const key of this.#keys) {
      const own = hasOwn(value, key)
      const raw = own ? value[key] : undefined
      const out = (this.shape[key] as AnyShape)._run(raw)
      if (out === FAIL) return at(key)
      if (copy !== undefined) {
        if (own || out !== undefined) copy[key] = out
      } else if (out !== raw) {
        copy = ownCopy(value)
        copy[key] = out
      }
    }
    if (this.mode === 'strict') {
      let unknown: string[] | undefined
      for (const key of Object.keys(value)) {
        if (hasOwn(this.shape, key)) continue
        unknown ??= []
        unknown.push(key)
      }
      if (unknown !== undefined) {
        fail('unrecognized_keys', `only the keys ${this.#keys.join(', ')}`, true)
        failure.keys = unknown
        failure.known = this.#keys
        return FAIL
      }
    }
    return copy ?? value
  }
}

class RecordShape<T> extends Shape<T, false> {
  constructor(
    readonly key: AnyShape,
    readonly value: AnyShape,
  ) {
    super()
  }
  _run(value: unknown): unknown {
    if (!isObject(value)) return fail('invalid_type', 'an object', true)
    let copy: Record<string, unknown> | undefined
    for (const key of Object.keys(value)) {
      if (this.key._run(key) === FAIL) {
        failure = { ...failure, code: 'invalid_key', path: [], message: `keys that are ${failure.message}`, fatal: true }
        return at(key)
      }
      const raw = value[key]
      const out = this.value._run(raw)
      if (out === FAIL) return at(key)
      if (out !== raw && key !== '__proto__') {
        copy ??= ownCopy(value)
        copy[key] = out
      }
    }
    return copy ?? value
  }
}

class UnionShape<T> extends Shape<T, false> {
  constructor(readonly options: readonly AnyShape[]) {
    super()
  }
  _run(value: unknown): unknown {
    let failures: Failure[] | undefined
    let candidate: Failure | undefined
    let candidates = 0
    for (const option of this.options) {
      const out = option._run(value)
      if (out !== FAIL) return out
      failures ??= []
      failures.push(failure)
      if (!failure.fatal) {
        candidate = failure
        candidates++
      }
    }
    if (candidate !== undefined && candidates === 1) {
      failure = candidate
      return FAIL
    }
    return fail('invalid_union', [...new Set(failures?.map((each) => each.message))].join(', or '), true)
  }
}

class LazyShape<T> extends Shape<T, false> {
  #shape: AnyShape | undefined
  constructor(readonly get: () => AnyShape) {
    super()
  }
  _run(value: unknown): unknown {
    this.#shape ??= this.get()
    return this.#shape._run(value)
  }
}

const typeOf = (type: string) => (value: unknown) => typeof value === type

function isUrl(value: string, protocol: RegExp | undefined): boolean {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  return protocol === undefined || matcher(protocol)(url.protocol.slice(0, -1))
}

export const shape = {
  string: (): StringShape => new StringShape(undefined, typeOf('string'), 'a string'),
  number: (): NumberShape => new NumberShape(undefined, Number.isFinite, 'a finite number'),
  boolean: (): Shape<boolean, false> => new Chain(undefined, typeOf('boolean'), 'a boolean'),
  unknown: (): Shape<unknown, false> => new Chain(undefined, () => true, 'anything'),
  /** An absolute URL whose scheme (without the colon) matches `protocol`, when given. */
  url: (options: { protocol?: RegExp } = {}): StringShape =>
    new StringShape(
      shape.string(),
      (value: string) => isUrl(value, options.protocol),
      `a URL${options.protocol === undefined ? '' : ` whose scheme matches ${options.protocol}`}`,
      'invalid_format',
    ),
  literal: <const V extends string | number | boolean | null | undefined>(literal: V): Shape<V, false> =>
    new Chain(
      undefined,
      (value: unknown) => value === literal,
      literal === undefined ? 'undefined' : JSON.stringify(literal),
      'invalid_value',
    ),
  enum: <const V extends readonly string[]>(values: V): Shape<V[number], false> =>
    new Chain(
      undefined,
      (value: string) => values.includes(value),
      `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`,
      'invalid_value',
    ),
  /** Whatever `check` accepts; `message` (default `a valid value`) says what that is. */
  custom: <T>(check: (value: unknown) => boolean, message = 'a valid value'): Shape<T, false> =>
    new Chain(undefined, check, message, 'custom'),
  instanceof: <C extends abstract new (...args: never) => unknown>(type: C): Shape<InstanceType<C>, false> =>
    new Chain(undefined, (value: unknown) => value instanceof type, `an instance of ${type.name || 'the class'}`),
  array: <I extends AnyShape>(item: I): ArrayShape<I> => new ArrayShape(item),
  /** Any keys (checked by `key`), each value checked by `value`. */
  record: <K extends AnyShape, V extends AnyShape>(key: K, value: V): Shape<Record<Infer<K> & PropertyKey, Infer<V>>, false> =>
    new RecordShape(key, value),
  /** As `record`, typed with every key optional: `shape.partialRecord(shape.enum(VERDICTS), …)`. */
  partialRecord: <K extends AnyShape, V extends AnyShape>(
    key: K,
    value: V,
  ): Shape<Partial<Record<Infer<K> & PropertyKey, Infer<V>>>, false> => new RecordShape(key, value),
  /** The declared fields, in a fresh object: unknown keys are dropped. */
  object: <S extends Shapes>(fields: S): ObjectShape<S, ObjectOutput<S>> => new ObjectShape(fields, 'strip'),
  /** The declared fields, and no other key. */
  strictObject: <S extends Shapes>(fields: S): ObjectShape<S, ObjectOutput<S>> => new ObjectShape(fields, 'strict'),
  /** The declared fields; other keys are kept as they are. */
  looseObject: <S extends Shapes>(fields: S): ObjectShape<S, ObjectOutput<S> & Record<string, unknown>> => new ObjectShape(fields, 'loose'),
  union: <const O extends readonly AnyShape[]>(options: O): Shape<Infer<O[number]>, false> => new UnionShape(options),
  /** A shape made on first use, for recursive shapes. */
  lazy: <T>(get: () => Shape<T>): Shape<T, false> => new LazyShape(get),
}
