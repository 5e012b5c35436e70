import { type BackendVerdict, type CheckpointStatus, type DecisionBackend, httpVendor, pause, within } from '@sallyport/core'
import { resolveOptions, type TraceNowOptions } from './options.js'
import { refusal } from './refusal.js'
import { readTraceReply } from './reply.js'

export { DEFAULT_BASE_URL, type TraceNowOptions } from './options.js'

/** The JSON body of `POST /trace`. Absent signals are left out, never sent as `null`. */
export interface TraceBody {
  event: string
  status: CheckpointStatus
  ip?: string
  email?: string
  phone?: string
  device_token?: string
}

/** What `/identify` hands the browser; anything else (say, "undefined" from a failed browser step) is left out, as TraceNow asks. */
const DEVICE_TOKEN = /^dt_[A-Za-z0-9._~+/=-]+$/
/** Kept back from the deadline for a second call, so that it ends, failed or not, before the gate's timeout. */
const SAFETY_MS = 10
/** `complete: false`, yet given without a call: there is nothing to ask again. */
const NO_SIGNALS: BackendVerdict = Object.freeze({ verdict: 'allow', reason: 'no_signals', complete: false })

/**
 * TraceNow fraud traces (`POST /trace`) as a decision backend, for risk checkpoints: login, signup, checkout,
 * account changes. Each checkpoint sends its event and status with the signals it has (client IP, email, phone,
 * device token); the verdict maps one to one, `policy_triggered` becomes the reason, the enrichment `signals`.
 *
 * Requests outside a checkpoint are let through without a call (reason `no_checkpoint`): TraceNow judges events,
 * not page loads. So is a checkpoint without a single signal (reason `no_signals`, `complete: false`).
 */
export function tracenow(options: TraceNowOptions): DecisionBackend {
  const { secretKey, endpoint, timeoutMs, transport } = resolveOptions(options)
  const headers = { authorization: `Bearer ${secretKey}` }
  const backend = httpVendor({
    name: 'tracenow',
    label: 'TraceNow',
    expected: 'verdict (allow, challenge or deny)',
    endpoint,
    transport,
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
    // Set-Cookie on a reply is for Sallyport's own connection to TraceNow (a load balancer's, say), never the visitor's.
    forwardSetCookie: false,
    refusal,
    request({ checkpoint, ip }) {
      if (checkpoint === null) return { verdict: 'allow', reason: 'no_checkpoint' }
      const body: TraceBody = { event: checkpoint.event, status: checkpoint.status }
      if (ip !== null) body.ip = ip
      if (checkpoint.email !== undefined) body.email = checkpoint.email
      if (checkpoint.phone !== undefined) body.phone = checkpoint.phone
      if (checkpoint.deviceToken !== undefined && DEVICE_TOKEN.test(checkpoint.deviceToken)) body.device_token = checkpoint.deviceToken
      // TraceNow requires at least one signal.
      const signal = body.ip ?? body.email ?? body.phone ?? body.device_token
      return signal === undefined ? NO_SIGNALS : { headers, json: body }
    },
    verdict: (json, reply) => readTraceReply(json, reply.status),
  })

  return {
    ...backend,
    async decide(input, ctx): Promise<BackendVerdict> {
      const started = performance.now()
      const first = await backend.decide(input, ctx)
      const wait = input.checkpoint?.awaitCompleteSignals
      if (first === NO_SIGNALS || first.complete !== false || wait === undefined) return first
      // TraceNow advises asking again after a delay; only when the budget has room for the delay
      // and a second call, whose best estimate is the first one's duration.
      const callMs = performance.now() - started
      if (ctx.deadline - performance.now() < wait.delayMs + callMs + 2 * SAFETY_MS) return first
      await pause(wait.delayMs, ctx, 'The decision ended while waiting to ask TraceNow again.')
      try {
        return await within(ctx, ctx.deadline - SAFETY_MS, async (inner) => backend.decide(input, inner))
      } catch (error) {
        // A second call that fails or runs long leaves the partial verdict standing.
        if (ctx.signal.aborted) throw error
        return first
      }
    },
  }
}
