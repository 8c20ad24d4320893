import { createServer } from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import sharp from 'sharp'

export interface TestServer {
  /** `http://127.0.0.1:<port>` */
  origin: string
  port: number
  /** `${method} ${url}` of every request received. */
  hits: string[]
  close (): Promise<void>
}

export async function startServer (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestServer> {
  const hits: string[] = []
  const server = createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`)
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    hits,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}

interface ConnectMessage { connectParams: { hostname: string } }

/**
 * Records undici's connection attempts (`beforeConnect`) and established connections
 * (`connected`) by host name, to prove a refused URL never reached the network.
 */
export function recordConnections (): { attempts: string[], connected: string[], stop (): void } {
  const attempts: string[] = []
  const connected: string[] = []
  const onAttempt = (message: unknown): void => { attempts.push((message as ConnectMessage).connectParams.hostname) }
  const onConnected = (message: unknown): void => { connected.push((message as ConnectMessage).connectParams.hostname) }
  subscribe('undici:client:beforeConnect', onAttempt)
  subscribe('undici:client:connected', onConnected)
  return {
    attempts,
    connected,
    stop () {
      unsubscribe('undici:client:beforeConnect', onAttempt)
      unsubscribe('undici:client:connected', onConnected)
    }
  }
}

export async function makeImage (format: 'png' | 'jpeg' | 'webp' | 'gif', width = 8, height = 6): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 30, b: 30 } } }).toFormat(format).toBuffer()
}
