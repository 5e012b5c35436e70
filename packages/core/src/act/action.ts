import type { CompiledCheckpoint } from '../checkpoint.js'
import type { Logger } from '../logger.js'
import type { ChallengeOptions, DenyOptions } from '../options.js'
import { returnOrigin, returnUrl, safeRedirectTarget } from '../redirect.js'
import { challengeRequired, forbidden, isFormSubmission, isHtmlPageLoad, pageLocation, redirect } from '../respond.js'
import type { Eventually } from '../same-tick.js'
import type { Action, Decision, DecisionBackend, DecisionInput, RequestView } from '../types.js'

/**
 * Stage 4, act: what the adapter must do with a decision. `next()` for an allow; for a
 * review the `onReview` hook, then `next()`; for a challenge the hook, the challenge page
 * (a navigation, or a person's form post) or a 403; for a deny the block page or a 403.
 */

export const NEXT: Action = Object.freeze({ type: 'next' })
export const NONE: Action = Object.freeze({ type: 'none' })
/** The 403 of a fail-closed internal error: it reads nothing of the request, which may be what failed. */
export const INTERNAL_DENY: Action = Object.freeze({
  type: 'respond',
  status: 403,
  headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  body: JSON.stringify({ error: 'forbidden', requestId: null }),
})

export interface ActOptions<Native> {
  backends: readonly DecisionBackend[]
  challenge: ChallengeOptions<Native>
  deny: DenyOptions
  onReview: ((decision: Decision, request: Native) => unknown) | undefined
  redirectHosts: readonly string[]
  hookTimeoutMs: number
  logger: Logger
}

/** Runs a user hook for at most `timeoutMs`; its failure is logged, never thrown. */
export async function runHook(name: string, hook: () => unknown, timeoutMs: number, logger: Logger): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => {
      logger.error({ code: 'SP_HOOK_TIMEOUT', hook: name }, `${name} did not settle within ${timeoutMs} ms; Sallyport carried on.`)
      resolve(undefined)
    }, timeoutMs)
  })
  try {
    return await Promise.race([Promise.resolve().then(hook), timeout])
  } catch (error) {
    logger.error({ code: 'SP_HOOK_FAILED', hook: name, err: error }, `${name} threw; Sallyport carried on.`)
    return undefined
  } finally {
    clearTimeout(timer)
  }
}

export class Act<Native> {
  readonly #options: ActOptions<Native>
  readonly #redirectHosts: ReadonlySet<string>

  constructor(options: ActOptions<Native>) {
    this.#options = options
    this.#redirectHosts = new Set(options.redirectHosts)
  }

  /** What the adapter must do with `decision`; waits only when a hook runs. */
  act(
    decision: Decision,
    view: RequestView<Native>,
    input: DecisionInput,
    protocol: 'http' | 'https',
    checkpoint: CompiledCheckpoint<Native> | undefined,
  ): Eventually<Action> {
    const { native } = view
    const { logger, hookTimeoutMs } = this.#options
    switch (decision.verdict) {
      case 'allow':
        return NEXT
      case 'review': {
        const onReview = this.#options.onReview
        if (onReview === undefined) return view.responded() ? NONE : NEXT
        return runHook('onReview', () => onReview(decision, native), hookTimeoutMs, logger).then(() => (view.responded() ? NONE : NEXT))
      }
      case 'challenge': {
        const hook = checkpoint?.challenge ?? this.#options.challenge.hook
        if (hook !== undefined) {
          return runHook('challenge.hook', () => hook(decision, native), hookTimeoutMs, logger).then((result) => {
            if (result === 'continue') return NEXT
            return view.responded() ? NONE : challengeRequired(decision)
          })
        }
        if (view.responded()) return NONE
        if (isHtmlPageLoad(view.method, view.headers)) {
          const location = this.#pageFor('challenge', decision, input, protocol, view.url)
          return location === null ? challengeRequired(decision) : redirect(location)
        }
        // A person's form post (a login past its limit) goes to the page too: a 303, which the
        // browser follows with a GET, and back to the page the form is on to submit it again.
        if (isFormSubmission(view.method, view.headers)) {
          const location = this.#pageFor('challenge', decision, input, protocol, view.url, view.headers.referer)
          return location === null ? challengeRequired(decision) : redirect(location, 303)
        }
        return challengeRequired(decision)
      }
      case 'deny': {
        if (view.responded()) return NONE
        const location = isHtmlPageLoad(view.method, view.headers) ? this.#pageFor('deny', decision, input, protocol, view.url) : null
        return location === null ? forbidden(decision, view.headers) : redirect(location)
      }
    }
  }

  /**
   * The page and query for a challenge or block redirect, or `null` when there is none to use.
   * The visitor returns to `url`, or to `referer` when that names a page on the site.
   */
  #pageFor(
    kind: 'challenge' | 'deny',
    decision: Decision,
    input: DecisionInput,
    protocol: 'http' | 'https',
    url: string,
    referer?: string,
  ): string | null {
    const { backends, logger } = this.#options
    const backend = backends.find((candidate) => candidate.name === decision.backend)
    const page = this.#options[kind].url ?? backend?.pages?.[kind]
    if (page === undefined) return null
    const origin = returnOrigin(protocol, input.host, this.#options.redirectHosts as string[])
    if (origin === null) return null
    let query: Record<string, string> = {}
    try {
      query = backend?.pages?.query?.(decision, input) ?? {}
    } catch (error) {
      logger.error({ code: 'SP_BACKEND_FAILED', backend: backend?.name, err: error }, 'Building the page query failed.')
    }
    // The Referer is the client's word: checked like a redirect_url that arrives from outside.
    const back = (referer === undefined ? null : safeRedirectTarget(referer, origin, this.#redirectHosts)) ?? returnUrl(origin, url)
    return pageLocation(page, { ...query, redirect_url: back }, origin)
  }
}
