import { type FakeServer, type RecordedRequest, type ScriptedReplyLike, startFakeServer } from './server.js'

export interface TrustedAccountsReply extends ScriptedReplyLike {
  /** The decision to return. Defaults to `'allow'`. */
  decision?: 'allow' | 'challenge' | 'block'
  /** Extra reply fields. */
  extra?: Record<string, unknown>
}

export interface FakeTrustedAccountsOptions {
  /** The secret key the fake accepts. Defaults to `'ta_test_secret'`. */
  secretKey?: string
  /** Loopback port, e.g. to bring a stopped fake back where it was. Defaults to a free one. */
  port?: number
  /** Decides per request when no reply is scripted, e.g. by `body.ip`. */
  decide?(body: CheckRequestBody): TrustedAccountsReply
}

export interface CheckRequestBody {
  ip: string
  trustedId?: string
  requestedPath?: string
  headers?: Record<string, string>
  cookies?: string[]
}

export interface FakeTrustedAccounts extends FakeServer<TrustedAccountsReply> {
  readonly secretKey: string
  /** Bodies of the check-request calls received, oldest first. */
  checks(): CheckRequestBody[]
}

const FORBIDDEN_HEADERS = ['authorization', 'cookie', 'proxy-authorization', 'proxy-authenticate', 'set-cookie']

function shapeError(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object'
  const check = body as Record<string, unknown>
  if (typeof check.ip !== 'string' || check.ip.length === 0) return 'ip is required'
  if (check.trustedId !== undefined && typeof check.trustedId !== 'string') return 'trustedId must be a string'
  if (check.requestedPath !== undefined && typeof check.requestedPath !== 'string') return 'requestedPath must be a string'
  if (check.headers !== undefined) {
    if (typeof check.headers !== 'object' || check.headers === null) return 'headers must be an object'
    for (const [name, value] of Object.entries(check.headers)) {
      if (name !== name.toLowerCase()) return `header names must be lowercase (${name})`
      if (FORBIDDEN_HEADERS.includes(name)) return `sensitive header sent: ${name}`
      if (typeof value !== 'string') return `header ${name} must be a string`
    }
  }
  if (check.cookies !== undefined) {
    if (!Array.isArray(check.cookies) || check.cookies.some((name) => typeof name !== 'string' || name.includes('='))) {
      return 'cookies must be an array of cookie names'
    }
  }
  return null
}

/**
 * A real Trusted Accounts `check-request` server on 127.0.0.1 that checks the Bearer key
 * and the request shape as the service does, with scriptable decisions, Set-Cookies,
 * latency and faults.
 */
export async function fakeTrustedAccounts(options: FakeTrustedAccountsOptions = {}): Promise<FakeTrustedAccounts> {
  const secretKey = options.secretKey ?? 'ta_test_secret'
  const server = await startFakeServer<TrustedAccountsReply, Record<string, unknown>>(
    {
      method: 'POST',
      path: '/api/v1/check-request',
      validate(request: RecordedRequest) {
        if (request.headers.authorization !== `Bearer ${secretKey}`) return { status: 401, body: { error: 'unauthorized' } }
        if (!String(request.headers['content-type'] ?? '').startsWith('application/json')) {
          return { status: 415, body: { error: 'content-type must be application/json' } }
        }
        const problem = shapeError(request.body)
        return problem === null ? null : { status: 400, body: { error: 'bad_request', message: problem } }
      },
      respond(request, scripted) {
        const reply = scripted ?? options.decide?.(request.body as CheckRequestBody) ?? {}
        return { ...reply, body: { decision: reply.decision ?? 'allow', ...reply.extra } }
      },
    },
    options.port,
  )
  return Object.assign(server, {
    secretKey,
    checks: () =>
      server.requests.filter((request) => request.path === '/api/v1/check-request').map((request) => request.body as CheckRequestBody),
  })
}
