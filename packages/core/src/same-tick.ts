/**
 * Same-tick decisions. A decision made entirely in process (the embedded engine on its memory
 * store) is ready before the request's tick ends, and the adapter then answers in that tick, as
 * if Sallyport were not there. So each stage of the pipeline hands back `Eventually<T>`: the
 * value itself when it had nothing to wait for, a promise of it otherwise. These two functions
 * are the only places that tell the two apart; everything else is written once.
 */
export type Eventually<T> = T | Promise<T>

/**
 * Goes on with `value` now if it is ready, else when it settles. A backend may hand back
 * another thenable than a native promise: it is adopted here. `failed` handles a rejection;
 * a throw from `next` on a ready value reaches the caller as it is.
 */
export function andThen<T, R>(
  value: Eventually<T> | PromiseLike<T>,
  next: (value: T) => Eventually<R>,
  failed?: (error: unknown) => Eventually<R>,
): Eventually<R> {
  if (value instanceof Promise) return value.then(next, failed)
  if (typeof (value as { then?: unknown } | null)?.then === 'function') return Promise.resolve(value).then(next, failed)
  return next(value as T)
}

/** Every value, now if all were ready, else once all have settled. */
export function all<T>(values: Eventually<T>[]): Eventually<T[]> {
  for (const value of values) if (value instanceof Promise) return Promise.all(values)
  return values as T[]
}
