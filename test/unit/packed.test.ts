/**
 * The built packages (run `pnpm build` first), loaded the way users load them: by name, from a
 * CommonJS consumer and from an ES module consumer, resolved through each package's `exports`.
 * The sources are covered by the other suites; this one catches broken builds and export maps.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const consumerDir = fileURLToPath(new URL('..', import.meta.url))
const packagesDir = fileURLToPath(new URL('../../packages', import.meta.url))

/** Each package and the functions a user imports from it. */
const PACKAGES: Record<string, string[]> = {
  core: ['createGate', 'httpBackend', 'localPolicies', 'normalizeIp', 'compileTrust', 'resolveClientIp', 'SallyportError', 'MemoryStore'],
  express: ['guard', 'SallyportError'],
  koa: ['guard', 'SallyportError'],
  'trusted-accounts': ['trustedAccounts'],
  tracenow: ['tracenow'],
  ipqs: ['ipqs'],
  tracer: ['tracer'],
  redis: ['redisStore'],
  testing: ['fakeTrustedAccounts', 'fakeTraceNow', 'fakeIpqs', 'fakeTracer', 'startFakeServer'],
}

function runNode(args: string[], script: string): unknown {
  const output = execFileSync(process.execPath, [...args, '-e', script], {
    cwd: consumerDir,
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  return JSON.parse(output)
}

const commonjs = (script: string) => runNode([], script)
const esm = (script: string) => runNode(['--input-type=module'], script)

interface ExportTarget {
  types?: string
  default?: string
}

describe.each(Object.keys(PACKAGES))('@sallyport/%s, built', (name) => {
  const names = PACKAGES[name] ?? []
  const specifier = `@sallyport/${name}`

  it('has every file its exports map names (run `pnpm build` if not)', () => {
    const root = join(packagesDir, name)
    const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      exports: { '.': { import: ExportTarget; require: ExportTarget } }
    }
    const targets = [manifest.exports['.'].import, manifest.exports['.'].require].flatMap((target) => [target.types, target.default])
    expect(targets).not.toContain(undefined)
    for (const target of targets) expect(existsSync(join(root, target ?? '')), `${specifier}: ${target}`).toBe(true)
  })

  it('loads from a CommonJS consumer', () => {
    const types = commonjs(`
      const pkg = require(${JSON.stringify(specifier)})
      process.stdout.write(JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((key) => [key, typeof pkg[key]]))))
    `)
    expect(types).toEqual(Object.fromEntries(names.map((key) => [key, 'function'])))
  })

  it('loads from an ES module consumer', () => {
    const types = esm(`
      const pkg = await import(${JSON.stringify(specifier)})
      process.stdout.write(JSON.stringify(Object.fromEntries(${JSON.stringify(names)}.map((key) => [key, typeof pkg[key]]))))
    `)
    expect(types).toEqual(Object.fromEntries(names.map((key) => [key, 'function'])))
  })

  it('resolves to the CommonJS build for require and the ESM build for import', () => {
    const resolved = esm(`
      import { createRequire } from 'node:module'
      const require = createRequire(process.cwd() + '/')
      process.stdout.write(JSON.stringify({
        require: require.resolve(${JSON.stringify(specifier)}),
        import: import.meta.resolve(${JSON.stringify(specifier)}),
        manifest: require.resolve(${JSON.stringify(`${specifier}/package.json`)}),
      }))
    `) as { require: string; import: string; manifest: string }
    expect(resolved.require).toMatch(/dist[/\\]index\.cjs$/)
    expect(resolved.import).toMatch(/dist\/index\.mjs$/)
    expect(dirname(resolved.manifest)).toBe(dirname(dirname(resolved.require)))
  })
})

describe('built packages at work', () => {
  it('CommonJS: guard() validates options and returns middleware with .checkpoint', () => {
    const result = commonjs(`
      const { guard } = require('@sallyport/express')
      const koa = require('@sallyport/koa')
      const { normalizeIp } = require('@sallyport/core')
      let code = null
      try { guard({ timeoutMs: 0 }) } catch (error) { code = error.code }
      const express = guard()
      const koaGuard = koa.guard()
      process.stdout.write(JSON.stringify({
        code,
        express: [typeof express, typeof express.checkpoint],
        koa: [typeof koaGuard, typeof koaGuard.checkpoint],
        ip: normalizeIp('::ffff:1.2.3.4'),
      }))
    `)
    expect(result).toEqual({ code: 'SP_INVALID_OPTION', express: ['function', 'function'], koa: ['function', 'function'], ip: '1.2.3.4' })
  })

  const roundTrip = `
    const fake = await fakeTrustedAccounts()
    fake.reply({ decision: 'block', setCookies: ['trusted_id=tid_1; Path=/'] })
    const gate = createGate({ backend: trustedAccounts({ secretKey: fake.secretKey, publishableKey: 'pk', baseUrl: fake.url }) })
    const { decision } = await gate.decide({
      native: null, method: 'POST', url: '/login', headers: { host: 'site.example', accept: 'application/json' },
      remoteAddress: '203.0.113.9', encrypted: false, frameworkTrust: undefined, body: undefined,
      responded: () => false, readBody: async () => null, onClientGone: () => () => {},
    })
    await gate.close()
    await fake.close()
    process.stdout.write(JSON.stringify({ verdict: decision.verdict, source: decision.source, setCookies: decision.setCookies, ip: fake.checks()[0].ip }))
  `
  const expected = { verdict: 'deny', source: 'backend', setCookies: ['trusted_id=tid_1; Path=/'], ip: '203.0.113.9' }

  it('ESM: a gate with the Trusted Accounts backend decides against the fake', () => {
    const result = esm(`
      import { createGate } from '@sallyport/core'
      import { trustedAccounts } from '@sallyport/trusted-accounts'
      import { fakeTrustedAccounts } from '@sallyport/testing'
      ${roundTrip}
    `)
    expect(result).toEqual(expected)
  })

  it('instanceof SallyportError holds across the CommonJS and ESM builds, both ways', () => {
    // An app that imports the ESM build while a dependency requires the CommonJS one has two
    // copies of the class in one process: an error from either must match the other's class.
    const result = esm(`
      import { createRequire } from 'node:module'
      import * as esmCore from '@sallyport/core'
      const require = createRequire(process.cwd() + '/')
      const cjsCore = require('@sallyport/core')
      const { trustedAccounts } = require('@sallyport/trusted-accounts')
      let thrownByCjs
      try { trustedAccounts({}) } catch (error) { thrownByCjs = error }
      const fromCjs = new cjsCore.SallyportError('SP_BACKEND_NETWORK', 'from cjs')
      const fromEsm = new esmCore.SallyportError('SP_BACKEND_NETWORK', 'from esm')
      class Own extends esmCore.SallyportError {}
      process.stdout.write(JSON.stringify({
        twoClasses: cjsCore.SallyportError !== esmCore.SallyportError,
        cjsErrorIsEsm: fromCjs instanceof esmCore.SallyportError,
        esmErrorIsCjs: fromEsm instanceof cjsCore.SallyportError,
        cjsVendorErrorIsEsm: thrownByCjs instanceof esmCore.SallyportError,
        cjsFailure: fromCjs.failure,
        plainError: new Error('x') instanceof esmCore.SallyportError,
        lookalike: { code: 'SP_BACKEND_NETWORK', name: 'SallyportError' } instanceof esmCore.SallyportError,
        nothing: [null, undefined, 'SallyportError'].some((value) => value instanceof esmCore.SallyportError),
        subclassIsBase: new Own('SP_INVALID_OPTION', 'own') instanceof cjsCore.SallyportError,
        baseIsNotSubclass: fromEsm instanceof Own || fromCjs instanceof Own,
        subclassIsSubclass: new Own('SP_INVALID_OPTION', 'own') instanceof Own,
        stillAnError: fromCjs instanceof Error,
      }))
    `)
    expect(result).toEqual({
      twoClasses: true,
      cjsErrorIsEsm: true,
      esmErrorIsCjs: true,
      cjsVendorErrorIsEsm: true,
      cjsFailure: 'network',
      plainError: false,
      lookalike: false,
      nothing: false,
      subclassIsBase: true,
      baseIsNotSubclass: false,
      subclassIsSubclass: true,
      stillAnError: true,
    })
  })

  it('CommonJS: a gate with the Trusted Accounts backend decides against the fake', () => {
    const result = commonjs(`
      const { createGate } = require('@sallyport/core')
      const { trustedAccounts } = require('@sallyport/trusted-accounts')
      const { fakeTrustedAccounts } = require('@sallyport/testing')
      ;(async () => {
        ${roundTrip}
      })().catch((error) => { console.error(error); process.exit(1) })
    `)
    expect(result).toEqual(expected)
  })
})
