import type { BackendVerdict, DecideContext, DecisionBackend, DecisionInput } from './types.js'

/** A value now, or a promise of it when producing it has to wait. */
export type MaybePromise<T> = T | Promise<T>

type DecideNow = (input: DecisionInput, ctx: DecideContext) => MaybePromise<BackendVerdict>

const decidersNow = new WeakMap<DecisionBackend['decide'], DecideNow>()

/**
 * Pairs a backend's public `decide` with a version that answers without a promise when none
 * of its work waits (the embedded engine's rules). The gate uses it so a local decision, and
 * the adapter's answer, happen in the same tick as the request. The pairing is keyed by the
 * `decide` function itself: a wrapper that replaces `decide` (to log, say) is called as written.
 */
export function answersNow<T extends DecisionBackend['decide']>(decide: T, now: DecideNow): T {
  decidersNow.set(decide, now)
  return decide
}

/** The same-tick version of this backend's `decide`, if it has one. */
export function decideNowOf(backend: DecisionBackend): DecideNow | undefined {
  return decidersNow.get(backend.decide)
}

/** True for promises and other thenables: what a backend or hook hands back may be either. */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}
