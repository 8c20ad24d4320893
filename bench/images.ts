/**
 * `npm run bench:images`: should a signed image URL be proxied by the gateway from Blob Storage (what it does), or
 * redirected to a short-lived SAS URL the browser then fetches from Blob Storage itself? Measured with autocannon,
 * side by side in one run, against a gateway keeping its images in the local fake of the Blob service:
 *   proxy   — GET of a signed image URL: signature, ownership lookup, the blob read from storage, the bytes sent on;
 *   lookup  — the gateway's share of a redirect: the same signed request for an image index that does not exist, so
 *             the signature check and the lookup run and nothing is read from storage (a redirect would add a SAS
 *             signature, one more HMAC);
 *   direct  — the browser's second request after a redirect: the same blob straight from the Blob service.
 * A redirect costs a client lookup + direct, one after the other; proxying costs proxy. Writes
 * bench/images-results.json. Loopback only, bounded in time; the load generator shares the process and the cores.
 */
import { createHmac } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import os from 'node:os'
import autocannon from 'autocannon'
import { createImageUrlSigner } from '../src/tenancy/image-urls.ts'
import { BLOB_ACCOUNT, sharedKeyStringToSign, startFakeBlobStorage } from '../test/fakes/blob-storage.ts'
import { startGateway } from '../test/helpers/gateway.ts'

const DURATION_S = Number(process.env.BENCH_DURATION_SECONDS ?? 8)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16)
const SECRET = 'bench-image-url-secret-of-32-characters-or-more'
const CONTAINER = 'bench-images'

interface Result {
  target: string
  requests_per_second: number
  latency_p50_ms: number
  latency_p99_ms: number
  bytes_per_response: number
  statuses: Record<string, number>
  errors: number
}

async function measure (target: string, url: string, headers: Record<string, string> = {}): Promise<Result> {
  await autocannon({ url, connections: CONNECTIONS, duration: 2, headers })
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION_S, headers })
  const statuses: Record<string, number> = {}
  for (const [code, n] of Object.entries(r.statusCodeStats ?? {})) statuses[code] = (n as { count: number }).count
  return {
    target,
    requests_per_second: Math.round(r.requests.average),
    latency_p50_ms: r.latency.p50,
    latency_p99_ms: r.latency.p99,
    bytes_per_response: r.requests.total > 0 ? Math.round(r.throughput.total / r.requests.total) : 0,
    statuses,
    errors: r.errors
  }
}

const blob = await startFakeBlobStorage()
const gw = await startGateway({
  env: {
    LOG_LEVEL: 'warn',
    IMAGE_STORAGE: 'azure-blob',
    IMAGE_STORAGE_AZURE_CONNECTION_STRING: blob.connectionString,
    IMAGE_STORAGE_AZURE_CONTAINER: CONTAINER,
    IMAGE_URL_SECRET: SECRET,
    IMAGE_URL_TTL_SECONDS: '3600'
  }
})
try {
  const created = await gw.call('POST', '/v1/text-to-image', { prompt: 'a benchmark of herons', model: 'flux-schnell', output_format: 'png', seed: 1 })
  if (created.status !== 200 || created.body.status !== 'succeeded') throw new Error(`setup prediction did not succeed: ${JSON.stringify(created.body)}`)
  const id = created.body.id as string
  const proxyUrl = (created.body.output as string[])[0]!
  const signer = createImageUrlSigner({ secret: SECRET, ttlSeconds: 3600 })
  const lookupUrl = signer.sign(gw.url, id, 3)

  // A Shared Key header for the blob's GET, as the SDK would sign it; a SAS in the query would be checked alike.
  const blobPath = `/${CONTAINER}/${id}/0.png`
  const headers: Record<string, string> = { 'x-ms-date': new Date().toUTCString(), 'x-ms-version': '2025-11-05' }
  const signature = createHmac('sha256', Buffer.from(blob.accountKey, 'base64'))
    .update(sharedKeyStringToSign('GET', `/${BLOB_ACCOUNT}${blobPath}`, '', headers)).digest('base64')
  const directUrl = `http://127.0.0.1:${blob.port}/${BLOB_ACCOUNT}${blobPath}`
  const directHeaders = { ...headers, authorization: `SharedKey ${BLOB_ACCOUNT}:${signature}` }
  const check = await fetch(directUrl, { headers: directHeaders })
  if (check.status !== 200) throw new Error(`the blob could not be read directly: ${check.status} ${await check.text()}`)

  const results = [
    await measure('proxy', proxyUrl),
    await measure('lookup', lookupUrl),
    await measure('direct', directUrl, directHeaders)
  ]
  const [proxy, lookup, direct] = results as [Result, Result, Result]
  const report = {
    measured_at: new Date().toISOString(),
    machine: { cpus: os.cpus().length, node: process.version, platform: `${os.platform()} ${os.arch()}` },
    settings: { duration_seconds: DURATION_S, connections: CONNECTIONS },
    results,
    per_image: {
      proxy_p50_ms: proxy.latency_p50_ms,
      redirect_p50_ms: lookup.latency_p50_ms + direct.latency_p50_ms,
      proxy_p99_ms: proxy.latency_p99_ms,
      redirect_p99_ms: lookup.latency_p99_ms + direct.latency_p99_ms,
      gateway_rps_proxying: proxy.requests_per_second,
      gateway_rps_redirecting: lookup.requests_per_second
    },
    note: 'All on loopback, with the fake Blob service and the load generator in one process on a shared machine: the ' +
      'network between gateway and Blob Storage costs nothing here, and a second connection to another host (TLS ' +
      'included) costs the redirecting browser nothing either. Read the numbers as CPU costs on the gateway, not as ' +
      'what a browser would see in Azure.'
  }
  await writeFile(new URL('./images-results.json', import.meta.url), `${JSON.stringify(report, null, 2)}\n`)
  console.log(JSON.stringify({ results, per_image: report.per_image }, null, 2))
} finally {
  await gw.close()
  await blob.close()
}
