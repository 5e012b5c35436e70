import { type BackendVerdict, type DecideContext, type DecisionBackend, SallyportError, Transport } from '@sallyport/core'
import { resolveOptions, type TraceNowOptions } from './options.js'
import { refusal } from './refusal.js'
import { readTraceReply } from './reply.js'
import { type TraceBody, traceBody } from './request.js'

export { DEFAULT_BASE_URL, type TraceNowOptions } from './options.js'
export type { TraceBody } from './request.js'

/**
 * Time kept back from the deadline when asking again for complete signals, so a second call
 * that runs long ends here, with the partial verdict, before the gate's own timeout fires.
 */
const SAFETY_MS = 10

/** Waits `ms`, or rejects as soon as the decision is aborted; the timer never outlives the wait. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const stopped = () =>
      SallyportError.backend('timeout', 'The decision ended while waiting to ask TraceNow again.', { cause: signal.reason })
    if (signal.aborted) return reject(stopped())
    const onAbort = () => {
      clearTimeout(timer)
      reject(stopped())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    timer.unref()
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * TraceNow fraud traces (`POST /trace`) as a decision backend, for risk checkpoints: login,
 * signup, checkout, account changes. Each checkpoint sends its event and status with the
 * signals it has (client IP, email, phone, device token); TraceNow's verdict maps one to one,
 * `policy_triggered` becomes the reason and the enrichment objects become `signals`.
 *
 * Requests outside a checkpoint are let through without a call (reason `no_checkpoint`):
 * TraceNow judges events, not page loads. A checkpoint with no signal at all is let through
 * without a call too (reason `no_signals`, `complete: false`).
 */
export function tracenow(options: TraceNowOptions): DecisionBackend {
  const config = resolveOptions(options)
  const transport = new Transport({
    ...(config.maxResponseSize === undefined ? {} : { maxResponseSize: config.maxResponseSize }),
    ...(config.dispatcher === undefined ? {} : { dispatcher: config.dispatcher }),
  })
  const headers = { authorization: `Bearer ${config.secretKey}` }

  async function trace(body: TraceBody, ctx: DecideContext): Promise<BackendVerdict> {
    const reply = await transport.request({ method: 'POST', url: config.endpoint, headers, json: body }, ctx)
    if (reply.status < 200 || reply.status > 299) throw refusal(reply)
    // Any Set-Cookie on the reply is for Sallyport's own connection to TraceNow (say, a load
    // balancer's), never for the visitor, so none is passed on.
    return readTraceReply(reply)
  }

  /**
   * The same trace once more, after `delayMs`, as TraceNow advises when `signals_complete` is
   * false. It runs on a deadline a little short of the gate's, so if it fails or runs long the
   * partial verdict still stands.
   */
  async function askAgain(body: TraceBody, partial: BackendVerdict, delayMs: number, ctx: DecideContext): Promise<BackendVerdict> {
    await pause(delayMs, ctx.signal)
    const deadline = ctx.deadline - SAFETY_MS
    const controller = new AbortController()
    const forward = () => controller.abort(ctx.signal.reason)
    ctx.signal.addEventListener('abort', forward, { once: true })
    const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - performance.now()))
    timer.unref()
    try {
      return await trace(body, { signal: controller.signal, deadline, retries: 0 })
    } catch (error) {
      if (ctx.signal.aborted) throw error
      return partial
    } finally {
      clearTimeout(timer)
      ctx.signal.removeEventListener('abort', forward)
    }
  }

  return {
    name: 'tracenow',
    origin: config.endpoint.origin,
    ...(config.timeoutMs === undefined ? {} : { timeoutMs: config.timeoutMs }),
    async decide(input, ctx): Promise<BackendVerdict> {
      const { checkpoint } = input
      if (checkpoint === null) return { verdict: 'allow', reason: 'no_checkpoint' }
      const body = traceBody(input, checkpoint)
      if (body === null) return { verdict: 'allow', reason: 'no_signals', complete: false }

      const started = performance.now()
      const first = await trace(body, ctx)
      const wait = checkpoint.awaitCompleteSignals
      if (first.complete !== false || wait === undefined) return first
      // The first call's duration is the best guess at the second's.
      const callMs = performance.now() - started
      if (ctx.deadline - performance.now() < wait.delayMs + callMs + 2 * SAFETY_MS) return first
      return askAgain(body, first, wait.delayMs, ctx)
    },
    close: () => transport.close(),
  }
}
