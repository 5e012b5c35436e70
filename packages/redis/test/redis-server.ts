/**
 * A real `redis-server` for one test file: spawned on a free loopback port with nothing
 * written to disk, and killed when the file is done. A missing `redis-server` is a failure,
 * never a skip: CI installs it through scripts/system-packages.sh.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisServer {
  port: number
  url: string
  /** SIGSTOP: the port stays open and connections stay up, but nothing answers. */
  pause(): void
  resume(): void
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(): Promise<void>
}

function requireRedisServer(): void {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error(
      'These tests need a real Redis, but `redis-server` is not on PATH. Install it (Debian/Ubuntu: `apt-get install redis-server`, ' +
        'or run `bash scripts/system-packages.sh`) and run the tests again. They fail rather than skip, so CI never passes without them.',
    )
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

/** Sends one inline command on a fresh connection; resolves with the first chunk of the reply, or `null`. */
function inline(port: number, command: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const done = (answer: string | null) => {
      socket.destroy()
      resolve(answer)
    }
    socket.setTimeout(200, () => done(null))
    socket.once('error', () => done(null))
    socket.once('connect', () => socket.write(`${command}\r\n`))
    socket.once('data', (data) => done(data.toString()))
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function spawnOn(port: number, dir: string | null): Promise<ChildProcess | null> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
  // A one-node cluster: enough for cluster clients to discover slots and route by key.
  if (dir !== null) {
    // Announce the address: alone, a node reports its own host as '' and ioredis cannot route to it.
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--dir', dir, '--cluster-announce-ip', '127.0.0.1')
  }
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      // Another process took the port between our probe and the spawn: try another one.
      if (/address already in use/i.test(output)) return null
      throw new Error(`redis-server exited (${child.exitCode ?? child.signalCode}):\n${output}`)
    }
    if ((await inline(port, 'PING'))?.startsWith('+PONG')) {
      if (dir === null) return child
      await inline(port, 'CLUSTER ADDSLOTSRANGE 0 16383')
      while (Date.now() < deadline) {
        if ((await inline(port, 'CLUSTER INFO'))?.includes('cluster_state:ok')) return child
        await sleep(25)
      }
      break
    }
    await sleep(25)
  }
  child.kill('SIGKILL')
  throw new Error(`redis-server on port ${port} was not ready within 10 s:\n${output}`)
}

export interface StartOptions {
  /** Run as a one-node Redis Cluster holding every slot. Defaults to `false`. */
  cluster?: boolean
}

export async function startRedisServer(options: StartOptions = {}): Promise<RedisServer> {
  requireRedisServer()
  const dir = options.cluster === true ? await mkdtemp(join(tmpdir(), 'sallyport-redis-')) : null
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    const child = await spawnOn(port, dir)
    if (child === null) continue
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      pause: () => child.kill('SIGSTOP'),
      resume: () => child.kill('SIGCONT'),
      async kill() {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit')
          child.kill('SIGKILL')
          await exited
        }
        if (dir !== null) await rm(dir, { recursive: true, force: true })
      },
    }
  }
  throw new Error('Could not find a free port for redis-server after 5 attempts.')
}
