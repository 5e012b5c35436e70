// Sallyport benchmarks: each guarded app against its reference, measured side by side in
// one run (alternating rounds), with autocannon in this process and every server in its own.
// Usage: pnpm bench  [--duration 5] [--rounds 2]
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cpus, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import { BROWSER, load as measure, median, pinLoadGenerator, pinned, start, stopAll, warmUp } from './measure.mjs'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const index = args.indexOf(`--${name}`)
  return index < 0 ? fallback : Number(args[index + 1])
}
const DURATION = option('duration', 3)
const onlyIndex = args.indexOf('--only')
/** `--only 1,2` runs just those benchmarks, for quick checks while profiling. */
const ONLY =
  onlyIndex < 0
    ? null
    : new Set(
        String(args[onlyIndex + 1])
          .split(',')
          .map(Number),
      )
const wanted = (number) => ONLY === null || ONLY.has(number)
const ROUNDS = option('rounds', 9)
await pinLoadGenerator(fileURLToPath(import.meta.url), args)

const load = (server, connections = 50) => measure(server, { connections, duration: DURATION })

/** Alternates rounds of two servers so drift on the machine hits both alike. */
async function compare(reference, guarded, connections) {
  // Warm both up first: the first seconds of a fresh process measure the JIT, not the app.
  await warmUp(reference, connections)
  await warmUp(guarded, connections)
  const totals = { reference: [], guarded: [] }
  for (let round = 0; round < ROUNDS; round++) {
    totals.reference.push(await load(reference, connections))
    totals.guarded.push(await load(guarded, connections))
  }
  const mean = (list, key) => list.reduce((sum, item) => sum + item[key], 0) / list.length
  const summary = (list) => ({ rps: mean(list, 'rps'), p50: mean(list, 'p50'), p99: mean(list, 'p99'), non2xx: mean(list, 'non2xx') })
  const ref = summary(totals.reference)
  const gua = summary(totals.guarded)
  // Each round's pair ran back to back; the median of their ratios shrugs off a round the
  // machine's neighbours slowed down, which a ratio of means would not.
  const ratios = totals.guarded.map((round, index) => round.rps / totals.reference[index].rps).sort((a, b) => a - b)
  const ratio = median(ratios)
  const measuredCpu = totals.guarded.every((round, index) => round.cpu !== undefined && totals.reference[index].cpu !== undefined)
  const cpu = measuredCpu
    ? {
        guarded: median(totals.guarded.map((round) => round.cpu)),
        reference: median(totals.reference.map((round) => round.cpu)),
        ratio: median(totals.guarded.map((round, index) => totals.reference[index].cpu / round.cpu)),
      }
    : undefined
  return { reference: ref, guarded: gua, ratio, ratios, cpu }
}

const fmt = (value, digits = 0) => value.toFixed(digits)
const lines = []
function report(title, result, target) {
  const pass = target(result)
  const cpu =
    result.cpu === undefined
      ? ''
      : `; CPU per request ${fmt(result.cpu.guarded, 1)} vs ${fmt(result.cpu.reference, 1)} µs (ratio ${fmt(result.cpu.ratio, 3)})`
  const line = `${title}: ratio ${fmt(result.ratio, 3)} (median of ${result.ratios.length} paired rounds, ${fmt(result.ratios[0], 2)}–${fmt(result.ratios.at(-1), 2)}; mean ${fmt(result.guarded.rps)} / ${fmt(result.reference.rps)} req/s); p50 ${fmt(result.guarded.p50, 1)} vs ${fmt(result.reference.p50, 1)} ms; p99 ${fmt(result.guarded.p99, 1)} vs ${fmt(result.reference.p99, 1)} ms${cpu} — ${pass ? 'meets' : 'MISSES'} target`
  lines.push(line)
  console.log(line)
}

async function stats(url) {
  const response = await fetch(`${url}/__stats`)
  return response.json()
}

try {
  console.log(`# Sallyport benchmarks — ${new Date().toISOString()}`)
  console.log(
    `# node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB; ${ROUNDS} rounds × ${DURATION} s per side, 50 connections`,
  )
  console.log(
    `# command: pnpm bench (node bench/run.mjs)${pinned ? '; load generator and decision services pinned to CPU 0, measured apps to CPU 1' : ''}`,
  )

  const expressGuard = wanted(1) || wanted(5) ? await start('express-guard') : undefined
  if (wanted(1) && expressGuard) {
    const expressBare = await start('express-bare')
    report(
      '1. Express 5 + guard() (local engine, default rules) vs bare Express 5',
      await compare(expressBare, expressGuard),
      (r) => r.ratio >= 0.95,
    )
  }

  if (wanted(2)) {
    const koaBare = await start('koa-bare')
    const koaGuard = await start('koa-guard')
    report('2. Koa 3 + guard() vs bare Koa 3', await compare(koaBare, koaGuard), (r) => r.ratio >= 0.85)
  }

  if (wanted(3)) {
    const upstream = await start('upstream-fast')
    const ideal = await start('express-ideal-remote', `${upstream.url}/decide`)
    const remote = await start('express-guard-remote', `${upstream.url}/decide`)
    report(
      '3. remote backend on loopback: guard(httpBackend) vs a hand-written keep-alive undici.Pool call',
      await compare(ideal, remote),
      (r) => r.ratio >= 0.9,
    )
  }

  if (wanted(4)) {
    const hangingUpstream = await start('upstream-hanging')
    const hanging = await start('express-guard-hanging', `${hangingUpstream.url}/decide`)
    const floor = await start('express-wait-100')
    const nodeFloor = await start('node-wait-100')
    // Warm up like the others: the first wave of 100 cold requests measures the JIT and the connection set-up.
    for (const server of [hanging, floor, nodeFloor]) {
      await warmUp(server, 100)
    }
    const before = await stats(hanging.url)
    // Alternating rounds, as in the other comparisons. The references wait the same 100 ms
    // with no decision at all: the Express app's p99 is what Express and the load generator
    // add to the budget on this machine, Node's own server's p99 what the machine alone adds.
    const rounds = { guarded: [], floor: [], nodeFloor: [] }
    for (let round = 0; round < ROUNDS; round++) {
      rounds.nodeFloor.push(await load(nodeFloor, 100))
      rounds.floor.push(await load(floor, 100))
      rounds.guarded.push(await load(hanging, 100))
    }
    const after = await stats(hanging.url)
    const decisions = after.decisions - before.decisions
    const fallbacks = (after.bySource.fallback ?? 0) - (before.bySource.fallback ?? 0)
    const timeouts = (after.byReason.timeout ?? 0) - (before.byReason.timeout ?? 0)
    const allFallback = fallbacks === decisions && timeouts === decisions
    const medianOf = (list, key) => median(list.map((item) => item[key]))
    const p99 = medianOf(rounds.guarded, 'p99')
    const floorP99 = medianOf(rounds.floor, 'p99')
    const non2xx = rounds.guarded.reduce((sum, item) => sum + item.non2xx, 0)
    const line = `4. hanging backend, 100 ms budget, 100 connections (median of ${ROUNDS} rounds): p50 ${fmt(medianOf(rounds.guarded, 'p50'), 1)} ms, p99 ${fmt(p99, 1)} ms; the same app waiting 100 ms with no decision: p50 ${fmt(medianOf(rounds.floor, 'p50'), 1)} ms, p99 ${fmt(floorP99, 1)} ms, so Sallyport adds ${fmt(p99 - floorP99, 1)} ms at p99: p99 ratio ${fmt(p99 / floorP99, 3)} (target ≤ 1.03); Node's HTTP server alone waiting 100 ms: p99 ${fmt(medianOf(rounds.nodeFloor, 'p99'), 1)} ms; ${decisions} decisions, ${allFallback ? 'every one the timeout fallback' : `NOT all timeout fallbacks (${fallbacks} fallbacks, ${timeouts} timeouts)`}, ${non2xx} non-2xx — ${p99 / floorP99 <= 1.03 && allFallback && non2xx === 0 ? 'meets' : 'MISSES'} target`
    lines.push(line)
    console.log(line)
  }

  if (wanted(5) && expressGuard) {
    const open = await start('express-guard-breaker-open', 'http://127.0.0.1:9/decide')
    // Trip the breaker before measuring: five refused calls open it for the rest of the run.
    for (let i = 0; i < 10; i++) await fetch(`${open.url}/`, { headers: BROWSER })
    report(
      '5. breaker open (vendor down, local engine answering) vs benchmark 1 guarded',
      await compare(expressGuard, open),
      (r) => r.ratio >= 0.95,
    )
    const openStats = await stats(open.url)
    console.log(`   decisions while open: ${JSON.stringify(openStats.byReason)}`)
  }

  if (wanted(6)) {
    const memory = spawn(process.execPath, ['--expose-gc', fileURLToPath(new URL('./memory.mjs', import.meta.url))], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    let output = ''
    memory.stdout.on('data', (chunk) => {
      output += chunk
    })
    await once(memory, 'exit')
    lines.push(output.trim())
    console.log(output.trim())
  }
} finally {
  stopAll()
}
