import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * What a refused upload may still send before its connection is cut: a client that writes the whole body before
 * reading (Node's fetch, Python's urllib, curl without `Expect: 100-continue`) only sees our answer if the rest of
 * its body is read, since closing with unread data makes the kernel send a reset that destroys the answer in flight.
 * Bounded as nginx's lingering close is, so a refused upload cannot hold a connection or stream without end.
 */
export const LINGER = { maxBytes: 64 * 1024 * 1024, maxMs: 30_000, idleMs: 5_000 } as const

/**
 * Reads and discards the rest of a request body that is answered early. Once the body has ended the connection is
 * an ordinary kept-alive one again, since the answer did not say `Connection: close` (with it, Node would close
 * right after the answer, before the body is read). Past the byte, total-time or idle bound the socket is destroyed.
 * Call it before the answer is sent.
 */
export function drainRefusedBody (req: IncomingMessage, res: ServerResponse, limits: { maxBytes: number, maxMs: number, idleMs: number } = LINGER): void {
  const socket = req.socket
  if (req.complete || socket.destroyed) return
  let seen = 0
  const deadline = setTimeout(() => cut(), limits.maxMs).unref()
  const idle = setTimeout(() => cut(), limits.idleMs).unref()
  const count = (chunk: Buffer): void => {
    seen += chunk.length
    if (seen > limits.maxBytes) return cut()
    idle.refresh()
  }
  const stop = (): void => {
    clearTimeout(deadline)
    clearTimeout(idle)
    socket.off('data', count)
  }
  function cut (): void {
    stop()
    socket.destroy()
  }
  socket.on('data', count)
  socket.once('close', stop)
  let pending = 2
  const doneWhenBoth = (): void => {
    if (--pending === 0) stop()
  }
  req.once('end', doneWhenBoth)
  res.once('finish', doneWhenBoth)
  req.resume()
}
