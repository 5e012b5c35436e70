/**
 * The packages as the registry would serve them: each tarball is checked the way
 * `pnpm check:packs` checks it before a release, then a user's app outside the monorepo
 * installs the tarballs with npm, typechecks with `tsc --strict` and runs under ES modules and
 * CommonJS. Needs `pnpm build` first (`pnpm test` does it) and the npm registry for the
 * consumer's own dependencies (express, koa, typescript, their types).
 */
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pack, problemsOf, publishedPackages } from '../../scripts/check-packs.mjs'

const packages = publishedPackages()
const tarballs = new Map<string, string>()
let packDir = ''

beforeAll(() => {
  packDir = mkdtempSync(join(tmpdir(), 'sallyport-tarballs-'))
  for (const dir of packages) tarballs.set(dir, pack(dir, packDir))
}, 120_000)
afterAll(() => {
  if (packDir !== '') rmSync(packDir, { recursive: true, force: true })
})

describe('each package, packed', () => {
  it('covers every package under packages/', () => {
    expect(packages).toEqual(['core', 'express', 'ipqs', 'koa', 'redis', 'testing', 'tracenow', 'tracer', 'trusted-accounts'])
  })

  it.each(packages)('@sallyport/%s is ready to publish', (dir) => {
    expect(problemsOf(dir, tarballs.get(dir) as string)).toEqual([])
  })
})

/** What the consumer's own package.json asks of the registry besides the tarballs. */
const REGISTRY_DEPENDENCIES = {
  express: '^5.1.0',
  koa: '^3.0.1',
  typescript: '~5.9.3',
  '@types/express': '^5.0.3',
  '@types/koa': '^3.0.0',
  '@types/node': '^20.19.0',
}

const RUN = (load: string) => `
${load}
const decisions = []
const servers = []
function listen(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler).listen(0, '127.0.0.1', () => resolve(server))
    servers.push(server)
  })
}
const browser = { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/140.0 Safari/537.36', accept: 'text/html', 'accept-language': 'en', 'sec-fetch-mode': 'navigate' }
;(async () => {
  const expressServer = await listen(app.expressApp(decisions))
  const koaServer = await listen(app.koaApp().callback())
  const base = (server) => 'http://127.0.0.1:' + server.address().port
  const page = await fetch(base(expressServer) + '/', { headers: browser })
  const scraper = await fetch(base(expressServer) + '/', { headers: { 'user-agent': 'curl/8.5.0', accept: 'text/html' }, redirect: 'manual' })
  const koaPage = await fetch(base(koaServer) + '/', { headers: browser })
  process.stdout.write(JSON.stringify({
    page: [page.status, (await page.json()).verdict],
    scraper: [scraper.status, new URL(scraper.headers.get('location'), 'http://x').pathname],
    koa: [koaPage.status, (await koaPage.json()).verdict],
    decisions: decisions.map((decision) => decision.verdict),
    code: app.optionCode(),
  }))
  for (const server of servers) server.close()
})().catch((error) => { console.error(error); process.exit(1) })
`

describe('a consumer app outside the monorepo', () => {
  let consumer = ''
  afterAll(() => {
    if (consumer !== '') rmSync(consumer, { recursive: true, force: true })
  })

  it('installs the tarballs, typechecks with tsc --strict and runs under ESM and CommonJS', () => {
    consumer = mkdtempSync(join(tmpdir(), 'sallyport-consumer-'))
    const local = Object.fromEntries(packages.map((dir) => [`@sallyport/${dir}`, `file:${tarballs.get(dir)}`]))
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        private: true,
        dependencies: { ...local, ...REGISTRY_DEPENDENCIES },
        // The packages depend on each other by version range: the tarballs stand for those versions.
        overrides: local,
      }),
    )
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: consumer, stdio: 'pipe', timeout: 240_000 })

    // The same app, once as an ES module package and once as a CommonJS one: each is compiled
    // by tsc --strict (module nodenext picks the format from package.json) and then run. Like
    // most apps it skips checking libraries' own declarations (@types/koa 3 does not compile
    // against the content-disposition it now installs); what the app writes against Sallyport's
    // types is checked in full, and the declarations themselves are checked by attw in lint.
    const results = (['module', 'commonjs'] as const).map((type) => {
      const dir = join(consumer, type)
      mkdirSync(dir)
      copyFileSync(fileURLToPath(new URL('../consumer/app.ts', import.meta.url)), join(dir, 'app.ts'))
      writeFileSync(join(dir, 'package.json'), JSON.stringify({ type }))
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { strict: true, module: 'nodenext', target: 'es2022', skipLibCheck: true, types: ['node'] },
          files: ['app.ts'],
        }),
      )
      try {
        execFileSync(process.execPath, [join(consumer, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], {
          cwd: dir,
          encoding: 'utf8',
        })
      } catch (error) {
        throw new Error(`tsc --strict failed on the ${type} app:\n${(error as { stdout?: string }).stdout ?? error}`)
      }
      const script =
        type === 'module'
          ? RUN("import http from 'node:http'\nimport * as app from './app.js'")
          : RUN("const http = require('node:http')\nconst app = require('./app.js')")
      const file = join(dir, type === 'module' ? 'run.mjs' : 'run.cjs')
      writeFileSync(file, script)
      return JSON.parse(execFileSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 30_000 }))
    })
    for (const result of results) {
      expect(result).toEqual({
        page: [200, 'allow'],
        scraper: [302, '/.sallyport/challenge'],
        koa: [200, 'allow'],
        decisions: ['allow', 'challenge'],
        code: 'SP_INVALID_OPTION',
      })
    }
  }, 300_000)
})
