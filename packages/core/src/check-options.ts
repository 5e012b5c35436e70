import { invalidOption, invalidOptions, isUnsetKey, unknownOption, unsetKey } from './errors.js'
import { formatPath, type Infer, type Issue, type Shape } from './shape.js'

export interface OptionCheck {
  /**
   * Keys the package's README reads from environment variables, by option:
   * `{ secretKey: 'TRUSTED_ACCOUNTS_SECRET_KEY' }`. When the options are refused and one of
   * these is unset or empty, the error says so and names the variable (see `unsetKey`).
   */
  env?: Readonly<Record<string, string>>
  /** What the options as a whole must be, worded to follow "expected". Defaults to `'an object'`. */
  expected?: string
  /** Put before every option's name: `'checkpoint'` names `checkpoint.event`. Defaults to none. */
  prefix?: string
}

/** Longest option name a message repeats: an unknown key is the caller's text. */
const MAX_NAME = 64

function name(segment: PropertyKey): PropertyKey {
  return typeof segment === 'string' ? segment.slice(0, MAX_NAME) : segment
}

/**
 * Checks a factory's options against their shape, when the factory is called, and returns
 * them typed. What each option accepts is the `.describe()` text nearest the problem (or the
 * shape's own wording). Throws `SP_INVALID_OPTION`, `err.option` naming the option down to
 * the field (`challenge.url`; an array, not its item: `redirectHosts`), with one of these messages,
 * never the value:
 *
 * - ``Invalid option `challenge.url` for guard(): expected an http(s) URL.``
 * - ``Unknown option `x` for trustedAccounts(): accepted options are a, b, c.``
 * - ``Invalid options for trustedAccounts(): expected an object.``
 * - ``Invalid option `secretKey` for trustedAccounts(): it is not set; set TRUSTED_ACCOUNTS_SECRET_KEY or pass secretKey.``
 *   (a key named in `env` that is unset or empty, whatever else is wrong)
 */
export function checkOptions<S extends Shape>(factory: string, schema: S, input: unknown, check: OptionCheck = {}): Infer<S> {
  const { prefix = '' } = check
  const whole = prefix === '' ? 'options' : prefix
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalidOptions(factory, check.expected ?? 'an object', whole)
  const result = schema.safeParse(input)
  if (result.success) return result.data
  if (check.env !== undefined) {
    for (const [option, variable] of Object.entries(check.env)) {
      const value = Object.hasOwn(input, option) ? (input as Record<string, unknown>)[option] : undefined
      if (isUnsetKey(value)) throw unsetKey(factory, formatPath([option], prefix), variable, value)
    }
  }
  const { error } = result
  const issue = error.issues[0] as Issue
  // Named down to the field, or to the array a bad item is in: what the array accepts is
  // what its `.describe()` says.
  const item = issue.path.findIndex((segment) => typeof segment === 'number')
  const path = (item < 0 ? issue.path : issue.path.slice(0, item)).map(name)
  if (issue.code === 'unrecognized_keys' && item < 0) {
    throw unknownOption(factory, formatPath([...path, name(issue.keys?.[0] ?? '')], prefix), issue.known ?? [], error)
  }
  if (path.length === 0) throw invalidOptions(factory, issue.message, whole, error)
  throw invalidOption(formatPath(path, prefix), issue.message, error, factory)
}
