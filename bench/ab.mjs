// Old and new builds side by side in one run: each app of this checkout, the same app built
// from another checkout, and their common reference, in rotating rounds so drift on the
// machine hits all three alike. What a change to the request path costs or saves.
// Usage: node bench/ab.mjs --old <another checkout, installed and built> [--rounds 9] [--amount 20000] [--only express,koa,remote]
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { load, median, pinLoadGenerator, start, stopAll, warmUp } from './measure.mjs'

const args = process.argv.slice(2)
const value = (name) => {
  const index = args.indexOf(`--${name}`)
  return index < 0 ? undefined : args[index + 1]
}
const oldTree = value('old')
if (oldTree === undefined) {
  console.error('usage: node bench/ab.mjs --old <checkout of the old build, with `pnpm install && pnpm build` done>')
  process.exit(2)
}
const ROUNDS = Number(value('rounds') ?? 9)
const AMOUNT = Number(value('amount') ?? 20_000)
const only = value('only')?.split(',')

await pinLoadGenerator(fileURLToPath(import.meta.url), args)

const oldServers = join(resolve(oldTree), 'bench', 'servers.mjs')
const PAIRS = [
  { name: 'express', title: 'Express 5 + guard() vs bare Express 5', guarded: 'express-guard', reference: 'express-bare' },
  { name: 'koa', title: 'Koa 3 + guard() vs bare Koa 3', guarded: 'koa-guard', reference: 'koa-bare' },
  {
    name: 'remote',
    title: 'guard(httpBackend) vs a hand-written undici.Pool call',
    guarded: 'express-guard-remote',
    reference: 'express-ideal-remote',
    upstream: true,
  },
]

const fmt = (number, digits = 1) => number.toFixed(digits)
try {
  console.log(`# A/B — ${new Date().toISOString()}; old build: ${resolve(oldTree)}; ${ROUNDS} rounds × ${AMOUNT} requests per app`)
  for (const pair of PAIRS) {
    if (only !== undefined && !only.includes(pair.name)) continue
    const upstream = pair.upstream ? `${(await start('upstream-fast')).url}/decide` : undefined
    const apps = {
      reference: await start(pair.reference, upstream),
      old: await start(pair.guarded, upstream, oldServers),
      new: await start(pair.guarded, upstream),
    }
    for (const app of Object.values(apps)) await warmUp(app)
    const rounds = { reference: [], old: [], new: [] }
    const order = ['reference', 'old', 'new']
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first: the machine's drift within a round then favours no one.
      for (let step = 0; step < order.length; step++) {
        const which = order[(round + step) % order.length]
        rounds[which].push(await load(apps[which], { amount: AMOUNT }))
      }
    }
    const cpu = (which) => median(rounds[which].map((round) => round.cpu))
    const ratio = (which) => median(rounds[which].map((round, index) => rounds.reference[index].cpu / round.cpu))
    const rps = (which) => median(rounds[which].map((round, index) => round.rps / rounds.reference[index].rps))
    const reference = cpu('reference')
    console.log(
      `${pair.title}: reference ${fmt(reference)} µs/request; old ${fmt(cpu('old') - reference, 1)} µs more (CPU ratio ${fmt(ratio('old'), 3)}, req/s ratio ${fmt(rps('old'), 3)}); new ${fmt(cpu('new') - reference, 1)} µs more (CPU ratio ${fmt(ratio('new'), 3)}, req/s ratio ${fmt(rps('new'), 3)})`,
    )
    for (const app of Object.values(apps)) app.child.kill('SIGTERM')
  }
} finally {
  stopAll()
}
