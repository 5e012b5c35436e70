import type { Checkpoint, CheckpointStatus, DecisionInput } from '@sallyport/core'

/** The JSON body of `POST /trace`. Absent signals are left out, never sent as `null`. */
export interface TraceBody {
  event: string
  status: CheckpointStatus
  ip?: string
  email?: string
  phone?: string
  device_token?: string
}

/**
 * What `/identify` hands the browser: `dt_` and a signed token. Anything else in the field (an
 * empty form value, the text "undefined" from a failed browser step) is not a token; TraceNow
 * asks to omit the token then rather than block the user, so it is left out.
 */
const DEVICE_TOKEN = /^dt_[A-Za-z0-9._~+/=-]+$/

/** The trace body for a checkpoint, or `null` when it carries none of the signals TraceNow needs. */
export function traceBody(input: DecisionInput, checkpoint: Checkpoint): TraceBody | null {
  const body: TraceBody = { event: checkpoint.event, status: checkpoint.status }
  if (input.ip !== null) body.ip = input.ip
  if (checkpoint.email !== undefined) body.email = checkpoint.email
  if (checkpoint.phone !== undefined) body.phone = checkpoint.phone
  if (checkpoint.deviceToken !== undefined && DEVICE_TOKEN.test(checkpoint.deviceToken)) body.device_token = checkpoint.deviceToken
  const hasSignal = body.ip !== undefined || body.email !== undefined || body.phone !== undefined || body.device_token !== undefined
  return hasSignal ? body : null
}
