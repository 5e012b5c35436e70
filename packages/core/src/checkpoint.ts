import { checkOptions } from './check-options.js'
import type { Warnings } from './logger.js'
import type { ChallengeHook, OnError } from './options.js'
import { type Shape, shape } from './shape.js'
import { pathOnly } from './skip.js'
import {
  CHECKPOINT_STATUSES,
  type Checkpoint,
  type CheckpointStatus,
  FAILURE_CLASSES,
  type FailureClass,
  type RequestView,
  VERDICTS,
  type Verdict,
} from './types.js'

/**
 * A fixed value, or a function reading it from the request (its already-parsed body, a
 * header, …). What a function returns is checked: a value of the wrong type counts as absent.
 */
export type Extractor<Native, T> = T | ((request: Native) => unknown)

export interface CheckpointSpec<Native = unknown> {
  /** What is happening: `'login'`, `'signup'`, `'checkout'`, … */
  event: string
  /** Defaults to `'attempted'`. */
  status?: Extractor<Native, CheckpointStatus>
  email?: Extractor<Native, string>
  phone?: Extractor<Native, string>
  deviceToken?: Extractor<Native, string>
  transaction?: Extractor<Native, Record<string, unknown>>
  metadata?: Extractor<Native, Record<string, string>>
  /** Verdict on backend failure at this checkpoint, e.g. `'deny'` to fail closed at checkout. Defaults to the gate's `onError`. */
  onError?: OnError
  /** Step-up hook for a challenge at this checkpoint. Defaults to the gate's `challenge.hook`. */
  challenge?: ChallengeHook<Native>
  /**
   * When the backend says its signals are partial, ask once more after a delay (default 500 ms)
   * if the budget allows; otherwise the partial verdict stands. For high-stakes events. Defaults to `false`.
   */
  awaitCompleteSignals?: boolean | { delayMs?: number }
}

export interface CompiledCheckpoint<Native> {
  readonly event: string
  extract(request: Native): Checkpoint
  /** Some field is a function of the request, which may read its body. */
  readonly readsRequest: boolean
  /** Failure classes this checkpoint maps differently from the gate. */
  readonly onError: Partial<Record<FailureClass, Verdict>> | undefined
  readonly challenge: ChallengeHook<Native> | undefined
}

const MAX_SIGNAL_LENGTH = 512
const MAX_METADATA_ENTRIES = 50

const fn = shape.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', 'a function')
const SIGNAL = `a string (at most ${MAX_SIGNAL_LENGTH} characters) or a function of the request`
const stringOrFn = shape.union([shape.string().max(MAX_SIGNAL_LENGTH), fn])
const verdict = shape.enum(VERDICTS)

/** Each field, described by what it accepts; no other field. */
const specShape = shape.strictObject({
  event: shape
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/)
    .describe('a name such as "login" (a letter, then letters, digits, "_", ".", ":" or "-", at most 64)'),
  status: shape
    .union([shape.enum(CHECKPOINT_STATUSES), fn])
    .optional()
    .describe("'attempted', 'succeeded', 'failed' or a function returning one"),
  email: stringOrFn.optional().describe(SIGNAL),
  phone: stringOrFn.optional().describe(SIGNAL),
  deviceToken: stringOrFn.optional().describe(SIGNAL),
  transaction: shape
    .union([shape.record(shape.string(), shape.unknown()), fn])
    .optional()
    .describe('an object or a function of the request'),
  metadata: shape
    .union([shape.record(shape.string(), shape.string()), fn])
    .optional()
    .describe('an object of strings or a function of the request'),
  onError: shape
    .union([verdict, shape.partialRecord(shape.enum(FAILURE_CLASSES), verdict)])
    .optional()
    .describe('a verdict or an object mapping failure classes to verdicts'),
  challenge: fn.optional().describe('a function (decision, request)'),
  awaitCompleteSignals: shape
    .union([shape.boolean(), shape.strictObject({ delayMs: shape.number().int().min(0).max(10_000).optional() })])
    .optional()
    .describe('a boolean or { delayMs?: milliseconds from 0 to 10000 }'),
} satisfies Record<keyof CheckpointSpec, Shape>)

function run<Native, T>(extractor: Extractor<Native, T> | undefined, request: Native): unknown {
  if (typeof extractor !== 'function') return extractor
  try {
    return (extractor as (request: Native) => unknown)(request) ?? undefined
  } catch {
    // A throwing extractor (say, `req.body.email` with no body parser) counts as "not provided".
    return undefined
  }
}

function text(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const trimmed = value.trim()
  return trimmed.length === 0 ? undefined : trimmed.slice(0, MAX_SIGNAL_LENGTH)
}

function plainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Validates a checkpoint spec once, when the route is declared. */
export function compileCheckpoint<Native>(spec: CheckpointSpec<Native>): CompiledCheckpoint<Native> {
  checkOptions('gate.checkpoint', specShape, spec, { prefix: 'checkpoint', expected: "a checkpoint spec such as { event: 'login', … }" })
  const onError =
    typeof spec.onError === 'string'
      ? Object.fromEntries(FAILURE_CLASSES.map((failure) => [failure, spec.onError as Verdict]))
      : spec.onError

  const { awaitCompleteSignals } = spec
  const completeSignals =
    awaitCompleteSignals === undefined || awaitCompleteSignals === false
      ? undefined
      : { delayMs: awaitCompleteSignals === true ? 500 : (awaitCompleteSignals.delayMs ?? 500) }

  const extractors = [spec.status, spec.email, spec.phone, spec.deviceToken, spec.transaction, spec.metadata]
  return {
    event: spec.event,
    onError,
    challenge: spec.challenge,
    readsRequest: extractors.some((extractor) => typeof extractor === 'function'),
    extract(request) {
      const status = run(spec.status, request)
      const checkpoint: Checkpoint = {
        event: spec.event,
        status: CHECKPOINT_STATUSES.includes(status as CheckpointStatus) ? (status as CheckpointStatus) : 'attempted',
      }
      if (completeSignals !== undefined) checkpoint.awaitCompleteSignals = completeSignals
      const email = text(run(spec.email, request))
      if (email !== undefined) checkpoint.email = email
      const phone = text(run(spec.phone, request))
      if (phone !== undefined) checkpoint.phone = phone
      const deviceToken = text(run(spec.deviceToken, request))
      if (deviceToken !== undefined) checkpoint.deviceToken = deviceToken
      const transaction = run(spec.transaction, request)
      if (plainObject(transaction)) checkpoint.transaction = transaction
      const metadata = run(spec.metadata, request)
      if (plainObject(metadata)) {
        const entries = Object.entries(metadata).filter(([, value]) => typeof value === 'string')
        checkpoint.metadata = Object.fromEntries(entries.slice(0, MAX_METADATA_ENTRIES)) as Record<string, string>
      }
      return checkpoint
    },
  }
}

/**
 * The request declares a body that no parser has read, and the framework holds nothing
 * parsed from it (Express's `req.body`, Koa's `ctx.request.body`).
 */
function bodyUnparsed(view: RequestView<unknown>): boolean {
  const { headers } = view
  if (headers['transfer-encoding'] === undefined && !(Number(headers['content-length']) > 0)) return false
  const { body } = view
  // Something is there: a parser ran, or the app put it there.
  if (body !== undefined && !(typeof body === 'object' && body !== null && Object.keys(body).length === 0)) return false
  // An empty object may be a parser's answer to an empty JSON document, or all Express 4's
  // parsers leave for a content type they do not read: only the stream tells them apart.
  return view.bodyUnread?.() ?? body === undefined
}

/** Characters of the request's content type a warning repeats at most. */
const MAX_LOGGED_CONTENT_TYPE = 100
const MAX_LOGGED_PATH = 256

/**
 * A checkpoint placed before the body parser gets an empty body: its extractors return
 * nothing, and the backend judges the request without the email it was meant to see, with no
 * error anywhere. Says so once per gate. Checked only at checkpoints with an extractor, and
 * only until it has been said.
 */
export function warnIfBodyUnparsed<Native>(view: RequestView<Native>, checkpoint: CompiledCheckpoint<Native>, warnings: Warnings): void {
  if (!checkpoint.readsRequest || !warnings.pending('SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER') || !bodyUnparsed(view)) return
  const path = pathOnly(view.url).slice(0, MAX_LOGGED_PATH)
  // The client's words, echoed into a log line: bounded like the path.
  const contentType = view.headers['content-type']?.split(';')[0]?.trim().toLowerCase().slice(0, MAX_LOGGED_CONTENT_TYPE) || null
  warnings.once(
    'SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER',
    `${view.method} ${path} reached the \`${checkpoint.event}\` checkpoint with a body${contentType === null ? '' : ` (${contentType})`} that no body parser had read, so extractors that read the body got nothing from it. Put the body parser before the checkpoint: in Express, \`app.post(path, express.json(), gate.checkpoint(…), …)\` (or \`express.urlencoded()\` for forms); in Koa, \`app.use(bodyParser())\` ahead of the route.`,
    { method: view.method, path, event: checkpoint.event, contentType },
  )
}
