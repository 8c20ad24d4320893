import { Agent, fetch } from 'undici'

/**
 * HTTP from the emulator to the outside (webhooks, input images) through its own connection pool,
 * so a test that swaps the global dispatcher or stubs `fetch` does not intercept the emulator too.
 */
export interface OutboundInit {
  method?: string
  headers?: Record<string, string>
  body?: string
  redirect?: 'follow' | 'manual'
  signal?: AbortSignal
}

export interface OutboundResponse {
  status: number
  ok: boolean
  arrayBuffer(): Promise<ArrayBuffer>
  body: { cancel(): Promise<void> } | null
}

export type OutboundFetch = (url: string | URL, init?: OutboundInit) => Promise<OutboundResponse>

export function createOutbound (): { fetch: OutboundFetch, close(): Promise<void> } {
  const agent = new Agent({ connect: { timeout: 10_000 } })
  return {
    fetch: (url, init = {}) => fetch(url, { ...init, dispatcher: agent }),
    close: () => agent.destroy()
  }
}
