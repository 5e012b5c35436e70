import type { Answer } from '../ask/calls.js'
import { SallyportError } from '../errors.js'
import { checkSetCookie } from '../set-cookie.js'
import { type Decision, type FailureClass, VERDICTS, type Verdict } from '../types.js'

/**
 * Stage 3, conclude: the backends' answers become one {@link Decision}. The strictest verdict
 * wins (a failed call counts as its failure policy says), a tie goes to a backend that
 * answered, and only the Set-Cookies each backend may set reach the visitor.
 */

/** How strict each verdict is: its place in {@link VERDICTS}, least strict first. */
export const STRICTNESS = Object.fromEntries(VERDICTS.map((verdict, index) => [verdict, index])) as Record<Verdict, number>

/** A failure policy: the verdict for each failure class. */
export type FailurePolicy = Record<FailureClass, Verdict>

/** The strictest verdict a failure policy gives any failure class: what a failure of unknown kind gets. */
export function strictestFallback(onError: FailurePolicy): Verdict {
  let strictest: Verdict = 'allow'
  for (const failure in onError) {
    const verdict = onError[failure as FailureClass]
    if (STRICTNESS[verdict] > STRICTNESS[strictest]) strictest = verdict
  }
  return strictest
}

/**
 * A decision no backend's reply made: a skip, a route the middleware serves, a client already
 * gone, an internal failure. `wouldBe` is the verdict; monitor mode is the caller's to apply.
 */
export function decisionWithoutReply(
  verdict: Verdict,
  wouldBe: Verdict,
  reason: string,
  source: Decision['source'],
  backend: string,
  ip: string | null,
  latencyMs: number,
  setCookies: string[] = [],
): Decision {
  return { verdict, wouldBe, reason, source, backend, ip, requestId: null, latencyMs, complete: source === 'skip', signals: {}, setCookies }
}

/** Why a Set-Cookie from a backend was dropped. */
export type CookieRejected = (backend: string, reason: string, cookie: string | null) => void

export interface Conclusion {
  /** The answers, one per backend, in the order of `allowedCookies`. */
  answers: readonly Answer[]
  onError: FailurePolicy
  /** Monitor mode: the decision allows, and says in `wouldBe` what it would have done. */
  monitor: boolean
  ip: string | null
  /** The host the request named: a backend's cookie may not claim another domain. */
  host: string | null
  latencyMs: number
  /** The cookies each backend (by index) may set. */
  allowedCookies: ReadonlyArray<ReadonlySet<string>>
  cookieRejected: CookieRejected
}

/** Adds a backend's acceptable Set-Cookies to `into`. */
function keepCookies(answer: Answer, allowed: ReadonlySet<string>, host: string | null, into: string[], rejected: CookieRejected): void {
  if (!answer.ok || answer.reply.setCookies === undefined) return
  for (const value of answer.reply.setCookies) {
    const check =
      typeof value === 'string'
        ? checkSetCookie(value, allowed, host, into.length)
        : ({ ok: false, reason: 'malformed', name: null } as const)
    if (check.ok) into.push(value)
    else rejected(answer.backend.name, check.reason, check.name)
  }
}

const NO_COOKIES: ReadonlySet<string> = new Set()

/** The answers, concluded. */
export function conclude({ answers, onError, monitor, ip, host, latencyMs, allowedCookies, cookieRejected }: Conclusion): Decision {
  let winner = answers[0] as Answer
  let winnerVerdict: Verdict = 'allow'
  let complete = true
  const setCookies: string[] = []
  const perBackend: Record<string, unknown> | undefined = answers.length > 1 ? {} : undefined
  for (let index = 0; index < answers.length; index++) {
    const answer = answers[index] as Answer
    const verdict = answer.ok ? answer.reply.verdict : onError[answer.failure]
    // On a tie, a backend that answered explains the decision better than one that fell back.
    const stricter = STRICTNESS[verdict] > STRICTNESS[winnerVerdict]
    const tieWithBetterSource = STRICTNESS[verdict] === STRICTNESS[winnerVerdict] && answer.ok && !winner.ok
    if (index === 0 || stricter || tieWithBetterSource) {
      winner = answer
      winnerVerdict = verdict
    }
    if (answer.ok && answer.reply.complete === false) complete = false
    if (answer.ok && answer.reply.setCookies !== undefined) {
      keepCookies(answer, allowedCookies[index] ?? NO_COOKIES, host, setCookies, cookieRejected)
    }
    if (perBackend !== undefined) {
      perBackend[answer.backend.name] = answer.ok
        ? { verdict, source: answer.cached ? 'cache' : 'backend', reason: answer.reply.reason ?? null, signals: answer.reply.signals ?? {} }
        : { verdict, source: 'fallback', reason: answer.reason ?? answer.failure }
    }
  }
  const decision: Decision = {
    verdict: monitor ? 'allow' : winnerVerdict,
    wouldBe: winnerVerdict,
    reason: winner.ok ? (winner.reply.reason ?? null) : (winner.reason ?? winner.failure),
    source: winner.ok ? (winner.cached ? 'cache' : 'backend') : 'fallback',
    backend: winner.backend.name,
    ip,
    requestId: winner.ok ? (winner.reply.requestId ?? null) : null,
    latencyMs,
    complete,
    signals: perBackend ?? (winner.ok ? (winner.reply.signals ?? {}) : {}),
    setCookies,
  }
  // Checkpoint data the backend cannot accept is the app's mistake: the request is refused
  // whatever the failure policy says, and the error goes to the framework.
  const invalid = answers.find(isInvalidCheckpoint)
  if (invalid !== undefined) {
    decision.verdict = monitor ? 'allow' : 'deny'
    decision.wouldBe = 'deny'
    decision.reason = 'invalid_checkpoint'
    decision.source = 'fallback'
    decision.backend = invalid.backend.name
  }
  return decision
}

/** The answer that failed on checkpoint data its backend cannot accept, if any. */
export function invalidCheckpointError(answers: readonly Answer[]): Error | undefined {
  const invalid = answers.find(isInvalidCheckpoint)
  return invalid === undefined || invalid.ok ? undefined : (invalid.error as Error)
}

function isInvalidCheckpoint(answer: Answer): boolean {
  return !answer.ok && answer.error instanceof SallyportError && answer.error.code === 'SP_INVALID_CHECKPOINT'
}
