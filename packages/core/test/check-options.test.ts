import { inspect } from 'node:util'
import { checkOptions, createGate, MemoryStore, type OptionCheck, SallyportError, type Shape, shape } from '@sallyport/core'
import { describe, expect, expectTypeOf, it } from 'vitest'

function refusal(schema: Shape, input: unknown, check?: OptionCheck, factory = 'acme'): SallyportError {
  try {
    checkOptions(factory, schema, input, check)
  } catch (error) {
    expect(error).toBeInstanceOf(SallyportError)
    expect((error as SallyportError).code).toBe('SP_INVALID_OPTION')
    return error as SallyportError
  }
  throw new Error('the options were accepted')
}

/** A vendor's options, as a backend package would write them. */
const vendorOptions = shape.strictObject({
  secretKey: shape
    .string()
    .regex(/^[\x21-\x7e]+$/)
    .refine((key) => !key.startsWith('pk_'), 'the secret key (sk_…), not the publishable key (pk_…)')
    .describe('the secret key as a string of visible characters'),
  baseUrl: shape
    .url({ protocol: /^https?$/ })
    .optional()
    .describe('an http(s) URL'),
  timeoutMs: shape.number().int().min(1).max(60_000).optional().describe('an integer number of milliseconds from 1 to 60000'),
  thresholds: shape
    .strictObject({
      challenge: shape.number().min(0).max(100).optional().describe('a score from 0 to 100'),
      deny: shape.number().optional(),
    })
    .refine((value) => (value.challenge ?? 75) < (value.deny ?? 90), '`challenge` below `deny`')
    .optional()
    .describe('{ challenge?, deny? } with scores from 0 to 100'),
  hosts: shape
    .array(shape.string().regex(/^[a-z.]+$/))
    .optional()
    .describe('an array of host names'),
})
const env = { secretKey: 'ACME_SECRET_KEY' }

describe('checkOptions', () => {
  it('returns the options, typed', () => {
    const options = checkOptions('acme', vendorOptions, { secretKey: 'sk_1', timeoutMs: 200 }, { env })
    expect(options).toEqual({ secretKey: 'sk_1', timeoutMs: 200 })
    expectTypeOf(options.timeoutMs).toEqualTypeOf<number | undefined>()
    expectTypeOf(options.secretKey).toEqualTypeOf<string>()
  })

  it('an invalid option: its name, the factory and what it accepts', () => {
    const error = refusal(vendorOptions, { secretKey: 'sk_1', baseUrl: 'ftp://x.example' })
    expect(error.message).toBe('Invalid option `baseUrl` for acme(): expected an http(s) URL.')
    expect(error.option).toBe('baseUrl')
  })

  it('a nested field by its path, with its own description or the nearest one above it', () => {
    const own = refusal(vendorOptions, { secretKey: 'sk_1', thresholds: { challenge: 101 } })
    expect(own.message).toBe('Invalid option `thresholds.challenge` for acme(): expected a score from 0 to 100.')
    expect(own.option).toBe('thresholds.challenge')
    const above = refusal(vendorOptions, { secretKey: 'sk_1', thresholds: { deny: 'high' } })
    expect(above.message).toBe('Invalid option `thresholds.deny` for acme(): expected { challenge?, deny? } with scores from 0 to 100.')
    const refined = refusal(vendorOptions, { secretKey: 'sk_1', thresholds: { challenge: 95 } })
    expect(refined.message).toBe('Invalid option `thresholds` for acme(): expected `challenge` below `deny`.')
  })

  it('an item of an array: named by the array, with what the array accepts', () => {
    const error = refusal(vendorOptions, { secretKey: 'sk_1', hosts: ['ok.example', 'NOT OK'] })
    expect(error.message).toBe('Invalid option `hosts` for acme(): expected an array of host names.')
    expect(error.option).toBe('hosts')
  })

  it('an unknown option, at the top or nested: the options that are accepted there', () => {
    const top = refusal(vendorOptions, { secretKey: 'sk_1', secret: 'x' })
    expect(top.message).toBe('Unknown option `secret` for acme(): accepted options are secretKey, baseUrl, timeoutMs, thresholds, hosts.')
    expect(top.option).toBe('secret')
    const nested = refusal(vendorOptions, { secretKey: 'sk_1', thresholds: { block: 80 } })
    expect(nested.message).toBe('Unknown option `thresholds.block` for acme(): accepted options are challenge, deny.')
    expect(nested.option).toBe('thresholds.block')
  })

  it('an unknown option is named at most 64 characters long', () => {
    const error = refusal(vendorOptions, { secretKey: 'sk_1', ['x'.repeat(500)]: 1 })
    expect(error.option).toBe('x'.repeat(64))
  })

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'sk_1'],
    ['an array', [{ secretKey: 'sk_1' }]],
  ])('options that are %s: the options as a whole', (_label, input) => {
    const error = refusal(vendorOptions, input, { expected: 'an object { secretKey, … }' })
    expect(error.message).toBe('Invalid options for acme(): expected an object { secretKey, … }.')
    expect(error.option).toBe('options')
    expect(refusal(vendorOptions, input).message).toBe('Invalid options for acme(): expected an object.')
  })

  it.each<[string, Record<string, unknown>, string]>([
    ['unset', {}, 'not set'],
    ['undefined', { secretKey: undefined }, 'not set'],
    ['null', { secretKey: null }, 'not set'],
    ['empty', { secretKey: '' }, 'empty'],
    ['empty, beside another problem', { secretKey: '', timeoutMs: 0, other: 1 }, 'empty'],
  ])('a key read from the environment that is %s names the variable', (_label, input, state) => {
    const error = refusal(vendorOptions, input, { env })
    expect(error.message).toBe(`Invalid option \`secretKey\` for acme(): it is ${state}; set ACME_SECRET_KEY or pass secretKey.`)
    expect(error.option).toBe('secretKey')
  })

  it('a key that is set but wrong is described, and never repeated', () => {
    const secret = 'pk_live_VERY_SECRET'
    const error = refusal(vendorOptions, { secretKey: secret }, { env })
    expect(error.message).toBe('Invalid option `secretKey` for acme(): expected the secret key (sk_…), not the publishable key (pk_…).')
    const malformed = refusal(vendorOptions, { secretKey: 'sk_live_VERY_SECRET\r\nx-injected: 1' }, { env })
    expect(malformed.message).toBe('Invalid option `secretKey` for acme(): expected the secret key as a string of visible characters.')
    for (const each of [error, malformed]) expect(inspect(each, { depth: 10 })).not.toContain('VERY_SECRET')
  })

  it('puts a prefix before the names of options given inside another call', () => {
    const spec = shape.strictObject({ event: shape.string().describe('an event name') })
    expect(refusal(spec, {}, { prefix: 'checkpoint' }, 'gate.checkpoint').message).toBe(
      'Invalid option `checkpoint.event` for gate.checkpoint(): expected an event name.',
    )
    expect(refusal(spec, { event: 'x', emial: 1 }, { prefix: 'checkpoint' }).option).toBe('checkpoint.emial')
    expect(refusal(spec, null, { prefix: 'checkpoint' }).option).toBe('checkpoint')
  })

  it('keeps the problem as the cause', () => {
    const error = refusal(vendorOptions, { secretKey: 'sk_1', timeoutMs: 0 })
    expect(error.cause).toMatchObject({ name: 'ShapeError', issues: [{ code: 'too_small', path: ['timeoutMs'] }] })
  })
})

describe('the core factories use it', () => {
  it('guard(): one format, naming the factory and the field', () => {
    expect(() => createGate({ challenge: { url: 'javascript:alert(1)' } })).toThrow(
      'Invalid option `challenge.url` for guard(): expected an http(s) URL (https when NODE_ENV=production).',
    )
    expect(() => createGate({ timeout: 300 } as never)).toThrow(/^Unknown option `timeout` for guard\(\): accepted options are backend, /)
    expect(() => createGate(null as never)).toThrow('Invalid options for guard(): expected an object.')
  })

  it('MemoryStore', () => {
    expect(() => new MemoryStore({ maxKeys: 0 })).toThrow('Invalid option `maxKeys` for new MemoryStore(): expected a positive integer.')
  })
})
