import { type DecisionBackend, SallyportError } from '@sallyport/core'
import { describe, expect, it } from 'vitest'
import { describeFailure, FAILURE_LOG_INTERVAL_MS, FailureLog } from '../src/failure-log.js'

const backend = (origin?: string): DecisionBackend => ({
  name: 'risk',
  ...(origin === undefined ? {} : { origin }),
  decide: async () => ({ verdict: 'allow' }),
})

/** A failed connect as undici reports it: Sallyport's error with the system error as its cause. */
function systemError(code: string, fields: Record<string, unknown>): SallyportError {
  const cause = Object.assign(new Error(`${code} from the system`), { code, ...fields })
  return SallyportError.backend('network', `The decision backend could not be reached (${code}).`, { cause })
}

function recording() {
  const lines: Array<{ level: string; object: Record<string, unknown>; message: string }> = []
  const record = (level: string) => (object: Record<string, unknown>, message?: string) =>
    lines.push({ level, object, message: message ?? '' })
  return { lines, logger: { warn: record('warn'), error: record('error'), debug: record('debug') } }
}

describe('FailureLog', () => {
  it('logs the first failure of a class at warn, then at most once a minute with the count in between', () => {
    const { lines, logger } = recording()
    let now = 0
    const log = new FailureLog(logger, true, () => now)
    const risk = backend('https://risk.example:8443')
    const refused = systemError('ECONNREFUSED', { address: '10.0.0.5', port: 8443 })
    for (let call = 0; call < 4; call++) log.report(risk, 'network', refused)
    now = FAILURE_LOG_INTERVAL_MS - 1
    log.report(risk, 'network', refused)
    now = FAILURE_LOG_INTERVAL_MS
    log.report(risk, 'network', refused)
    const warns = lines.filter((line) => line.level === 'warn')
    expect(warns.map((line) => line.object.suppressed)).toEqual([0, 4])
    expect(warns[1]?.message).toContain('4 more since the last line')
    // Debug still traces every single failure.
    expect(lines.filter((line) => line.level === 'debug')).toHaveLength(6)
    expect(warns[0]?.object).toMatchObject({ code: 'SP_BACKEND_FAILED', backend: 'risk', host: 'risk.example:8443', cause: 'ECONNREFUSED' })
  })

  it('counts each failure class and each backend on its own', () => {
    const { lines, logger } = recording()
    const log = new FailureLog(logger, true, () => 0)
    const one = backend('https://one.example')
    const two = backend('https://two.example')
    log.report(one, 'network', systemError('ECONNRESET', {}))
    log.report(one, 'server', SallyportError.backend('server', 'risk answered HTTP 503.', { status: 503 }))
    log.report(two, 'network', systemError('ECONNRESET', {}))
    log.report(one, 'network', systemError('ECONNRESET', {}))
    expect(lines.filter((line) => line.level === 'warn').map((line) => [line.object.host, line.object.failure])).toEqual([
      ['one.example', 'network'],
      ['one.example', 'server'],
      ['two.example', 'network'],
    ])
  })

  it('logs a refusal as SP_WARN_BACKEND_REFUSED, and not at warn when that warning is off', () => {
    const refusal = SallyportError.backend('client', 'risk refused the request with HTTP 403.', { status: 403 })
    const on = recording()
    new FailureLog(on.logger, true).report(backend('https://risk.example'), 'client', refusal)
    expect(on.lines[1]).toMatchObject({ level: 'warn', object: { code: 'SP_WARN_BACKEND_REFUSED', status: 403 } })
    expect(on.lines[1]?.message).toMatch(/risk at risk\.example refused .*\(HTTP 403\).*Check the key/)
    const off = recording()
    new FailureLog(off.logger, false).report(backend('https://risk.example'), 'client', refusal)
    expect(off.lines.map((line) => line.level)).toEqual(['debug'])
  })

  it('never lets a broken logger throw into the request', () => {
    const broken = {
      warn() {
        throw new Error('logger down')
      },
      error() {},
    }
    expect(() => new FailureLog(broken, true).report(backend(), 'network', systemError('ECONNREFUSED', {}))).not.toThrow()
  })
})

describe('describeFailure', () => {
  it.each<[string, SallyportError, string, RegExp]>([
    [
      'a name that does not resolve',
      systemError('ENOTFOUND', { hostname: 'risk.does-not-exist.invalid' }),
      'ENOTFOUND',
      /does not resolve/,
    ],
    ['a closed port', systemError('ECONNREFUSED', { address: '127.0.0.1', port: 9 }), 'ECONNREFUSED', /host and port/],
    ['an expired certificate', systemError('CERT_HAS_EXPIRED', {}), 'CERT_HAS_EXPIRED', /TLS handshake failed/],
    ['a self-signed certificate', systemError('DEPTH_ZERO_SELF_SIGNED_CERT', {}), 'DEPTH_ZERO_SELF_SIGNED_CERT', /TLS/],
    ['a certificate for another name', systemError('ERR_TLS_CERT_ALTNAME_INVALID', {}), 'ERR_TLS_CERT_ALTNAME_INVALID', /TLS/],
    ['a 401', SallyportError.backend('client', 'x', { status: 401 }), 'HTTP 401', /Check the key/],
    ['a 429 with the vendor code', SallyportError.backend('client', 'x', { status: 429, vendorCode: 'quota' }), 'HTTP 429 quota', /quota/],
  ])('names %s', (_label, error, cause, advice) => {
    const described = describeFailure(backend(), error.failure ?? 'network', error)
    expect(described.cause).toBe(cause)
    expect(described.advice).toMatch(advice)
  })

  it("takes the host from the backend's origin, else from the error", () => {
    const error = systemError('ENOTFOUND', { hostname: 'from-the-error.example' })
    expect(describeFailure(backend('https://user:secret@api.example/v1/key/abc'), 'network', error).host).toBe('api.example')
    expect(describeFailure(backend(), 'network', error).host).toBe('from-the-error.example')
    expect(describeFailure(backend(), 'network', systemError('ECONNREFUSED', { address: '::1', port: 81 })).host).toBe('[::1]:81')
    expect(describeFailure(backend(), 'network', new Error('no details')).host).toBeUndefined()
  })
})
