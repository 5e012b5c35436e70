import { inspect } from 'node:util'
import { type Infer, type Issue, type Shape, ShapeError, shape } from '@sallyport/core'
import { describe, expect, expectTypeOf, it } from 'vitest'

/** The one issue a refused value gets. */
function issueOf(check: Shape, value: unknown): Issue {
  const result = check.safeParse(value)
  expect(result.success, `expected ${inspect(value)} to be refused`).toBe(false)
  if (result.success) throw new Error('unreachable')
  expect(result.error.issues).toHaveLength(1)
  return result.error.issues[0] as Issue
}

function passes<T>(check: Shape<T>, value: unknown): T {
  const result = check.safeParse(value)
  if (!result.success) throw new Error(`expected ${inspect(value)} to pass: ${result.error.message}`)
  return result.data
}

describe('string', () => {
  it('takes strings only', () => {
    expect(passes(shape.string(), '')).toBe('')
    for (const value of [1, null, undefined, {}, ['a'], new String('a')]) {
      expect(issueOf(shape.string(), value)).toEqual({ code: 'invalid_type', path: [], message: 'a string' })
    }
  })

  it('checks min, max, regex and startsWith in order', () => {
    const name = shape
      .string()
      .min(2)
      .max(4)
      .regex(/^[a-z]+$/)
    expect(passes(name, 'abc')).toBe('abc')
    expect(issueOf(name, 'a')).toMatchObject({ code: 'too_small', message: 'a string of at least 2 characters' })
    expect(issueOf(name, 'abcde')).toMatchObject({ code: 'too_big', message: 'a string of at most 4 characters' })
    expect(issueOf(name, 'AB')).toMatchObject({ code: 'invalid_format', message: 'a string matching /^[a-z]+$/' })
    expect(issueOf(shape.string().min(1), '')).toMatchObject({ code: 'too_small', message: 'a non-empty string' })
    expect(issueOf(shape.string().startsWith('/'), 'x')).toMatchObject({ code: 'invalid_format', message: 'a string starting with "/"' })
  })

  it('gives the same answer every time with a global or sticky regex', () => {
    const check = shape.string().regex(/a/g)
    for (let index = 0; index < 4; index++) expect(check.safeParse('a').success).toBe(true)
    const sticky = shape.string().regex(/b/y)
    for (let index = 0; index < 4; index++) expect(sticky.safeParse('b').success).toBe(true)
  })

  it('url: an absolute URL, with the scheme checked when asked', () => {
    const any = shape.url()
    const web = shape.url({ protocol: /^https?$/ })
    expect(passes(web, 'https://api.example/v1')).toBe('https://api.example/v1')
    expect(passes(any, 'ftp://files.example/')).toBe('ftp://files.example/')
    expect(issueOf(web, 'ftp://files.example/')).toMatchObject({ code: 'invalid_format', message: 'a URL whose scheme matches /^https?$/' })
    for (const value of ['api.example', '/relative', 'javascript:alert(1)', 'https://']) expect(web.safeParse(value).success).toBe(false)
    expect(issueOf(any, 'not a url')).toMatchObject({ code: 'invalid_format', message: 'a URL' })
    expect(issueOf(web, 42)).toMatchObject({ code: 'invalid_type' })
  })
})

describe('number', () => {
  it('takes finite numbers only', () => {
    expect(passes(shape.number(), -1.5)).toBe(-1.5)
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '1', 1n, null]) {
      expect(issueOf(shape.number(), value)).toMatchObject({ code: 'invalid_type', message: 'a finite number' })
    }
    expect(shape.number().finite().safeParse(Number.POSITIVE_INFINITY).success).toBe(false)
  })

  it('int, min, max, gt and nonnegative', () => {
    const ms = shape.number().int().min(1).max(60_000)
    expect(passes(ms, 1)).toBe(1)
    expect(issueOf(ms, 1.5)).toMatchObject({ code: 'invalid_type', message: 'an integer' })
    expect(issueOf(ms, 2 ** 53)).toMatchObject({ code: 'invalid_type', message: 'an integer' })
    expect(issueOf(ms, 0)).toMatchObject({ code: 'too_small', message: 'a number of at least 1' })
    expect(issueOf(ms, 60_001)).toMatchObject({ code: 'too_big', message: 'a number of at most 60000' })
    expect(issueOf(shape.number().gt(0), 0)).toMatchObject({ code: 'too_small', message: 'a number greater than 0' })
    expect(issueOf(shape.number().nonnegative(), -1)).toMatchObject({ code: 'too_small' })
    expect(passes(shape.number().nonnegative(), 0)).toBe(0)
  })
})

describe('boolean, literal, enum, unknown, custom, instanceof', () => {
  it('boolean', () => {
    expect(passes(shape.boolean(), false)).toBe(false)
    expect(issueOf(shape.boolean(), 'true')).toMatchObject({ code: 'invalid_type', message: 'a boolean' })
  })

  it('literal', () => {
    expect(passes(shape.literal(false), false)).toBe(false)
    expect(issueOf(shape.literal(false), 0)).toEqual({ code: 'invalid_value', path: [], message: 'false' })
    expect(issueOf(shape.literal('SHA-256'), 'SHA-1')).toMatchObject({ message: '"SHA-256"' })
    expect(passes(shape.literal(1), 1)).toBe(1)
  })

  it('enum', () => {
    const verdict = shape.enum(['allow', 'deny'] as const)
    expect(passes(verdict, 'deny')).toBe('deny')
    expect(issueOf(verdict, 'block')).toEqual({ code: 'invalid_value', path: [], message: 'one of "allow", "deny"' })
    expect(verdict.safeParse({ toString: () => 'allow' }).success).toBe(false)
  })

  it('unknown takes anything, undefined included', () => {
    for (const value of [undefined, null, 0, {}, () => {}]) expect(passes(shape.unknown(), value)).toBe(value)
  })

  it('custom, with its own wording or a generic one', () => {
    const fn = shape.custom<() => void>((value) => typeof value === 'function', 'a function')
    const handler = () => {}
    expect(passes(fn, handler)).toBe(handler)
    expect(issueOf(fn, 'x')).toEqual({ code: 'custom', path: [], message: 'a function' })
    expect(
      issueOf(
        shape.custom(() => false),
        1,
      ),
    ).toMatchObject({ code: 'custom', message: 'a valid value' })
  })

  it('instanceof', () => {
    expect(passes(shape.instanceof(RegExp), /x/)).toEqual(/x/)
    expect(issueOf(shape.instanceof(RegExp), '/x/')).toMatchObject({ code: 'invalid_type', message: 'an instance of RegExp' })
  })
})

describe('array', () => {
  it('checks each item, naming its index, and a minimum length', () => {
    const hosts = shape.array(shape.string()).min(1)
    expect(issueOf(hosts, 'a')).toMatchObject({ code: 'invalid_type', message: 'an array' })
    expect(issueOf(hosts, [])).toMatchObject({ code: 'too_small', message: 'an array of at least 1 item(s)' })
    expect(issueOf(hosts, ['a', 'b', 3])).toMatchObject({ code: 'invalid_type', path: [2] })
  })

  it('returns the array itself unless an item changed, and never changes the input', () => {
    const input = ['a', 'b']
    expect(passes(shape.array(shape.string()), input)).toBe(input)
    const upper = shape.array(shape.string().transform((value) => value.toUpperCase()))
    const output = passes(upper, input)
    expect(output).toEqual(['A', 'B'])
    expect(output).not.toBe(input)
    expect(input).toEqual(['a', 'b'])
  })
})

describe('record and partialRecord', () => {
  it('checks every own key and value, naming the key', () => {
    const warnings = shape.record(shape.string().startsWith('SP_WARN_'), shape.boolean())
    const input = { SP_WARN_A: true }
    expect(passes(warnings, input)).toBe(input)
    expect(issueOf(warnings, { SP_WARN_A: 'no' })).toMatchObject({ code: 'invalid_type', path: ['SP_WARN_A'] })
    expect(issueOf(warnings, { XFF: true })).toEqual({
      code: 'invalid_key',
      path: ['XFF'],
      message: 'keys that are a string starting with "SP_WARN_"',
    })
    expect(issueOf(warnings, ['SP_WARN_A'])).toMatchObject({ code: 'invalid_type', message: 'an object' })
  })

  it('partialRecord takes any subset of its keys', () => {
    const onError = shape.partialRecord(shape.enum(['timeout', 'network'] as const), shape.enum(['allow', 'deny'] as const))
    expect(passes(onError, {})).toEqual({})
    expect(passes(onError, { timeout: 'deny' })).toEqual({ timeout: 'deny' })
    expect(issueOf(onError, { timeot: 'deny' })).toMatchObject({ code: 'invalid_key', path: ['timeot'] })
  })

  it('a changed value makes a fresh copy without a __proto__ key', () => {
    const input = JSON.parse('{"a":" x ","__proto__":{"polluted":true}}') as Record<string, unknown>
    const trimmed = shape.record(
      shape.string(),
      shape.unknown().transform((value) => (typeof value === 'string' ? value.trim() : value)),
    )
    const output = passes(trimmed, input)
    expect(Object.keys(output)).toEqual(['a'])
    expect(Object.getPrototypeOf(output)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})

describe('objects', () => {
  const fields = { name: shape.string(), size: shape.number().optional() }

  it('strictObject: declared fields, no other key, naming the unknown ones and the accepted ones', () => {
    const strict = shape.strictObject(fields)
    const input = { name: 'a' }
    expect(passes(strict, input)).toBe(input)
    expect(issueOf(strict, { name: 'a', sise: 1, colour: 2 })).toEqual({
      code: 'unrecognized_keys',
      path: [],
      message: 'only the keys name, size',
      keys: ['sise', 'colour'],
      known: ['name', 'size'],
    })
    // A bad declared field is reported before an unknown key.
    expect(issueOf(strict, { name: 1, sise: 1 })).toMatchObject({ code: 'invalid_type', path: ['name'] })
    expect(issueOf(strict, { name: 'a', size: 'big' })).toMatchObject({ path: ['size'] })
    for (const value of [null, [], 'x', undefined])
      expect(issueOf(strict, value)).toMatchObject({ code: 'invalid_type', message: 'an object' })
  })

  it('strictObject: a key set to undefined is still a key', () => {
    expect(issueOf(shape.strictObject(fields), { name: 'a', page: undefined })).toMatchObject({ keys: ['page'] })
  })

  it('looseObject: returns the value itself, unknown keys and all', () => {
    const input = { name: 'a', extra: { deep: true } }
    expect(passes(shape.looseObject(fields), input)).toBe(input)
  })

  it('object: a fresh object with the declared fields only', () => {
    const input = { name: 'a', extra: 1 }
    const output = passes(shape.object(fields), input)
    expect(output).toEqual({ name: 'a' })
    expect(output).not.toBe(input)
    expect('size' in output).toBe(false)
  })

  it('reads own properties only: an inherited or polluted field never counts', () => {
    const decision = shape.looseObject({ decision: shape.enum(['allow', 'deny'] as const) })
    expect(issueOf(decision, Object.create({ decision: 'allow' }))).toMatchObject({ code: 'invalid_value', path: ['decision'] })
    const polluted = Object.prototype as unknown as Record<string, unknown>
    polluted.decision = 'allow'
    try {
      expect(decision.safeParse({}).success).toBe(false)
      expect(shape.strictObject({ decision: shape.string().optional() }).safeParse({}).success).toBe(true)
    } finally {
      delete polluted.decision
    }
    // `toString` is on every object's prototype: a declared `toString` field is still missing.
    expect(issueOf(shape.object({ toString: shape.string() }), {})).toMatchObject({ path: ['toString'] })
  })

  it('refuses __proto__ as an unknown key, and never copies it', () => {
    const hostile = JSON.parse('{"name":" a ","__proto__":{"polluted":true}}') as unknown
    expect(issueOf(shape.strictObject(fields), hostile)).toMatchObject({ code: 'unrecognized_keys', keys: ['__proto__'] })
    const stripped = passes(shape.object(fields), hostile)
    expect(Object.getPrototypeOf(stripped)).toBe(Object.prototype)
    expect(Object.keys(stripped)).toEqual(['name'])
    // A loose object whose field changed is copied: still no __proto__ key, and no pollution.
    const trimmed = shape.looseObject({ name: shape.string().transform((value) => value.trim()) })
    const copy = passes(trimmed, hostile) as Record<string, unknown>
    expect(copy).not.toBe(hostile)
    expect(Object.keys(copy)).toEqual(['name'])
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('a changed field makes a fresh copy; the input is left as it was', () => {
    const input = { name: ' a ', other: 1 }
    const output = passes(shape.looseObject({ name: shape.string().transform((value) => value.trim()) }), input)
    expect(output).toEqual({ name: 'a', other: 1 })
    expect(input.name).toBe(' a ')
    // A field absent from the input but given by `.catch` appears in the copy.
    expect(passes(shape.strictObject({ n: shape.number().catch(0) }), {})).toEqual({ n: 0 })
  })

  it('names the path to a nested problem', () => {
    const nested = shape.strictObject({ challenge: shape.strictObject({ url: shape.url().optional() }).optional() })
    expect(issueOf(nested, { challenge: { url: 'x' } })).toMatchObject({ code: 'invalid_format', path: ['challenge', 'url'] })
    expect(issueOf(nested, { challenge: { page: 'x' } })).toMatchObject({ code: 'unrecognized_keys', path: ['challenge'], keys: ['page'] })
  })

  it('exposes its fields as `shape`', () => {
    expect(Object.keys(shape.strictObject(fields).shape)).toEqual(['name', 'size'])
  })
})

describe('union', () => {
  const ttl = shape.union([shape.number().int().min(0), shape.partialRecord(shape.enum(['allow'] as const), shape.number().min(0))])

  it('takes the first branch that passes', () => {
    expect(passes(ttl, 5)).toBe(5)
    expect(passes(ttl, { allow: 5 })).toEqual({ allow: 5 })
    const first = shape.union([shape.string().transform(() => 'first'), shape.string().transform(() => 'second')])
    expect(passes(first, 'x')).toBe('first')
  })

  it('reports the one branch of the right type that failed a check, with its path', () => {
    expect(issueOf(ttl, -1)).toMatchObject({ code: 'too_small', path: [] })
    expect(issueOf(ttl, { allow: -1 })).toMatchObject({ code: 'too_small', path: ['allow'] })
    const patterns = shape.union([
      shape.string().regex(/\S/),
      shape.strictObject({ regex: shape.string(), flags: shape.string().regex(/^[gimsuy]*$/) }),
    ])
    expect(issueOf(patterns, { regex: 'x', flags: 'q' })).toMatchObject({ path: ['flags'] })
  })

  it('reports itself when no branch, or several, had the right type', () => {
    expect(issueOf(ttl, 'soon')).toEqual({ code: 'invalid_union', path: [], message: 'a finite number, or an object' })
    const either = shape.union([shape.string().min(3), shape.string().startsWith('/')])
    expect(issueOf(either, 'x')).toMatchObject({ code: 'invalid_union' })
  })
})

describe('lazy', () => {
  it('checks recursive shapes', () => {
    const condition: Shape = shape.lazy(() => shape.strictObject({ ip: shape.string().optional(), not: condition.optional() }))
    expect(passes(condition, { not: { not: { ip: 'a' } } })).toEqual({ not: { not: { ip: 'a' } } })
    expect(issueOf(condition, { not: { not: { ip: 1 } } })).toMatchObject({ path: ['not', 'not', 'ip'] })
  })
})

describe('modifiers', () => {
  it('optional, nullable, nullish', () => {
    expect(passes(shape.string().optional(), undefined)).toBeUndefined()
    expect(shape.string().optional().safeParse(null).success).toBe(false)
    expect(passes(shape.string().nullable(), null)).toBeNull()
    expect(shape.string().nullable().safeParse(undefined).success).toBe(false)
    expect(passes(shape.string().nullish(), null)).toBeNull()
    expect(passes(shape.string().nullish(), undefined)).toBeUndefined()
  })

  it('refine, with a message as a string, { message } or { error }, or a generic one', () => {
    const even = shape.number().refine((value) => value % 2 === 0, 'an even number')
    expect(passes(even, 2)).toBe(2)
    expect(issueOf(even, 3)).toEqual({ code: 'custom', path: [], message: 'an even number' })
    expect(issueOf(even, 'x')).toMatchObject({ code: 'invalid_type' })
    expect(
      issueOf(
        shape.number().refine(() => false, { message: 'm' }),
        1,
      ),
    ).toMatchObject({ message: 'm' })
    expect(
      issueOf(
        shape.number().refine(() => false, { error: 'e' }),
        1,
      ),
    ).toMatchObject({ message: 'e' })
    expect(
      issueOf(
        shape.number().refine(() => false),
        1,
      ),
    ).toMatchObject({ message: 'a valid value' })
  })

  it('transform runs on a value that passed, and its result is the output', () => {
    let calls = 0
    const length = shape.string().transform((value) => {
      calls++
      return value.length
    })
    expect(passes(length, 'abc')).toBe(3)
    expect(length.safeParse(3).success).toBe(false)
    expect(calls).toBe(1)
  })

  it('catch gives its value instead of failing', () => {
    const lenient = shape.string().max(3).optional().catch(undefined)
    expect(passes(lenient, 'ab')).toBe('ab')
    expect(passes(lenient, 'abcd')).toBeUndefined()
    expect(passes(lenient, 42)).toBeUndefined()
    const reply = shape.looseObject({ verdict: shape.enum(['allow', 'deny'] as const), score: shape.number().optional().catch(undefined) })
    expect(passes(reply, { verdict: 'deny', score: 'high' })).toEqual({ verdict: 'deny', score: undefined })
    expect(reply.safeParse({ score: 1 }).success).toBe(false)
  })

  it('describe words the problems found inside it; the innermost description or explicit message wins', () => {
    const hosts = shape.array(shape.string().regex(/^[a-z.]+$/)).describe('an array of hosts')
    expect(issueOf(hosts, ['ok', 'NOT OK'])).toMatchObject({ path: [1], message: 'an array of hosts' })
    const options = shape
      .strictObject({
        url: shape.url().describe('an http(s) URL').optional(),
        key: shape
          .string()
          .refine((key) => !key.startsWith('pk_'), 'the secret key, not the publishable key')
          .describe('a key'),
        hook: shape.custom((value) => typeof value === 'function', 'a function').optional(),
      })
      .describe('{ url?, key, hook? }')
    expect(issueOf(options, { key: 'k', url: 'x' })).toMatchObject({ path: ['url'], message: 'an http(s) URL' })
    expect(issueOf(options, { key: 'pk_1' })).toMatchObject({ path: ['key'], message: 'the secret key, not the publishable key' })
    expect(issueOf(options, { key: 1 })).toMatchObject({ path: ['key'], message: 'a key' })
    expect(issueOf(options, { key: 'k', hook: 1 })).toMatchObject({ path: ['hook'], message: '{ url?, key, hook? }' })
  })
})

describe('parse, safeParse and errors', () => {
  it('parse returns the value or throws a ShapeError naming the path', () => {
    const check = shape.strictObject({ rules: shape.array(shape.strictObject({ name: shape.string() })) })
    expect(check.parse({ rules: [{ name: 'a' }] })).toEqual({ rules: [{ name: 'a' }] })
    let caught: unknown
    try {
      check.parse({ rules: [{ name: 'a' }, { name: 2 }] })
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(ShapeError)
    expect((caught as ShapeError).message).toBe('Invalid value at `rules[1].name`: expected a string.')
    expect(() => shape.string().parse(1)).toThrow('Invalid value: expected a string.')
  })

  it('never holds the value: not in the message, the issues or anything inspect shows', () => {
    const secret = 'tn_live_SECRET\r\nvalue'
    const check = shape.strictObject({ secretKey: shape.string().regex(/^[\x21-\x7e]+$/) })
    const result = check.safeParse({ secretKey: secret })
    expect(result.success).toBe(false)
    if (result.success) return
    expect(inspect(result.error, { depth: 10 })).not.toContain('SECRET')
    expect(JSON.stringify(result.error.issues)).not.toContain('SECRET')
  })

  it('a check that runs another check inside keeps its own outcome', () => {
    const inner = shape.number()
    const outer = shape.string().refine((value) => inner.safeParse(value).success || value === 'ok', 'a number, or "ok"')
    expect(passes(outer, 'ok')).toBe('ok')
    expect(issueOf(outer, 'no')).toEqual({ code: 'custom', path: [], message: 'a number, or "ok"' })
  })

  it('is fast enough to check every backend reply', () => {
    const reply = shape.looseObject({
      verdict: shape.enum(['allow', 'challenge', 'deny'] as const),
      request_id: shape
        .string()
        .regex(/^[\x21-\x7e]{1,128}$/)
        .optional()
        .catch(undefined),
      signals_complete: shape.boolean().optional().catch(undefined),
      ip: shape.record(shape.string(), shape.unknown()).nullable().optional().catch(undefined),
    })
    const body = { verdict: 'deny', request_id: 'req_1', signals_complete: true, ip: { country: 'DE' }, extra: [1, 2, 3] }
    const started = performance.now()
    for (let index = 0; index < 100_000; index++) reply.safeParse(body)
    // Well under a microsecond each on a laptop; the bound only catches an accidental slowdown.
    expect(performance.now() - started).toBeLessThan(2000)
  })
})

describe('types', () => {
  it('infers what parse returns, optional fields as optional properties', () => {
    const options = shape.strictObject({
      secretKey: shape.string().min(1),
      baseUrl: shape.url({ protocol: /^https?$/ }).optional(),
      mode: shape.enum(['enforce', 'monitor'] as const).nullish(),
      retries: shape.number().int().catch(1),
      flag: shape.union([shape.literal(false), shape.enum(['deny', 'review'] as const)]),
      tags: shape.array(shape.string()),
      weights: shape.partialRecord(shape.enum(['allow', 'deny'] as const), shape.number()),
      length: shape.string().transform((value) => value.length),
    })
    expectTypeOf<Infer<typeof options>>().toEqualTypeOf<{
      secretKey: string
      baseUrl?: string | undefined
      mode?: 'enforce' | 'monitor' | null | undefined
      retries: number
      flag: false | 'deny' | 'review'
      tags: string[]
      weights: Partial<Record<'allow' | 'deny', number>>
      length: number
    }>()
    const loose = shape.looseObject({ decision: shape.enum(['allow'] as const) })
    expectTypeOf(loose.parse({ decision: 'allow' }).decision).toEqualTypeOf<'allow'>()
    expectTypeOf(loose.parse({ decision: 'allow' }).other).toEqualTypeOf<unknown>()
  })
})
