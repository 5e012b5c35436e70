import {
  type BackendVerdict,
  type DecisionBackend,
  invalidCheckpoint,
  noClientIp,
  parseJson,
  statusError,
  Transport,
} from '@sallyport/core'
import { type IpqsOptions, resolveOptions } from './options.js'
import { readLookup, toVerdict } from './reply.js'
import { checkTransaction } from './transaction.js'

export {
  DEFAULT_BASE_URL,
  DEFAULT_THRESHOLDS,
  DEFAULT_TIMEOUT_MS,
  type FlagVerdict,
  type IpqsOptions,
  type IpqsThresholds,
} from './options.js'
export { looksLikeCardNumber } from './transaction.js'

const VENDOR = 'IPQualityScore'

/**
 * IPQualityScore IP reputation (`POST /api/json/ip`) as a decision backend. The key travels
 * in the `IPQS-KEY` header and the visitor's IP in the JSON body, so neither ends up in a URL
 * that a proxy or the service might log. The `fraud_score` band and the mapped flags
 * (`bot_status`, `tor`, `recent_abuse`) give the verdict; a `success: false` reply is a failure.
 */
export function ipqs(options: IpqsOptions): DecisionBackend {
  const config = resolveOptions(options)
  const transport = new Transport({
    ...(config.maxResponseSize === undefined ? {} : { maxResponseSize: config.maxResponseSize }),
    ...(config.dispatcher === undefined ? {} : { dispatcher: config.dispatcher }),
  })
  const headers = { 'IPQS-KEY': config.key }

  return {
    name: 'ipqs',
    origin: config.endpoint.origin,
    timeoutMs: config.timeoutMs,
    async decide(input, ctx): Promise<BackendVerdict> {
      // The application's own mistake is reported whether or not a lookup would follow.
      const fromCheckpoint = input.checkpoint?.transaction
      const transaction =
        fromCheckpoint === undefined
          ? config.transaction
          : { ...config.transaction, ...checkTransaction(fromCheckpoint, (field, accepted) => invalidCheckpoint(field, accepted)) }
      // IP reputation needs an IP: without a trustworthy one there is nothing to look up.
      if (input.ip === null) throw noClientIp(VENDOR)

      const body: Record<string, unknown> = { ...transaction, ...config.parameters, ip: input.ip }
      const userAgent = input.headers['user-agent']
      if (userAgent !== undefined && userAgent !== '') body.user_agent = userAgent
      const language = input.headers['accept-language']
      if (language !== undefined && language !== '') body.user_language = language

      const response = await transport.request({ method: 'POST', url: config.endpoint, headers, json: body }, ctx)
      if (response.status < 200 || response.status > 299) throw statusError(response, VENDOR)
      return toVerdict(readLookup(parseJson(response), response), config)
    },
    close: () => transport.close(),
  }
}
