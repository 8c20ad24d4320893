import { createDefaultHttpClient } from '@azure/core-rest-pipeline'
import type { HttpClient, PipelineRequest, PipelineResponse } from '@azure/core-rest-pipeline'

export interface LoopbackHttpClient extends HttpClient {
  /** `METHOD https://host/path?query` of every request, as the SDK addressed it. */
  readonly sent: string[]
}

/**
 * An Azure SDK transport that keeps the production https URL in the pipeline (so TLS-only policies and Key
 * Vault's challenge checks run as they do in Azure) but sends each request to a fake on 127.0.0.1. A host it
 * was not told about is refused, so nothing can leave loopback through it.
 */
export function loopbackHttpClient (ports: Record<string, number>): LoopbackHttpClient {
  const inner = createDefaultHttpClient()
  const sent: string[] = []
  return {
    sent,
    async sendRequest (request: PipelineRequest): Promise<PipelineResponse> {
      const original = request.url
      const url = new URL(original)
      const port = ports[url.hostname]
      if (url.protocol !== 'https:' || port === undefined) throw new Error(`loopback client: refusing to send to ${url.origin}`)
      sent.push(`${request.method} ${original}`)
      request.url = `http://127.0.0.1:${port}${url.pathname}${url.search}`
      request.allowInsecureConnection = true
      try {
        return await inner.sendRequest(request)
      } finally {
        // Key Vault's policy checks the challenge against request.url after the response: it must see the real host.
        request.url = original
      }
    }
  }
}
