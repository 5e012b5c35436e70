// What every benchmark script shares: pinning to cores, starting servers in their own
// processes, browser-like load, and CPU per request from /proc.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

/**
 * On a small machine the load generator and the server fight for the same cores, and the
 * ratio then measures the fight. Where taskset exists, the load generator runs on CPU 0 and
 * every measured server on CPU 1, so each server is measured on a core of its own.
 */
export const pinned = spawnSync('taskset', ['-c', '0', 'true']).status === 0

/** Runs `script` again pinned to CPU 0, once; returns only in the pinned process. */
export async function pinLoadGenerator(script, args) {
  if (!pinned || process.env.SALLYPORT_BENCH_PINNED !== undefined) return
  const child = spawn('taskset', ['-c', '0', process.execPath, script, ...args], {
    stdio: 'inherit',
    env: { ...process.env, SALLYPORT_BENCH_PINNED: '1' },
  })
  const [code] = await once(child, 'exit')
  process.exit(code ?? 1)
}

export const SERVERS = fileURLToPath(new URL('./servers.mjs', import.meta.url))
const running = []

/** Starts one server of `kind` (see servers.mjs) from `servers`, a servers.mjs of this tree or another. */
export async function start(kind, upstream, servers = SERVERS) {
  // A decision service stands in for a vendor elsewhere: it must not take the measured app's core.
  const cpu = kind.startsWith('upstream-') ? '0' : '1'
  const command = pinned ? ['taskset', '-c', cpu, process.execPath] : [process.execPath]
  const [program, ...rest] = command
  const child = spawn(program, [...rest, servers, kind, ...(upstream ? [upstream] : [])], { stdio: ['ignore', 'pipe', 'inherit'] })
  running.push(child)
  const [chunk] = await once(child.stdout, 'data')
  return { url: `http://127.0.0.1:${String(chunk).trim()}`, child }
}

export function stopAll() {
  for (const child of running) child.kill('SIGTERM')
}

export const BROWSER = {
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100

/**
 * CPU time (user + system, µs) a server process has used so far, or `undefined` without
 * /proc. Time the VM's neighbours take is not in it, so CPU per request is steadier than
 * requests per second on a shared machine; both are reported.
 */
function cpuOf(server) {
  try {
    const fields = readFileSync(`/proc/${server.child.pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** One round of load on `server` for `duration` seconds: rate, latency and CPU per request. */
export async function load(server, { connections = 50, duration = 3, amount } = {}) {
  const before = cpuOf(server)
  const options = { url: `${server.url}/`, connections, headers: BROWSER }
  const result = await autocannon(amount === undefined ? { ...options, duration } : { ...options, amount })
  const after = cpuOf(server)
  const cpu = before === undefined || after === undefined ? undefined : (after - before) / result.requests.total
  return {
    // A fixed amount of requests may take only a few seconds: autocannon's per-second samples
    // are then too coarse, and the total over the duration says it better.
    rps: amount === undefined ? result.requests.average : result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
    cpu,
  }
}

/** Warms a fresh process up: its first seconds measure the JIT, not the app. */
export function warmUp(server, connections = 50) {
  return autocannon({ url: `${server.url}/`, connections, duration: 2, headers: BROWSER })
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
