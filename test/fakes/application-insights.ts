import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { gunzipSync } from 'node:zlib'

/**
 * A fake Application Insights ingestion endpoint ("Breeze"): `POST /v2.1/track` with a JSON array of envelopes,
 * gzip or plain (the exporter compresses only for Azure's own domains), answered 200 with
 * `{"itemsReceived":n,"itemsAccepted":n,"errors":[]}`. It speaks https with a certificate made for the run, since
 * the exporter turns an `http://` IngestionEndpoint into `https://`; a client trusts it through `caFile`
 * (NODE_EXTRA_CA_CERTS for a process of its own).
 */

export interface Envelope {
  name: string
  iKey: string
  time: string
  tags: Record<string, string>
  data: { baseType: string, baseData: Record<string, unknown> & { properties?: Record<string, string> } }
}

export interface FakeIngestion {
  /** `IngestionEndpoint=` value for a connection string. */
  readonly endpoint: string
  /** The certificate to trust (PEM file). */
  readonly caFile: string
  /** Every envelope received, in order. */
  readonly envelopes: Envelope[]
  /** `METHOD path` of every request, and each raw body as text (after gunzip). */
  readonly requests: Array<{ method: string, path: string, body: string }>
  close: () => Promise<void>
}

export async function startFakeIngestion (dir: string): Promise<FakeIngestion> {
  const keyFile = path.join(dir, 'ingestion-key.pem')
  const caFile = path.join(dir, 'ingestion-cert.pem')
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', caFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'
  ], { stdio: 'ignore' })
  const envelopes: Envelope[] = []
  const requests: FakeIngestion['requests'] = []
  const server = createServer({ key: readFileSync(keyFile), cert: readFileSync(caFile) }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(chunks)
      const body = (req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8')
      requests.push({ method: req.method ?? '', path: req.url ?? '', body })
      if (req.method !== 'POST' || req.url !== '/v2.1/track') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{}')
        return
      }
      const items = JSON.parse(body) as Envelope[]
      envelopes.push(...items)
      res.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ itemsReceived: items.length, itemsAccepted: items.length, errors: [] }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    caFile,
    envelopes,
    requests,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  }
}
