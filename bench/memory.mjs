// Benchmark 6: RSS and heap before and after 100 000 decisions against a failing backend.
import { createGate } from '@sallyport/core'

const gate = createGate({
  backend: { name: 'failing', decide: async () => Promise.reject(new Error('connection refused')) },
  breaker: false,
  logger: { warn() {}, error() {} },
  telemetry: false,
})
const view = (index) => ({
  native: {},
  method: 'GET',
  url: `/p/${index}`,
  headers: { host: 'shop.test', 'user-agent': 'Mozilla/5.0', accept: 'text/html' },
  remoteAddress: `10.0.${(index >> 8) & 255}.${index & 255}`,
  encrypted: false,
  frameworkTrust: undefined,
  body: undefined,
  responded: () => false,
  readBody: async () => null,
  onClientGone: () => () => {},
})
const settle = () => {
  for (let i = 0; i < 3; i++) globalThis.gc?.()
  return process.memoryUsage()
}
const run = async (count) => {
  for (let start = 0; start < count; start += 1000) await Promise.all(Array.from({ length: 1000 }, (_, i) => gate.decide(view(start + i))))
}
await run(10_000)
const before = settle()
const started = performance.now()
await run(100_000)
const elapsed = performance.now() - started
const after = settle()
await gate.close()
const mb = (bytes) => (bytes / 1048576).toFixed(1)
console.log(
  `6. memory, 100 000 failing decisions (${Math.round(100_000 / (elapsed / 1000))}/s): RSS ${mb(before.rss)} → ${mb(after.rss)} MB, heap ${mb(before.heapUsed)} → ${mb(after.heapUsed)} MB`,
)
