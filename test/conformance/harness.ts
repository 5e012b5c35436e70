/**
 * One harness, four frameworks: builds the same small site on Express 4, Express 5, Koa 2
 * or Koa 3 (picked by SALLYPORT_FRAMEWORK, set per vitest project) so the conformance
 * suite runs unchanged against each.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { connect } from 'node:net'
import type { CheckpointSpec, Decision, GateOptions } from '@sallyport/core'
import { guard as expressGuard, type GuardRequest } from '@sallyport/express'
import { type GuardContext, guard as koaGuard } from '@sallyport/koa'

export const framework = (process.env.SALLYPORT_FRAMEWORK ?? 'express-5') as 'express-4' | 'express-5' | 'koa-2' | 'koa-3'
export const isKoa = framework.startsWith('koa')

/** Hooks receive Express's `req` or Koa's `ctx`; tests only use them through these helpers. */
export type Native = GuardRequest | GuardContext

export interface SiteOptions {
  /** Gate options; hooks receive the framework's own request object. */
  gate?: GateOptions<Native>
  /** The framework's own trust-proxy setting, as a hop count (Express `trust proxy`, Koa `proxy` + `maxIpsCount`). */
  frameworkHops?: number
  /** Options for the `POST /login` checkpoint. Defaults to `{ event: 'login', email: <body.email> }`. */
  checkpoint?: Partial<CheckpointSpec<Native>>
  /** Interface to listen on. Defaults to `127.0.0.1`. */
  host?: string
  /** An earlier middleware prepares a default response (Koa: `ctx.body`; Express: a header) before Sallyport runs. */
  presetResponse?: boolean
  /** The framework trusts every proxy (Express `trust proxy: true`; Koa `app.proxy` without `maxIpsCount`). */
  frameworkTrustsAll?: boolean
  /** Express: a JSON body parser runs before Sallyport (Express 4's leaves `req.body = {}` on other types). */
  jsonParserFirst?: boolean
  /** `POST /login` runs its checkpoint before the body parser: the mistake `SP_WARN_CHECKPOINT_BEFORE_BODY_PARSER` reports. */
  checkpointBeforeBodyParser?: boolean
  /** A second `guard()`, with these options, right after the first (its logs and decisions are recorded with the first's). */
  secondGate?: GateOptions<Native>
}

export interface LogLine {
  level: string
  code: string
  message: string
  object: Record<string, unknown>
}

export interface Site {
  url: string
  port: number
  /** Decisions seen by `onDecision`, oldest first. */
  decisions: Decision[]
  /** What Sallyport logged, as `[level, code]`. */
  logs: Array<[string, string]>
  /** The same log calls in full: what a logger would print (`message`) and the object beside it. */
  lines: LogLine[]
  /** Times the site's own handler ran. */
  handled: () => number
  close(): Promise<void>
}

/** Answers from inside a hook in the framework's own way. */
export function hookRespond(native: Native, status: number, body: Record<string, unknown>): void {
  if (isKoa) {
    const ctx = native as GuardContext & { status: number; body: unknown }
    ctx.status = status
    ctx.body = body
  } else {
    const res = (native as GuardRequest).res
    if (res === undefined) throw new Error('no res on request')
    res.statusCode = status
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(body))
  }
}

/** The login form a browser fills in: it posts to the `POST /login` checkpoint. */
export const LOGIN_FORM =
  '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in</title></head><body><form method="post" action="/login"><input name="email" type="email" aria-label="Email"><input name="password" type="password" aria-label="Password"><button type="submit">Sign in</button></form></body></html>'

/** Koa's stand-in for a body parser: JSON, or a form a browser posts. */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  const type = req.headers['content-type'] ?? ''
  if (text.length === 0) return undefined
  if (type.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text))
  // Like a body parser, it leaves the types it does not read (multipart, text) unparsed.
  if (type !== '' && !type.includes('json')) return undefined
  return JSON.parse(text)
}

function emailOf(native: Native): unknown {
  const body = isKoa ? (native as GuardContext).request.body : (native as GuardRequest).body
  return (body as Record<string, unknown> | undefined)?.email
}

async function buildHandler(
  options: SiteOptions,
  decisions: Decision[],
  logs: Array<[string, string]>,
  count: { value: number },
  lines: LogLine[],
) {
  const userOnDecision = options.gate?.onDecision
  const record = (level: string) => (object: Record<string, unknown>, message?: string) => {
    logs.push([level, String(object.code)])
    lines.push({ level, code: String(object.code), message: message ?? '', object })
  }
  const gateOptions: GateOptions<Native> = {
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    ...options.gate,
    onDecision(decision, request) {
      decisions.push(decision)
      userOnDecision?.(decision, request)
    },
  }
  const checkpoint: CheckpointSpec<Native> = { event: 'login', email: emailOf, ...options.checkpoint }
  // Both are set just above; the second gate records with the first.
  const { logger, onDecision } = gateOptions as Required<Pick<GateOptions<Native>, 'logger' | 'onDecision'>>
  const secondGateOptions: GateOptions<Native> | undefined =
    options.secondGate === undefined ? undefined : { logger, onDecision, ...options.secondGate }

  if (!isKoa) {
    const { default: express } = (await import(framework)) as { default: typeof import('express') }
    const app = express()
    if (options.frameworkHops !== undefined) app.set('trust proxy', options.frameworkHops)
    if (options.frameworkTrustsAll) app.set('trust proxy', true)
    if (options.jsonParserFirst) app.use(express.json())
    if (options.presetResponse) {
      app.use((_req, res, next) => {
        res.setHeader('x-preset', '1')
        next()
      })
    }
    const gate = expressGuard(gateOptions as GateOptions<GuardRequest>)
    app.use(gate)
    const second = secondGateOptions === undefined ? undefined : expressGuard(secondGateOptions as GateOptions<GuardRequest>)
    if (second !== undefined) app.use(second)
    app.get('/login', (_req, res) => {
      count.value++
      res.type('html').send(LOGIN_FORM)
    })
    const parsers = [express.json(), express.urlencoded({ extended: false })]
    const login = gate.checkpoint(checkpoint as CheckpointSpec<GuardRequest>)
    app.post('/login', ...(options.checkpointBeforeBodyParser ? [login, ...parsers] : [...parsers, login]), (req, res) => {
      count.value++
      res.json({ route: 'login', decision: req.sallyport })
    })
    app.use((req, res) => {
      count.value++
      res.append('Set-Cookie', 'app_session=s1; Path=/; HttpOnly')
      res.json({ path: req.originalUrl, decision: req.sallyport })
    })
    return { listener: app, close: () => Promise.all([gate.close(), second?.close()]).then(() => {}) }
  }

  const { default: Koa } = (await import(framework)) as { default: typeof import('koa') }
  const app = new Koa()
  if (options.frameworkHops !== undefined) {
    app.proxy = true
    app.maxIpsCount = options.frameworkHops
  }
  if (options.frameworkTrustsAll) app.proxy = true
  if (options.presetResponse) {
    app.use(async (ctx, next) => {
      ctx.body = 'default'
      await next()
    })
  }
  const gate = koaGuard(gateOptions as GateOptions<GuardContext>)
  const loginCheckpoint = gate.checkpoint(checkpoint as CheckpointSpec<GuardContext>)
  app.use(gate as unknown as Parameters<typeof app.use>[0])
  const second = secondGateOptions === undefined ? undefined : koaGuard(secondGateOptions as GateOptions<GuardContext>)
  if (second !== undefined) app.use(second as unknown as Parameters<typeof app.use>[0])
  app.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/login') {
      const parseBody = async () => {
        ;(ctx.request as { body?: unknown }).body = await readBody(ctx.req)
      }
      if (!options.checkpointBeforeBodyParser) await parseBody()
      await loginCheckpoint(ctx as unknown as GuardContext, async () => {
        if (options.checkpointBeforeBodyParser) await parseBody()
        count.value++
        ctx.body = { route: 'login', decision: ctx.state.sallyport }
      })
      return
    }
    if (ctx.method === 'GET' && ctx.path === '/login') {
      count.value++
      ctx.type = 'html'
      ctx.body = LOGIN_FORM
      return
    }
    await next()
  })
  app.use((ctx) => {
    count.value++
    ctx.append('Set-Cookie', 'app_session=s1; Path=/; HttpOnly')
    ctx.body = { path: ctx.originalUrl, decision: ctx.state.sallyport }
  })
  return { listener: app.callback(), close: () => Promise.all([gate.close(), second?.close()]).then(() => {}) }
}

/** Starts the site on loopback, port 0. */
export async function startSite(options: SiteOptions = {}): Promise<Site> {
  const decisions: Decision[] = []
  const logs: Array<[string, string]> = []
  const lines: LogLine[] = []
  const count = { value: 0 }
  const { listener, close } = await buildHandler(options, decisions, logs, count, lines)
  const server: Server = createServer(listener as Parameters<typeof createServer>[0])
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    decisions,
    logs,
    lines,
    handled: () => count.value,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await close()
    },
  }
}

export interface RawResponse {
  status: number
  headers: Array<[string, string]>
  body: string
  header(name: string): string[]
}

/**
 * Sends bytes exactly as written (odd header case, repeated headers, raw paths that an
 * HTTP client library would normalise) and parses the reply.
 */
export function rawRequest(port: number, lines: string[], body = ''): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const split = text.indexOf('\r\n\r\n')
      const [statusLine = '', ...headerLines] = text.slice(0, split).split('\r\n')
      const headers = headerLines.map((line): [string, string] => {
        const colon = line.indexOf(':')
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
      })
      resolve({
        status: Number(statusLine.split(' ')[1]),
        headers,
        body: text.slice(split + 4),
        header: (name) => headers.filter(([key]) => key === name).map(([, value]) => value),
      })
    })
    const head = [...lines, 'Connection: close', `Content-Length: ${Buffer.byteLength(body)}`, '', ''].join('\r\n')
    socket.write(head + body)
  })
}
