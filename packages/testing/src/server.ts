import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

/** Ways a fake backend can misbehave, the failures a real one shows on a bad day. */
export type Fault =
  /** Accepts the request and never answers. */
  | 'hang'
  /** Sends 200 and JSON headers, then nothing. */
  | 'hang-after-headers'
  /** Sends a valid body one byte every `trickleMs` (default 50 ms). */
  | 'trickle'
  /** 200 with a body that is not JSON. */
  | 'bad-json'
  /** 200 with a 10 MB body. */
  | 'huge-body'
  /** Destroys the connection without a reply. */
  | 'reset'
  /** An HTTP error status, with an optional body. */
  | { status: number; body?: string }

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The parsed JSON body, or `undefined` when it was not JSON. */
  body: unknown
  rawBody: string
}

export interface ScriptedReply<Body> {
  /** Reply body. */
  body?: Body
  /** Set-Cookie headers to send, one header each. */
  setCookies?: string[]
  /** Wait this long before answering, in ms. */
  delayMs?: number
  fault?: Fault
  /** Interval for the `trickle` fault, in ms. Defaults to 50. */
  trickleMs?: number
  /** HTTP status for a normal reply. Defaults to 200. */
  status?: number
}

export interface FakeServer<Reply> {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[]
  /** Answers every later request with this (until changed or `reset()`). */
  reply(reply: Reply): void
  /** Answers only the next request with this; later ones get the standing reply. */
  replyOnce(reply: Reply): void
  /** Forgets scripted replies and recorded requests. */
  reset(): void
  /** Stops the server and drops every open connection, hung ones included. */
  close(): Promise<void>
}

export interface Route<Reply, Body> {
  method: string
  path: string
  /** Checks auth and shape as the vendor would; returns an error reply, or `null` to go on. */
  validate(request: RecordedRequest): { status: number; body: unknown } | null
  /** Builds the reply for a valid request. */
  respond(request: RecordedRequest, scripted: Reply | undefined): ScriptedReply<Body>
}

const MAX_REQUEST_BODY = 1024 * 1024

async function readBody(req: IncomingMessage): Promise<string | null> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_REQUEST_BODY) return null
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** A real HTTP server on 127.0.0.1 with scriptable replies and faults, for one vendor route. */
export async function startFakeServer<Reply extends ScriptedReplyLike, Body>(
  route: Route<Reply, Body>,
  /** Loopback port to listen on, e.g. to restart a fake where it was. Defaults to a free one. */
  port = 0,
): Promise<FakeServer<Reply>> {
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let standing: Reply | undefined
  const queue: Reply[] = []

  const later = (ms: number, run: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      run()
    }, ms)
    timers.add(timer)
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req)
    if (raw === null) return sendJson(res, 413, { error: 'payload_too_large' })
    let body: unknown
    try {
      body = raw.length === 0 ? undefined : JSON.parse(raw)
    } catch {
      body = undefined
    }
    const url = new URL(req.url ?? '/', 'http://fake.local')
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname + url.search,
      headers: req.headers,
      body,
      rawBody: raw,
    }
    requests.push(recorded)
    if (recorded.method !== route.method || url.pathname !== route.path) return sendJson(res, 404, { error: 'not_found' })
    const invalid = route.validate(recorded)
    if (invalid !== null) return sendJson(res, invalid.status, invalid.body)

    const scripted = queue.shift() ?? standing
    const reply = route.respond(recorded, scripted)
    const send = () => deliver(req, res, reply)
    if (reply.delayMs !== undefined && reply.delayMs > 0) later(reply.delayMs, send)
    else send()
  }

  function deliver(req: IncomingMessage, res: ServerResponse, reply: ScriptedReply<Body>): void {
    const cookies = reply.setCookies ?? []
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json' }
    if (cookies.length > 0) headers['set-cookie'] = cookies
    const { fault } = reply
    if (fault === 'hang') return
    if (fault === 'reset') {
      req.socket.destroy()
      return
    }
    if (fault === 'hang-after-headers') {
      res.writeHead(200, headers)
      res.flushHeaders()
      return
    }
    if (fault === 'bad-json') {
      res.writeHead(200, headers)
      res.end('{"decision": "allow"')
      return
    }
    if (fault === 'huge-body') {
      res.writeHead(200, headers)
      const block = Buffer.alloc(64 * 1024, 0x20)
      let sent = 0
      const pump = () => {
        while (sent < 10 * 1024 * 1024) {
          sent += block.length
          if (!res.write(block)) return void res.once('drain', pump)
        }
        res.end('{}')
      }
      res.on('error', () => {})
      pump()
      return
    }
    if (typeof fault === 'object') {
      res.writeHead(fault.status, headers)
      res.end(fault.body ?? JSON.stringify({ error: `status_${fault.status}` }))
      return
    }
    const text = JSON.stringify(reply.body ?? {})
    if (fault === 'trickle') {
      res.writeHead(200, headers)
      let index = 0
      const drip = () => {
        if (res.destroyed) return
        if (index >= text.length) return void res.end()
        res.write(text[index++])
        later(reply.trickleMs ?? 50, drip)
      }
      drip()
      return
    }
    headers['content-length'] = String(Buffer.byteLength(text))
    res.writeHead(reply.status ?? 200, headers)
    res.end(text)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendJson(res, 500, { error: 'fake_server_error' })
    })
  })
  server.keepAliveTimeout = 30_000
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const listening = (server.address() as AddressInfo).port

  return {
    url: `http://127.0.0.1:${listening}`,
    requests,
    reply(reply) {
      standing = reply
    },
    replyOnce(reply) {
      queue.push(reply)
    },
    reset() {
      standing = undefined
      queue.length = 0
      requests.length = 0
    },
    async close() {
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      for (const socket of sockets) socket.destroy()
      await closed
    },
  }
}

/** What every vendor's scripted reply shares. */
export interface ScriptedReplyLike {
  setCookies?: string[]
  delayMs?: number
  fault?: Fault
  trickleMs?: number
}
