import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Reads a request body of at most `limit` bytes, for the few routes Sallyport answers
 * itself. `null` when the body is larger, or was already read by a body parser.
 */
export async function readRequestBody(req: IncomingMessage, limit: number): Promise<string | null> {
  if (req.readableEnded || req.readableDidRead) return null
  const declared = Number(req.headers['content-length'])
  if (declared > limit) return null
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      req.resume()
      return null
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, size).toString('utf8')
}

/**
 * No one has read this request's body stream: no body parser ran before this point (or none
 * took its content type). For the adapters' `bodyUnread`.
 */
export function bodyStreamUnread(req: IncomingMessage): boolean {
  return !req.readableDidRead && !req.readableEnded
}

/**
 * Calls `listener` if the response closes before it finished, i.e. the client went away;
 * returns a function that stops listening. Shared by the adapters' request views.
 */
export function onResponseAbandoned(res: ServerResponse, listener: () => void): () => void {
  const onClose = () => {
    if (!res.writableFinished) listener()
  }
  // `on` rather than `once`: 'close' comes once anyway, and `once` wraps every listener.
  res.on('close', onClose)
  return () => res.removeListener('close', onClose)
}

/**
 * The peer of this socket is gone. A client that sends a whole request and resets the
 * connection still has its request parsed and routed by Node, but its socket no longer knows
 * the peer's address. A TCP socket still knows its own port then; a Unix-socket connection
 * (no peer address ever) does not, so it is not mistaken for a gone client.
 */
export function peerGone(socket: Socket): boolean {
  return socket.destroyed || (socket.remoteAddress === undefined && socket.localPort !== undefined)
}
