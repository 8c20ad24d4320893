import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A loopback stand-in for Replicate's token check, in front of the emulator: it accepts the tokens in
 * `validTokens` (answering anything else with Replicate's own 401 body) and forwards accepted requests to the
 * emulator with the emulator's token. Revoking a token here is how tests rotate the Replicate token.
 */
export interface ReplicateTokenGate {
  /** `http://127.0.0.1:<port>/v1`, for REPLICATE_BASE_URL. */
  readonly baseUrl: string
  readonly validTokens: Set<string>
  /** The bearer token of every request, in order. */
  readonly presented: string[]
  /** Requests answered 401. */
  rejected: () => number
  /** Where accepted requests go; set once the emulator is up. */
  upstream: { origin: string, token: string } | undefined
  close: () => Promise<void>
}

export async function startReplicateTokenGate (validTokens: string[] = []): Promise<ReplicateTokenGate> {
  const valid = new Set(validTokens)
  const presented: string[] = []
  let rejected = 0
  const state = { upstream: undefined as ReplicateTokenGate['upstream'] }

  const server = createServer((req, res) => {
    const auth = req.headers.authorization ?? ''
    const token = auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : ''
    presented.push(token)
    const upstream = state.upstream
    if (!valid.has(token) || !upstream) {
      rejected++
      req.resume()
      res.writeHead(401, { 'content-type': 'application/problem+json' })
      res.end(JSON.stringify({ title: 'Unauthenticated', detail: 'You did not pass a valid authentication token', status: 401 }))
      return
    }
    const target = new URL(req.url ?? '/', upstream.origin)
    const forward = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host, authorization: `Bearer ${upstream.token}` } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    forward.on('error', () => { res.destroy() })
    req.pipe(forward)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    validTokens: valid,
    presented,
    rejected: () => rejected,
    get upstream () { return state.upstream },
    set upstream (value) { state.upstream = value },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}
