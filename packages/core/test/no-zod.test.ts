/**
 * The embedded default loads no zod: options, checkpoint specs, the local engine's rules and
 * the challenge's replies are checked with `shape`, so a gate with no options that decides a
 * request never imports it. Checked twice, as lazy-undici.test.ts checks undici: on the
 * sources, by watching every import of `zod` in this file's module graph; and on the built
 * package (run `pnpm build` first), in fresh Node processes that load it as an ES module and
 * as CommonJS.
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createGate, type Logger, localPolicies, type RequestView } from '@sallyport/core'
import { describe, expect, it, vi } from 'vitest'

const zod = vi.hoisted(() => ({ loads: 0 }))
vi.mock('zod', () => {
  zod.loads++
  return {}
})

const quiet: Logger = { warn() {}, error() {} }

function view(): RequestView<null> {
  return {
    native: null,
    method: 'POST',
    url: '/login',
    headers: { host: 'site.example', 'user-agent': 'Mozilla/5.0', accept: 'text/html', 'content-type': 'application/json' },
    remoteAddress: '203.0.113.9',
    encrypted: false,
    frameworkTrust: undefined,
    body: { email: 'a@example.com' },
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

describe('zod, from the sources', () => {
  it('is not loaded by a gate with the embedded default that decides a request at a checkpoint', async () => {
    const gate = createGate<null>({ logger: quiet, telemetry: false })
    const checkpoint = gate.checkpoint({ event: 'login', email: () => 'a@example.com' })
    const { decision } = await gate.decide(view(), checkpoint)
    expect(decision.source).toBe('backend')
    await gate.close()
    const engine = localPolicies({ logger: quiet, rules: [{ name: 'scanner', verdict: 'deny', when: { userAgent: 'sqlmap' } }] })
    await engine.close?.()
    expect(zod.loads).toBe(0)
  })

  it('is no dependency of the core', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Record<string, unknown>
    expect(Object.keys((manifest.dependencies ?? {}) as object)).not.toContain('zod')
    expect(Object.keys((manifest.peerDependencies ?? {}) as object)).not.toContain('zod')
  })
})

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

/**
 * A script for a fresh Node process: loads the built core, decides one request at a checkpoint
 * with the embedded default, and prints whether zod was loaded. CommonJS packages land in
 * `require.cache` however they were loaded; an ES module consumer also records every URL its
 * resolve hook sees.
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
    const view = {
      native: null, method: 'POST', url: '/login', remoteAddress: '203.0.113.9', encrypted: false,
      headers: { host: 'site.example', 'user-agent': 'Mozilla/5.0', accept: 'text/html' },
      frameworkTrust: undefined, body: { email: 'a@example.com' },
      responded: () => false, readBody: async () => null, onClientGone: () => () => {},
    }
    const quiet = { warn() {}, error() {} }
    ;(async () => {
      ${format === 'esm' ? `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)})` : ''}
      const core = ${format === 'esm' ? `await import(${JSON.stringify(pathToFileURL(entry).href)})` : `require(${JSON.stringify(entry)})`}
      const gate = core.createGate({ logger: quiet, telemetry: false })
      const checkpoint = gate.checkpoint({ event: 'login', email: () => 'a@example.com' })
      const source = (await gate.decide(view, checkpoint)).decision.source
      await gate.close()
      const cached = Object.keys(createRequire(${JSON.stringify(entry)}).cache)
      const resolved = existsSync(${JSON.stringify(hookFile)}) ? readFileSync(${JSON.stringify(hookFile)}, 'utf8').split('\\n') : []
      const paths = [...cached, ...resolved]
      // The watch works: the core's own dependencies are seen.
      const watched = paths.some((path) => /[\\\\/]node_modules[\\\\/]/.test(path))
      const zod = paths.some((path) => /[\\\\/]zod[\\\\/]|[\\\\/]zod@/.test(path))
      process.stdout.write(JSON.stringify({ source, watched, zod }))
    })().catch((error) => { console.error(error); process.exit(1) })`
}

function runFresh(format: 'esm' | 'cjs'): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'sallyport-no-zod-'))
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

describe.each(['esm', 'cjs'] as const)('zod, in the built package loaded as %s (run `pnpm build` first)', (format) => {
  it('is not loaded by a default decision', { timeout: 30_000 }, async () => {
    expect(existsSync(join(dist, 'index.mjs')) && existsSync(join(dist, 'index.cjs')), `${dist} (run pnpm build)`).toBe(true)
    expect(await runFresh(format)).toEqual({ source: 'backend', watched: true, zod: false })
  })
})
