// What loading Sallyport costs an app at start-up: the time to import the modules and build
// the middleware, and the RSS that adds, each case in fresh Node processes, against loading
// Express alone in the same run. Runs against the built packages: `pnpm build` first.
//
//   node bench/footprint.mjs              # 7 processes per case
//   node bench/footprint.mjs --runs 11
//
// Every measured process does one case and nothing else: it reads performance.now() and
// process.memoryUsage().rss, imports the modules, calls the factory, reads both again and
// prints the differences. The cases take turns (express, sallyport, vendor, …, express, …),
// so a slow moment of the machine hits all of them alike. Half a second later each process
// reads its CPU time and RSS again, so work set off in the background shows too. Each case
// also runs once more, unmeasured, with a module resolve hook that records which packages it
// had loaded by then.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire, register } from 'node:module'
import os from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

/** What each case loads and builds. The imports resolve from bench/, where the workspace packages are linked. */
const CASES = {
  express: {
    label: '`express` (import only)',
    run: async () => {
      await import('express')
    },
  },
  sallyport: {
    label: '`@sallyport/express` + `guard()` (embedded default)',
    run: async () => {
      const { guard } = await import('@sallyport/express')
      return guard()
    },
  },
  vendor: {
    label: '`@sallyport/express` + `@sallyport/trusted-accounts` + `guard({ backend })`',
    run: async () => {
      const [{ guard }, { trustedAccounts }] = await Promise.all([import('@sallyport/express'), import('@sallyport/trusted-accounts')])
      return guard({ backend: trustedAccounts({ secretKey: 'k', publishableKey: 'p' }) })
    },
  },
  koa: {
    label: '`koa` (import only)',
    run: async () => {
      await import('koa')
    },
  },
  'koa-sallyport': {
    label: '`@sallyport/koa` + `guard()` (embedded default)',
    run: async () => {
      const { guard } = await import('@sallyport/koa')
      return guard()
    },
  },
}
/** Packages worth naming when a case loads them: the large ones a local decision does not need. */
const HEAVY = ['undici', 'zod']
/** How long each process waits after the factory returns before the second reading. */
const SETTLE_MS = 500

function option(name) {
  const index = args.indexOf(name)
  return index >= 0 ? args[index + 1] : undefined
}

/** One measured case, in this process (a fresh one). Prints `{ ms, mb }`, or writes what was loaded. */
async function child(name, probeFile) {
  const scenario = CASES[name]
  if (scenario === undefined) throw new Error(`unknown case ${name}`)
  if (probeFile !== undefined) register(hookUrl(), { data: { file: probeFile } })
  const rssBefore = process.memoryUsage().rss
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  const built = await scenario.run()
  const ms = performance.now() - started
  const cpuBuilt = process.cpuUsage(cpuBefore)
  const rssAfter = process.memoryUsage().rss
  // Work a case sets off in the background (a module loaded a tick later) is not in `ms`:
  // the CPU time and RSS half a second later show it.
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
  const cpu = process.cpuUsage(cpuBefore)
  const settledMb = (process.memoryUsage().rss - rssBefore) / 1048576
  if (probeFile !== undefined) {
    // ESM packages show up in the hook's file; CommonJS ones, and everything they require, in require.cache.
    const cached = Object.keys(createRequire(import.meta.url).cache)
    process.stdout.write(JSON.stringify({ cjs: cached }))
  } else {
    const cpuMs = (cpuBuilt.user + cpuBuilt.system) / 1000
    const settledCpuMs = (cpu.user + cpu.system) / 1000
    process.stdout.write(JSON.stringify({ ms, cpuMs, mb: (rssAfter - rssBefore) / 1048576, settledCpuMs, settledMb, built: typeof built }))
  }
  process.exit(0)
}

/** A resolve hook that appends every URL it resolves to a file, as a data: URL for module.register. */
function hookUrl() {
  const source = `
    import { appendFileSync } from 'node:fs'
    let file
    export function initialize(data) { file = data.file }
    export async function resolve(specifier, context, next) {
      const result = await next(specifier, context)
      appendFileSync(file, result.url + '\\n')
      return result
    }`
  return `data:text/javascript,${encodeURIComponent(source)}`
}

function spawnCase(name, extra = []) {
  const script = fileURLToPath(import.meta.url)
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, '--child', name, ...extra], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`case ${name} failed: ${stderr || error.message}`))
      else resolve(JSON.parse(stdout))
    })
  })
}

/** The package a file belongs to: the last node_modules segment, or a workspace package's name. */
function packageOf(path) {
  const nodeModules = /.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path)
  if (nodeModules) return nodeModules[1]
  const workspace = /\/packages\/([^/]+)\/dist\//.exec(path)
  return workspace ? `@sallyport/${workspace[1]}` : undefined
}

async function probe(name) {
  const dir = mkdtempSync(join(os.tmpdir(), 'sallyport-footprint-'))
  const file = join(dir, 'resolved.txt')
  try {
    const { cjs } = await spawnCase(name, ['--probe', file])
    let esm = []
    try {
      esm = readFileSync(file, 'utf8').split('\n').filter(Boolean)
    } catch {}
    const paths = [...cjs.map((path) => pathToFileURL(path).href), ...esm].filter((url) => url.startsWith('file:'))
    return new Set(paths.map((url) => packageOf(fileURLToPath(url))).filter((name) => name !== undefined))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

async function main() {
  const runs = Number(option('--runs') ?? 7)
  if (!Number.isInteger(runs) || runs < 5) throw new Error('--runs takes a whole number, at least 5')
  const names = option('--cases')?.split(',') ?? Object.keys(CASES)
  if (!names.includes('express')) names.unshift('express')
  const results = Object.fromEntries(names.map((name) => [name, { ms: [], cpuMs: [], mb: [], settledCpuMs: [], settledMb: [] }]))
  // A first process warms the file system cache, so no case pays for the first read from disk.
  for (const name of names) await spawnCase(name)
  for (let round = 0; round < runs; round++) {
    for (const name of names) {
      const measured = await spawnCase(name)
      for (const key of Object.keys(results[name])) results[name][key].push(measured[key])
    }
  }
  const loaded = {}
  for (const name of names) loaded[name] = await probe(name)

  const expressMs = median(results.express.ms)
  const fixed = (value, digits) => value.toFixed(digits)
  console.log(`Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${runs} processes per case`)
  console.log('')
  const spread = (values, digits) =>
    `${fixed(median(values), digits)} (${fixed(Math.min(...values), digits)}–${fixed(Math.max(...values), digits)})`
  const later = `${SETTLE_MS / 1000} s later`
  console.log(
    `| case | ms, median (range) | time / express | CPU ms when built (${later}) | MB RSS added, median (range) | MB RSS ${later} | packages loaded by then | undici, zod by then |`,
  )
  console.log('|---|---|---|---|---|---|---|---|')
  for (const name of names) {
    const { ms, cpuMs, mb, settledCpuMs, settledMb } = results[name]
    const heavy = HEAVY.filter((pkg) => loaded[name].has(pkg))
    const cells = [
      CASES[name].label,
      spread(ms, 0),
      `${fixed(median(ms) / expressMs, 2)}×`,
      `${fixed(median(cpuMs), 0)} (${fixed(median(settledCpuMs), 0)})`,
      spread(mb, 1),
      fixed(median(settledMb), 1),
      loaded[name].size,
      heavy.length ? heavy.join(', ') : 'none',
    ]
    console.log(`| ${cells.join(' | ')} |`)
  }
  console.log('')
  const verdict = (met) => (met ? 'met' : 'missed')
  const ms = (name) => median(results[name].ms)
  if (results.sallyport) {
    const mb = median(results.sallyport.mb)
    console.log(
      `Goal, embedded default: ≤ 1.0× express's time and ≤ 20 MB RSS added: ${fixed(ms('sallyport') / expressMs, 2)}× and ${fixed(mb, 1)} MB, ${verdict(ms('sallyport') <= expressMs && mb <= 20)}`,
    )
  }
  if (results.vendor) {
    console.log(
      `Goal, vendor backend: ≤ 1.5× express's time: ${fixed(ms('vendor') / expressMs, 2)}×, ${verdict(ms('vendor') <= 1.5 * expressMs)}`,
    )
  }
  const beyondExpress = (name) => [...loaded[name]].filter((pkg) => !loaded.express.has(pkg)).sort()
  for (const name of names) {
    if (name === 'express') continue
    console.log(`Loaded by ${name} and not by express: ${beyondExpress(name).join(', ') || 'nothing'}`)
  }
}

const args = process.argv.slice(2)
const childCase = option('--child')
if (childCase !== undefined) await child(childCase, option('--probe'))
else await main()
