import { SallyportError } from './errors.js'
import { type BackendVerdict, VERDICTS } from './types.js'

const VERDICT_SET: ReadonlySet<unknown> = new Set(VERDICTS)

/** Longest `reason` or `requestId` a reply may carry: they end up in logs, pages and headers' neighbours. */
const MAX_REPLY_TEXT = 256

function optionalText(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.length <= MAX_REPLY_TEXT)
}

function allStrings(values: unknown): boolean {
  if (!Array.isArray(values)) return false
  for (const value of values) if (typeof value !== 'string') return false
  return true
}

/**
 * A backend's reply is checked like any untrusted input, every field of it: a bad shape is an
 * `invalid` failure that follows `onError`, never a verdict that breaks later (a numeric
 * request id on the block page, a `setCookies` that is not a list) and falls through to allow.
 */
export function checkReply(reply: unknown, backend: string): BackendVerdict {
  if (typeof reply !== 'object' || reply === null) throw SallyportError.backend('invalid', `${backend} returned no reply object.`)
  const { verdict, reason, requestId, complete, signals, setCookies } = reply as Record<keyof BackendVerdict, unknown>
  const problem = !VERDICT_SET.has(verdict)
    ? 'verdict'
    : !optionalText(reason)
      ? 'reason'
      : !optionalText(requestId)
        ? 'requestId'
        : complete !== undefined && typeof complete !== 'boolean'
          ? 'complete'
          : signals !== undefined && (typeof signals !== 'object' || signals === null || Array.isArray(signals))
            ? 'signals'
            : setCookies !== undefined && !allStrings(setCookies)
              ? 'setCookies'
              : null
  if (problem !== null) throw SallyportError.backend('invalid', `${backend} returned a reply whose \`${problem}\` is not valid.`)
  return reply as BackendVerdict
}
