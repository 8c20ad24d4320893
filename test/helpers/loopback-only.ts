/**
 * Preloaded into a child process (`NODE_OPTIONS=--import=<this file's URL>`) to keep it on loopback: a TCP connection
 * to any other address, or a DNS look-up of any other name, is refused before a packet leaves, and written (one
 * `host:port` or `dns name` per line) to the file named by LOOPBACK_ONLY_LOG, which the test reads afterwards.
 * Every TCP client in Node (http, https, tls, undici, the Azure SDKs) goes through `net.Socket#connect`.
 */
import { appendFileSync } from 'node:fs'
import dns from 'node:dns'
import net from 'node:net'

const log = process.env.LOOPBACK_ONLY_LOG
if (!log) throw new Error('LOOPBACK_ONLY_LOG is not set')

const LOOPBACK_NAMES = new Set(['localhost', 'localhost.', ''])
function isLoopback (host: string): boolean {
  if (LOOPBACK_NAMES.has(host.toLowerCase())) return true
  const bare = host.replace(/^\[|\]$/g, '')
  if (net.isIPv4(bare)) return bare.startsWith('127.')
  if (net.isIPv6(bare)) return bare === '::1' || /^::ffff:127\./i.test(bare)
  return false
}

function refuse (what: string): Error {
  appendFileSync(log!, `${what}\n`)
  process.stderr.write(`loopback-only: refused ${what}\n`)
  return Object.assign(new Error(`loopback-only: refused ${what}`), { code: 'ECONNREFUSED' })
}

type Connect = (this: net.Socket, ...args: unknown[]) => net.Socket
const connect = net.Socket.prototype.connect as unknown as Connect
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]): net.Socket {
  // net.connect passes its normalized arguments as an array; a caller may pass (options), (port, host) or (path).
  const first = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0]
  let host: string | undefined
  let port: unknown
  if (typeof first === 'object' && first !== null) {
    const o = first as { path?: string, host?: string, port?: unknown }
    // A pipe has a path and no port (an http request's options carry its URL path too, with a port).
    if (o.path !== undefined && o.port === undefined) return connect.apply(this, args)
    host = o.host ?? 'localhost'
    port = o.port
  } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
    return connect.apply(this, args) // an IPC path
  } else {
    port = first
    host = typeof args[1] === 'string' ? args[1] : 'localhost'
  }
  if (isLoopback(host)) return connect.apply(this, args)
  const err = refuse(`${host}:${String(port)}`)
  process.nextTick(() => this.destroy(err))
  return this
} as typeof net.Socket.prototype.connect

type Lookup = (hostname: string, ...rest: unknown[]) => unknown
const lookup = dns.lookup as unknown as Lookup
;(dns as { lookup: unknown }).lookup = function (hostname: string, ...rest: unknown[]): unknown {
  if (isLoopback(hostname) || net.isIP(hostname) !== 0) return lookup.call(dns, hostname, ...rest)
  const err = refuse(`dns ${hostname}`)
  const callback = rest.at(-1)
  if (typeof callback === 'function') process.nextTick(() => (callback as (e: Error) => void)(err))
  return undefined
}
const lookupPromise = dns.promises.lookup.bind(dns.promises)
;(dns.promises as { lookup: unknown }).lookup = async function (hostname: string, ...rest: unknown[]): Promise<unknown> {
  if (isLoopback(hostname) || net.isIP(hostname) !== 0) return (lookupPromise as (h: string, ...r: unknown[]) => Promise<unknown>)(hostname, ...rest)
  throw refuse(`dns ${hostname}`)
}
