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
}

export interface Site {
  url: string
  port: number
  /** Decisions seen by `onDecision`, oldest first. */
  decisions: Decision[]
  /** What Sallyport logged, as `[level, code]`. */
  logs: Array<[string, string]>
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

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk)
  const text = Buffer.concat(chunks).toString('utf8')
  return text.length === 0 ? undefined : JSON.parse(text)
}

function emailOf(native: Native): unknown {
  const body = isKoa ? (native as GuardContext).request.body : (native as GuardRequest).body
  return body?.email
}

async function buildHandler(options: SiteOptions, decisions: Decision[], logs: Array<[string, string]>, count: { value: number }) {
  const userOnDecision = options.gate?.onDecision
  const record = (level: string) => (object: Record<string, unknown>) => logs.push([level, String(object.code)])
  const gateOptions: GateOptions<Native> = {
    logger: { warn: record('warn'), error: record('error'), debug: record('debug') },
    ...options.gate,
    onDecision(decision, request) {
      decisions.push(decision)
      userOnDecision?.(decision, request)
    },
  }
  const checkpoint: CheckpointSpec<Native> = { event: 'login', email: emailOf, ...options.checkpoint }

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
    app.post('/login', express.json(), gate.checkpoint(checkpoint as CheckpointSpec<GuardRequest>), (req, res) => {
      count.value++
      res.json({ route: 'login', decision: req.sallyport })
    })
    app.use((req, res) => {
      count.value++
      res.append('Set-Cookie', 'app_session=s1; Path=/; HttpOnly')
      res.json({ path: req.originalUrl, decision: req.sallyport })
    })
    return { listener: app, close: () => gate.close() }
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
  app.use(async (ctx, next) => {
    if (ctx.method === 'POST' && ctx.path === '/login') {
      ;(ctx.request as { body?: unknown }).body = await readJson(ctx.req)
      await loginCheckpoint(ctx as unknown as GuardContext, async () => {
        count.value++
        ctx.body = { route: 'login', decision: ctx.state.sallyport }
      })
      return
    }
    await next()
  })
  app.use((ctx) => {
    count.value++
    ctx.append('Set-Cookie', 'app_session=s1; Path=/; HttpOnly')
    ctx.body = { path: ctx.originalUrl, decision: ctx.state.sallyport }
  })
  return { listener: app.callback(), close: () => gate.close() }
}

/** Starts the site on loopback, port 0. */
export async function startSite(options: SiteOptions = {}): Promise<Site> {
  const decisions: Decision[] = []
  const logs: Array<[string, string]> = []
  const count = { value: 0 }
  const { listener, close } = await buildHandler(options, decisions, logs, count)
  const server: Server = createServer(listener as Parameters<typeof createServer>[0])
  await new Promise<void>((resolve) => server.listen(0, options.host ?? '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    decisions,
    logs,
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
