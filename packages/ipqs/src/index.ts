import { type DecisionBackend, httpVendor, invalidCheckpoint, noClientIp } from '@sallyport/core'
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

/**
 * IPQualityScore IP reputation (`POST /api/json/ip`) as a decision backend. The key travels
 * in the `IPQS-KEY` header and the visitor's IP in the JSON body, so neither ends up in a URL
 * that a proxy or the service might log. The `fraud_score` band and the mapped flags
 * (`bot_status`, `tor`, `recent_abuse`) give the verdict; a `success: false` reply is a failure.
 */
export function ipqs(options: IpqsOptions): DecisionBackend {
  const config = resolveOptions(options)
  const headers = { 'IPQS-KEY': config.key }

  return httpVendor({
    name: 'ipqs',
    label: 'IPQualityScore',
    endpoint: config.endpoint,
    timeoutMs: config.timeoutMs,
    transport: config.transport,
    request(input) {
      // The application's own mistake is reported whether or not a lookup would follow.
      const fromCheckpoint = input.checkpoint?.transaction
      const transaction = fromCheckpoint === undefined ? {} : checkTransaction(fromCheckpoint, invalidCheckpoint)
      // IP reputation needs an IP: without a trustworthy one there is nothing to look up.
      if (input.ip === null) throw noClientIp('IPQualityScore')

      const json: Record<string, unknown> = { ...config.transaction, ...transaction, ...config.parameters, ip: input.ip }
      const userAgent = input.headers['user-agent']
      if (userAgent !== undefined && userAgent !== '') json.user_agent = userAgent
      const language = input.headers['accept-language']
      if (language !== undefined && language !== '') json.user_language = language
      return { headers, json }
    },
    verdict: (json, reply) => toVerdict(readLookup(json, reply), config),
  })
}
