import { checkOptions, shape, type TransportOptions, vendorOptions } from '@sallyport/core'
import type { Dispatcher } from 'undici'

export interface TraceNowOptions {
  /**
   * Secret key (`tn_live_…`), sent as a Bearer token; never logged, never in a URL or an error.
   * Typed to take `process.env.…` as it is: unset or empty, `tracenow()` names `TRACENOW_SECRET_KEY`.
   */
  secretKey: string | undefined
  /** API base URL, path prefix kept (`https://proxy.example/tracenow` calls `…/tracenow/trace`). Defaults to `https://api.tracenow.io`. */
  baseUrl?: string
  /**
   * Budget in ms, used when the gate sets none. TraceNow recommends none, so the gate's (300 ms) applies.
   * Give checkpoints that set `awaitCompleteSignals` room for the delay plus a second call.
   */
  timeoutMs?: number
  /** Largest reply accepted, in bytes. Defaults to 256 KiB. */
  maxResponseSize?: number
  /** An undici dispatcher (Agent, Pool, MockAgent) instead of Sallyport's own keep-alive pool. Defaults to none. */
  dispatcher?: Dispatcher
  /**
   * Keep-alive connections to TraceNow, 1–4096. A decision that finds them all busy waits inside its budget;
   * one still waiting at the deadline falls back with reason `pool_saturated`. Defaults to 128.
   */
  connections?: number
}

export const DEFAULT_BASE_URL = 'https://api.tracenow.io'

const optionsShape = shape.strictObject({
  secretKey: shape
    .string()
    .regex(/^[\x21-\x7e]+$/) // printable ASCII without spaces: all an Authorization header can carry
    .describe('the secret key (tn_…) as a non-empty string without spaces')
    // The publishable key is made for the browser's /identify call; /trace needs the secret one.
    .refine((key) => !key.startsWith('pk_'), 'the secret key (tn_…), not the publishable key (pk_…), which belongs in the browser'),
  baseUrl: shape
    .url({ protocol: /^https?$/ })
    .refine((value) => {
      const url = new URL(value)
      return url.username === '' && url.password === '' && !/[?#]/.test(value)
    })
    .describe('an http(s) URL such as "https://api.tracenow.io", without credentials, query or fragment')
    .optional(),
  ...vendorOptions,
})

/** The options, checked once when `tracenow()` is called: a bad one throws `SP_INVALID_OPTION` naming it. */
export function resolveOptions(options: TraceNowOptions) {
  const expected = `an object with ${Object.keys(optionsShape.shape).join(', ')}`
  const checked = checkOptions('tracenow', optionsShape, options, { env: { secretKey: 'TRACENOW_SECRET_KEY' }, expected })
  const { secretKey, baseUrl = DEFAULT_BASE_URL, timeoutMs, ...transport } = checked
  // `{baseUrl}/trace`, keeping any path prefix of the base URL.
  const endpoint = new URL(baseUrl)
  endpoint.pathname = `${endpoint.pathname.replace(/\/+$/, '')}/trace`
  // The transport reads each of these with a default for `undefined`.
  return { secretKey, endpoint, timeoutMs, transport: transport as TransportOptions }
}
