import { spawn, spawnSync } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer } from 'node:net'
import { Redis } from 'ioredis'

/**
 * A Redis server for the tests: REDIS_URL when set (`.ci/run` starts one), otherwise a
 * `redis-server` started here on a free loopback port, when the binary exists. Without either the
 * Redis suites are skipped, and `redisUnavailable` says why.
 */

export interface TestRedis {
  url: string
  /** A fresh key prefix, so suites sharing a server never see each other's keys. */
  prefix: () => string
  stop: () => Promise<void>
}

function hasRedisServer (): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0
}

export const redisUnavailable: string | undefined = process.env.REDIS_URL || hasRedisServer()
  ? undefined
  : 'no REDIS_URL and no redis-server binary (apt-get install redis-server, or run .ci/run)'

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function waitForPing (url: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    // Refusals while the server starts are expected; the loop retries them.
    client.on('error', () => {})
    try {
      await client.connect()
      await client.ping()
      client.disconnect()
      return
    } catch {
      client.disconnect()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  throw new Error(`redis at ${url} did not answer`)
}

export async function startTestRedis (): Promise<TestRedis> {
  const prefix = () => `fgw-test-${randomUUID()}:`
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, prefix, stop: async () => {} }
  const port = await freePort()
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const url = `redis://127.0.0.1:${port}`
  await waitForPing(url)
  return {
    url,
    prefix,
    async stop () {
      if (child.exitCode !== null) return
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      await exited
    }
  }
}
