/**
 * Soak: 100 000 decisions against a backend that fails every call must leave memory flat.
 * Per-decision state (timers, abort listeners, breaker buckets, warnings, logs) that is kept
 * by mistake shows up here as heap growth.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createGate, type DecisionBackend, type RequestView } from '@sallyport/core'
import { describe, expect, it } from 'vitest'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}

function view(index: number): RequestView {
  return {
    native: {},
    method: 'GET',
    url: `/products/${index}?q=${index}`,
    headers: { host: 'shop.test', 'user-agent': `Agent/${index}`, accept: 'text/html', cookie: `sid=${index}` },
    remoteAddress: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`,
    encrypted: false,
    frameworkTrust: undefined,
    body: undefined,
    responded: () => false,
    readBody: async () => null,
    onClientGone: () => () => {},
  }
}

describe('soak: a failing backend', () => {
  it('100k decisions leave the heap flat', async () => {
    let calls = 0
    const failing: DecisionBackend = {
      name: 'failing',
      decide: async () => {
        calls++
        throw new Error('connection refused')
      },
    }
    const quiet = { warn() {}, error() {} }
    // Breaker off: every decision really calls the failing backend.
    const gate = createGate({ backend: failing, breaker: false, logger: quiet, telemetry: false })
    const run = async (from: number, count: number) => {
      for (let start = from; start < from + count; start += 1000) {
        await Promise.all(Array.from({ length: 1000 }, (_, offset) => gate.decide(view(start + offset))))
      }
    }
    await run(0, 10_000)
    const before = heapAfterGc()
    await run(10_000, 100_000)
    const after = heapAfterGc()
    await gate.close()
    const growthMb = (after - before) / 1024 / 1024
    console.info(
      `[soak] ${calls} failing calls; heap ${(before / 1048576).toFixed(1)} MB → ${(after / 1048576).toFixed(1)} MB (${growthMb.toFixed(2)} MB)`,
    )
    expect(calls).toBe(110_000)
    expect(growthMb).toBeLessThan(4)
  }, 60_000)
})
