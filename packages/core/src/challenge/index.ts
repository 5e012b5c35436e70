import { randomBytes, randomInt } from 'node:crypto'
import { type Challenge, createChallenge, verifySolution } from 'altcha-lib'
import { deriveKey } from 'altcha-lib/algorithms/sha'
import { checkOptions } from '../check-options.js'
import { invalidOption } from '../errors.js'
import type { WarningCode } from '../logger.js'
import { safeRedirectTarget } from '../redirect.js'
import { type Infer, type Shape, shape } from '../shape.js'
import { type Store, storeShape } from '../store.js'
import type { BackendRoutes, DecisionInput, ServedRequest, ServedResponse } from '../types.js'
import { CLEARANCE_COOKIE, clearanceBinding, issueClearance, verifyClearance } from './clearance.js'
import { type ClearanceCheck, clearedElsewhere, ephemeralSecret, registerCheck } from './keys.js'
import { challengePage, failurePage } from './page.js'

export { CLEARANCE_COOKIE, clearanceBinding, issueClearance, verifyClearance } from './clearance.js'

export interface ChallengeServiceOptions {
  /**
   * HMAC secret for challenges and clearances. Defaults to `SALLYPORT_SECRET`, else a random one
   * made once per process and shared by every service without a secret (with a warning).
   */
  secret?: string
  /** Where used challenges are remembered, so one solution clears one visitor once. */
  store: Store
  /** Proof-of-work size: the solver tries on average half this many hashes. Defaults to 50 000 (well under a second in a browser). */
  difficulty?: number
  /** How long a clearance lasts, in ms. Defaults to 30 minutes. */
  clearanceTtlMs?: number
  /** URL prefix of the challenge routes. Defaults to `/.sallyport/`. */
  prefix?: string
  /** Clock, for tests. Defaults to `Date.now`. */
  now?: () => number
}

export interface ChallengeService {
  readonly pagePath: string
  readonly routes: BackendRoutes
  readonly warnings: ReadonlyArray<{ code: WarningCode; message: string }>
  /**
   * The request holds a valid clearance for its network and browser, issued by this service
   * or by another one alive in this process (a second gate's engine, whatever its secret).
   */
  isCleared(input: DecisionInput): boolean
  close(): Promise<void>
}

const CHALLENGE_TTL_S = 300
const MAX_PAYLOAD = 4096

const payloadSchema = shape.object({
  challenge: shape.object({
    // Loose, and passed on as sent: the signature covers every parameter.
    parameters: shape.looseObject({
      algorithm: shape.literal('SHA-256'),
      nonce: shape.string().regex(/^[0-9a-f]{32}$/),
      salt: shape.string().regex(/^[0-9a-f]{32}$/),
      cost: shape.literal(1),
      keyLength: shape.literal(32),
      keyPrefix: shape.string().regex(/^[0-9a-f]{2,64}$/),
      expiresAt: shape.number().int(),
      data: shape.object({ binding: shape.string().max(64) }),
    }),
    signature: shape.string().regex(/^[0-9a-f]{64}$/),
  }),
  solution: shape.object({
    counter: shape.number().int().min(0).max(0xffffffff),
    derivedKey: shape.string().regex(/^[0-9a-f]{64}$/),
    time: shape.number().optional(),
  }),
})

/** The options `localPolicies()` passes on, checked there too so its errors name it. */
export const challengeOptionShapes = {
  secret: shape.string().min(32).optional().describe('a string of at least 32 characters (e.g. 32 random bytes, hex-encoded)'),
  difficulty: shape.number().int().min(1).max(10_000_000).optional().describe('an integer from 1 to 10000000'),
  clearanceTtlMs: shape.number().int().min(1000).optional().describe('an integer of at least 1000 ms'),
}

const optionsShape = shape.strictObject({
  ...challengeOptionShapes,
  store: storeShape.describe('a store with increment(), get() and delete()'),
  prefix: shape
    .string()
    .regex(/^\/[A-Za-z0-9._~-]+\/$/)
    .optional()
    .describe('a path such as "/.sallyport/"'),
  now: shape
    .custom<() => number>((value) => typeof value === 'function')
    .optional()
    .describe('a function returning the time in epoch ms'),
} satisfies Record<keyof ChallengeServiceOptions, Shape>)

function resolveSecret(secret: string | undefined): { secret: string; ephemeral: boolean } {
  if (secret !== undefined) return { secret, ephemeral: false }
  const fromEnv = process.env.SALLYPORT_SECRET
  if (fromEnv !== undefined && fromEnv.length > 0) {
    if (fromEnv.length < 32) throw invalidOption('SALLYPORT_SECRET', 'at least 32 characters')
    return { secret: fromEnv, ephemeral: false }
  }
  return { secret: ephemeralSecret(), ephemeral: true }
}

/** A short, non-reversible tag of what a challenge is issued for, signed into it. */
function bindingTag(secret: string, binding: string): string {
  return issueClearance(secret, binding, 0).slice(-32)
}

/**
 * The self-hosted challenge: a page that runs a proof of work in the browser, a verify
 * endpoint that checks it (altcha-lib creates and verifies the challenge), and the
 * signed clearance cookie a solution earns.
 */
export function createChallengeService(options: ChallengeServiceOptions): ChallengeService {
  const checked = checkOptions('createChallengeService', optionsShape, options)
  const { secret, ephemeral } = resolveSecret(checked.secret)
  const prefix = checked.prefix ?? '/.sallyport/'
  const difficulty = checked.difficulty ?? 50_000
  const clearanceTtlMs = checked.clearanceTtlMs ?? 30 * 60_000
  const now = checked.now ?? Date.now
  const pagePath = `${prefix}challenge`
  const verifyPath = `${prefix}verify`
  const { store } = checked

  const warnings: Array<{ code: WarningCode; message: string }> = []
  if (ephemeral) {
    warnings.push({
      code: 'SP_WARN_EPHEMERAL_SECRET',
      message:
        'No `secret` or SALLYPORT_SECRET is set, so challenge clearances use a random key, made once for this process: they will not survive a restart or work across instances.',
    })
  }

  function returnTarget(request: ServedRequest, candidate: string | null): string {
    if (request.origin === null) return '/'
    return (candidate === null ? null : safeRedirectTarget(candidate, request.origin, request.redirectHosts)) ?? `${request.origin}/`
  }

  function html(status: number, body: string, nonce: string, formTargets = "'self'"): ServedResponse {
    return {
      status,
      headers: {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; form-action ${formTargets}; base-uri 'none'; frame-ancestors 'none'`,
        'referrer-policy': 'no-referrer',
        'x-content-type-options': 'nosniff',
      },
      body,
    }
  }

  async function page(request: ServedRequest): Promise<ServedResponse> {
    const redirectUrl = returnTarget(request, request.query.get('redirect_url'))
    const binding = bindingTag(secret, clearanceBinding(request.ip, request.headers['user-agent']))
    const challenge: Challenge = await createChallenge({
      algorithm: 'SHA-256',
      cost: 1,
      counter: randomInt(difficulty),
      deriveKey,
      hmacSignatureSecret: secret,
      expiresAt: Math.floor(now() / 1000) + CHALLENGE_TTL_S,
      data: { binding },
    })
    const nonce = randomBytes(16).toString('base64')
    // The verify post answers with a redirect; browsers apply form-action to it, so the
    // allowed return hosts must be listed too.
    const formTargets = ["'self'", ...[...request.redirectHosts].flatMap((host) => [`https://${host}`, `http://${host}`])].join(' ')
    return html(
      200,
      challengePage({ challenge, max: difficulty, verifyPath, redirectUrl, nonce, failed: request.query.has('failed') }),
      nonce,
      formTargets,
    )
  }

  async function verify(request: ServedRequest): Promise<ServedResponse> {
    const form = await request.readForm(MAX_PAYLOAD * 2)
    const redirectUrl = returnTarget(request, form?.get('redirect_url') ?? null)
    const retry = `${pagePath}?${new URLSearchParams({ redirect_url: redirectUrl, failed: '1' })}`
    const fail = (): ServedResponse => {
      const nonce = randomBytes(16).toString('base64')
      return html(403, failurePage(retry, nonce), nonce)
    }
    const raw = form?.get('payload')
    if (raw === undefined || raw === null || raw.length > MAX_PAYLOAD) return fail()
    let parsed: Infer<typeof payloadSchema>
    try {
      parsed = payloadSchema.parse(JSON.parse(raw))
    } catch {
      return fail()
    }
    const { challenge, solution } = parsed
    const binding = clearanceBinding(request.ip, request.headers['user-agent'])
    if (challenge.parameters.data.binding !== bindingTag(secret, binding)) return fail()
    const result = await verifySolution({
      challenge: challenge as Challenge,
      solution: { counter: solution.counter, derivedKey: solution.derivedKey },
      deriveKey,
      hmacSignatureSecret: secret,
    })
    if (!result.verified) return fail()
    // One solution clears one visitor once: remember it until the challenge would expire anyway.
    const ttl = Math.max(1000, challenge.parameters.expiresAt * 1000 - now())
    let count = 1
    try {
      ;({ count } = await store.increment(`challenge-used:${challenge.signature}`, ttl))
    } catch {
      // The store is down: single use cannot be checked. A verified proof of work still
      // clears this visitor (bound to its network and browser), as the rules fail open too.
    }
    if (count > 1) return fail()
    const expiresAt = now() + clearanceTtlMs
    const value = issueClearance(secret, binding, expiresAt)
    const cookie = `${CLEARANCE_COOKIE}=${value}; Path=/; Max-Age=${Math.floor(clearanceTtlMs / 1000)}; HttpOnly; SameSite=Lax${request.secure ? '; Secure' : ''}`
    return { redirect: redirectUrl, status: 303, setCookies: [cookie] }
  }

  const check: ClearanceCheck = (value, binding, nowMs) => verifyClearance(value, secret, binding, nowMs)
  const release = registerCheck(check)

  return {
    pagePath,
    warnings,
    routes: {
      prefix,
      async handle(request) {
        if (request.path === pagePath && (request.method === 'GET' || request.method === 'HEAD')) return page(request)
        if (request.path === verifyPath && request.method === 'POST') return verify(request)
        return { status: 404, headers: { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: 'Not found' }
      },
    },
    isCleared(input) {
      const value = input.cookie(CLEARANCE_COOKIE)
      if (value === undefined) return false
      const binding = clearanceBinding(input.ip, input.headers['user-agent'])
      const at = now()
      return check(value, binding, at) || clearedElsewhere(check, value, binding, at)
    },
    async close() {
      release()
    },
  }
}
