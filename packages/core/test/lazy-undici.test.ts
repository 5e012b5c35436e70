/**
 * undici is loaded only for a backend that calls through Sallyport's own keep-alive pools (in
 * the background once such a backend is built; its first call waits for it): a gate whose
 * backends make no HTTP call (the embedded default) never loads it, and neither does a
 * backend given a dispatcher of its own. Checked twice: on the sources, by watching every
 * import of `undici` in this file's module graph; and on the built package (run `pnpm build`
 * first), in fresh Node processes that load it as an ES module and as CommonJS.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createGate, type Gate, httpBackend, type Logger, type RequestView } from '@sallyport/core'
import type { Dispatcher } from 'undici'
import { afterAll, describe, expect, it, vi } from 'vitest'

const undici = vi.hoisted(() => ({ loads: 0 }))
vi.mock('undici', async (importOriginal) => {
  undici.loads++
  return importOriginal()
})

const quiet: Logger = { warn() {}, error() {} }
const gates: Gate<null>[] = []
const closers: Array<() => Promise<void>> = []
afterAll(async () => {
  await Promise.all([...gates.map((gate) => gate.close()), ...closers.map((close) => close())])
})

function view(): RequestView<null> {
  return {
    native: null,
    method: 'GET',
    url: '/account',
    headers: { host: 'site.example', 'user-agent': 'Mozilla/5.0', accept: 'text/html' },
    remoteAddress: '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

function gate(options: Parameters<typeof createGate<null>>[0] = {}): Gate<null> {
  const created = createGate<null>({ logger: quiet, telemetry: false, ...options })
  gates.push(created)
  return created
}

async function decisionService(): Promise<string> {
  const server = createServer((_req, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end('{"verdict":"allow"}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  )
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/decide`
}

// These run in order: the first two need undici still unloaded in this file's module graph.
describe('undici, from the sources', () => {
  it('is not loaded by a gate with the embedded default that decides a request', async () => {
    const { decision } = await gate().decide(view())
    expect(decision.source).toBe('backend')
    expect(undici.loads).toBe(0)
  })

  it('is not loaded by an HTTP backend given a dispatcher of its own', async () => {
    const dispatcher = {
      request: async () => ({ statusCode: 200, headers: {}, body: Readable.from([Buffer.from('{"verdict":"deny"}')]) }),
    } as unknown as Dispatcher
    const { decision } = await gate({ backend: httpBackend({ url: 'http://decisions.test/decide', dispatcher }) }).decide(view())
    expect(decision).toMatchObject({ verdict: 'deny', source: 'backend' })
    expect(undici.loads).toBe(0)
  })

  it('starts loading, once, when a backend with Sallyport’s own pool is built; its first calls wait for it', async () => {
    const url = await decisionService()
    const remote = gate({ backend: httpBackend({ url }), timeoutMs: 5000 })
    const outcomes = await Promise.all([remote.decide(view()), remote.decide(view())])
    expect(outcomes.map(({ decision }) => decision.source)).toEqual(['backend', 'backend'])
    expect((await remote.decide(view())).decision.source).toBe('backend')
    expect(undici.loads).toBe(1)
  })

  it('that fails to load is a "network" failure of the call, not an unhandled rejection', async () => {
    vi.resetModules()
    vi.doMock('undici', () => {
      throw new Error('undici is not installed')
    })
    const unhandled: unknown[] = []
    const record = (reason: unknown) => void unhandled.push(reason)
    process.on('unhandledRejection', record)
    try {
      const fresh = await import('@sallyport/core')
      const warnings: Array<Record<string, unknown>> = []
      const remote = fresh.createGate<null>({
        backend: fresh.httpBackend({ url: await decisionService() }),
        logger: { warn: (entry) => void warnings.push(entry), error() {} },
        telemetry: false,
      })
      closers.push(() => remote.close())
      const { decision } = await remote.decide(view())
      expect(decision).toMatchObject({ source: 'fallback', reason: 'network' })
      expect(JSON.stringify(warnings)).toContain('could not load undici')
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', record)
      vi.doUnmock('undici')
    }
  })

  it('that is still loading when calls reach their deadline does not open the breaker', async () => {
    vi.resetModules()
    vi.doMock('undici', async (importOriginal) => {
      await new Promise((resolve) => setTimeout(resolve, 500))
      return importOriginal()
    })
    try {
      const fresh = await import('@sallyport/core')
      const logged: string[] = []
      const remote = fresh.createGate<null>({
        backend: fresh.httpBackend({ url: await decisionService() }),
        breaker: { consecutiveFailures: 1 },
        timeoutMs: 100,
        logger: { warn: (entry) => void logged.push(String(entry.code)), error: (entry) => void logged.push(String(entry.code)) },
        telemetry: false,
      })
      closers.push(() => remote.close())
      const early = await Promise.all([remote.decide(view()), remote.decide(view()), remote.decide(view())])
      expect(early.map(({ decision }) => [decision.source, decision.reason])).toEqual(Array(3).fill(['fallback', 'pool_saturated']))
      await new Promise((resolve) => setTimeout(resolve, 600))
      const { decision } = await remote.decide(view())
      expect(decision.reason).not.toBe('circuit_open')
      expect(logged).not.toContain('SP_BREAKER_OPEN')
    } finally {
      vi.doUnmock('undici')
    }
  })
})

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

/**
 * A script for a fresh Node process: loads the built core, decides one request with the
 * embedded default, then one through `httpBackend` against a local service, and prints
 * whether undici was loaded after each. CommonJS packages land in `require.cache` however
 * they were loaded; an ES module consumer also records every URL its resolve hook sees.
 */
function script(format: 'esm' | 'cjs', hookFile: string): string {
  const entry = join(dist, format === 'esm' ? 'index.mjs' : 'index.cjs')
  const hook = `
    import { appendFileSync } from 'node:fs'
    export async function resolve(specifier, context, next) {
      const result = await next(specifier, context)
      appendFileSync(${JSON.stringify(hookFile)}, result.url + '\\n')
      return result
    }`
  return `
    const { register, createRequire } = require('node:module')
    const { readFileSync, existsSync } = require('node:fs')
    const http = require('node:http')
    const loaded = () => {
      const cached = Object.keys(createRequire(${JSON.stringify(entry)}).cache)
      const resolved = existsSync(${JSON.stringify(hookFile)}) ? readFileSync(${JSON.stringify(hookFile)}, 'utf8').split('\\n') : []
      return [...cached, ...resolved].some((path) => /[\\\\/]node_modules[\\\\/]undici[\\\\/]/.test(path))
    }
    const view = {
      native: null, method: 'GET', url: '/account', remoteAddress: '203.0.113.9', encrypted: false,
      headers: { host: 'site.example', 'user-agent': 'Mozilla/5.0', accept: 'text/html' },
      frameworkTrust: undefined, body: undefined,
      responded: () => false, readBody: async () => null, onClientGone: () => () => {},
    }
    const quiet = { warn() {}, error() {} }
    ;(async () => {
      ${format === 'esm' ? `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)})` : ''}
      const core = ${format === 'esm' ? `await import(${JSON.stringify(pathToFileURL(entry).href)})` : `require(${JSON.stringify(entry)})`}
      const local = core.createGate({ logger: quiet, telemetry: false })
      const first = (await local.decide(view)).decision.source
      const afterDefault = loaded()
      const server = http.createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"verdict":"deny"}')
      })
      await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
      const url = 'http://127.0.0.1:' + server.address().port + '/decide'
      const remote = core.createGate({ backend: core.httpBackend({ url }), logger: quiet, telemetry: false, timeoutMs: 5000 })
      const second = (await remote.decide(view)).decision
      const afterHttp = loaded()
      await Promise.all([local.close(), remote.close()])
      server.close()
      process.stdout.write(JSON.stringify({ first, afterDefault, second: { verdict: second.verdict, source: second.source }, afterHttp }))
    })().catch((error) => { console.error(error); process.exit(1) })`
}

function runFresh(format: 'esm' | 'cjs'): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'sallyport-lazy-undici-'))
  return new Promise<unknown>((resolve, reject) => {
    execFile(
      process.execPath,
      ['-e', script(format, join(dir, 'resolved.txt'))],
      { cwd: dir, timeout: 30_000, encoding: 'utf8' },
      (error, stdout, stderr) => {
        rmSync(dir, { recursive: true, force: true })
        if (error) reject(new Error(`${error.message}\n${stderr}`))
        else resolve(JSON.parse(stdout))
      },
    )
  })
}

describe.each(['esm', 'cjs'] as const)('undici, in the built package loaded as %s (run `pnpm build` first)', (format) => {
  it('stays unloaded through a default decision and loads at the first HTTP call', { timeout: 30_000 }, async () => {
    expect(existsSync(join(dist, 'index.mjs')) && existsSync(join(dist, 'index.cjs')), `${dist} (run pnpm build)`).toBe(true)
    expect(await runFresh(format)).toEqual({
      first: 'backend',
      afterDefault: false,
      second: { verdict: 'deny', source: 'backend' },
      afterHttp: true,
    })
  })
})
