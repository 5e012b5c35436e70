/**
 * A request that makes no backend call: a path (`'/health'` matches it and everything
 * under `/health/`), a RegExp tested against the path, or a function of the request.
 */
export type SkipRule<Native> = string | RegExp | ((request: Native) => boolean)

/** Returns the name of the rule that matched, or `null`. `path` is already without query and fragment ({@link pathOnly}). */
export type SkipTest<Native> = (method: string, path: string, request: Native) => string | null

/**
 * Files a browser fetches by the dozen and no bot check needs to see. Data formats an API
 * could answer in (`.json`, `.xml`) are deliberately absent: skipping them would open a bypass.
 * An extension alone proves nothing (`/admin/users.css` can be a dynamic route), so it only
 * counts under the `staticPaths` the application says it serves files from.
 */
const STATIC_ASSET =
  /\.(?:css|js|mjs|map|png|jpe?g|gif|svg|ico|webp|avif|bmp|woff2?|ttf|otf|eot|mp4|webm|mp3|wav|ogg|pdf|txt|webmanifest)$/i

/**
 * Dot segments, encoded dots and slashes, and backslashes: a path that is only textually under
 * a static prefix (`/assets/../admin/users.css`) may be routed, or normalised by a proxy, elsewhere.
 */
const AMBIGUOUS_PATH = /(?:^|\/)\.{1,2}(?:\/|$)|%2e|%2f|%5c|\\/i

/** A `staticPaths` entry: a plain absolute path, without dot segments, query or encoding. */
export const STATIC_PATH_PREFIX = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9\-._~!$&'()*+,;=:@]*)+$/

/** A file under one of `prefixes` (each ending in `/`), fetched with GET or HEAD. */
function isStaticAsset(method: string, path: string, prefixes: readonly string[]): boolean {
  if ((method !== 'GET' && method !== 'HEAD') || !STATIC_ASSET.test(path) || AMBIGUOUS_PATH.test(path)) return false
  for (const prefix of prefixes) if (path.startsWith(prefix)) return true
  return false
}

/**
 * The path without its query string or fragment. A client may send `#` in the request
 * line (`GET /admin#.css`); the frameworks route on what comes before it, so every check
 * here must too, or `/admin#.css` would pass as a static asset.
 */
export function pathOnly(url: string): string {
  let end = url.length
  const query = url.indexOf('?')
  if (query >= 0) end = query
  const fragment = url.indexOf('#')
  if (fragment >= 0 && fragment < end) end = fragment
  return end === url.length ? url : url.slice(0, end)
}

/** `staticPaths` are the path prefixes the application serves files under (`['/assets']`); none by default. */
export function compileSkip<Native>(
  rules: SkipRule<Native> | SkipRule<Native>[] | undefined,
  staticPaths: readonly string[] = [],
): SkipTest<Native> {
  const staticPrefixes = staticPaths.map((prefix) => (prefix.endsWith('/') ? prefix : `${prefix}/`))
  const list = rules === undefined ? [] : Array.isArray(rules) ? rules : [rules]
  const prefixes = list.filter((rule): rule is string => typeof rule === 'string')
  const patterns = list.filter((rule): rule is RegExp => rule instanceof RegExp)
  const functions = list.filter((rule): rule is (request: Native) => boolean => typeof rule === 'function')
  return (method, path, request) => {
    if (method === 'OPTIONS') return 'options'
    if (staticPrefixes.length > 0 && isStaticAsset(method, path, staticPrefixes)) return 'static'
    for (const prefix of prefixes) {
      if (path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) return 'rule'
    }
    for (const pattern of patterns) {
      pattern.lastIndex = 0
      if (pattern.test(path)) return 'rule'
    }
    for (const test of functions) {
      // A throwing rule is the app's bug; checking the request is the safe side of it.
      try {
        if (test(request)) return 'rule'
      } catch {}
    }
    return null
  }
}
