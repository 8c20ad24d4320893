import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { readFileSync } from 'node:fs'
import type { AppOptions } from '../../src/app.ts'

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }

import type { Check, Health, Readiness as ReadinessReport } from '../../src/schemas/health.ts'

export interface Readiness {
  check: () => Promise<ReadinessReport>
  detail: () => Promise<Health>
}

declare module 'fastify' {
  interface FastifyInstance {
    readiness: Readiness
  }
}

/**
 * Readiness asks Replicate a non-billable question (GET /account) at most once per
 * READINESS_CACHE_MS, however many probes arrive; concurrent probes share one call.
 */
export default fp(async function readiness (fastify: FastifyInstance, opts: AppOptions) {
  const cacheMs = opts.config.READINESS_CACHE_MS
  let last: { at: number, ok: boolean, error: string | null } | null = null
  let inFlight: Promise<void> | null = null

  async function probeUpstream (): Promise<void> {
    try {
      await fastify.replicate.getAccount({ signal: AbortSignal.timeout(3_000) })
      last = { at: Date.now(), ok: true, error: null }
    } catch (err) {
      const code = (err as { code?: string }).code
      last = { at: Date.now(), ok: false, error: code ?? (err as Error).name }
      fastify.log.warn({ code }, 'readiness: Replicate did not answer the account check')
    }
  }

  async function upstreamCheck (): Promise<Check> {
    if (!last || Date.now() - last.at >= cacheMs) {
      inFlight ??= probeUpstream().finally(() => { inFlight = null })
      await inFlight
    }
    return last?.ok ? { status: 'ok' } : { status: 'fail', detail: `Replicate check failed (${last?.error ?? 'unknown'})` }
  }

  /** A token is held (fresh, or past its cache time while its source is unreachable); never the token itself. */
  async function tokenCheck (): Promise<Check> {
    const vault = fastify.tokenVault
    if (!vault) return { status: 'ok' }
    const s = await vault.ensure()
    const source = s.provider === 'azure-key-vault' ? 'Key Vault' : s.provider === 'file' ? 'the token file' : 'the environment'
    switch (s.state) {
      case 'fresh':
        return { status: 'ok' }
      case 'stale':
        // Past its cache time: still served while the source is re-read, or cannot be.
        return s.lastError === null
          ? { status: 'ok' }
          : { status: 'ok', detail: `using the token read ${Math.round((s.ageMs ?? 0) / 1000)} s ago; ${source} could not be read again (${s.lastError})` }
      case 'rejected':
        return { status: 'fail', detail: `Replicate rejected the token from ${source}` }
      default:
        return { status: 'fail', detail: `no Replicate token: ${source} could not be read (${s.lastError ?? 'not read yet'})` }
    }
  }

  /** With a queue worker, ready only while its receiver link is up. */
  function workerCheck (): Check | undefined {
    const worker = fastify.queueWorker
    if (!worker) return undefined
    return worker.status().receiving
      ? { status: 'ok' }
      : { status: 'fail', detail: `not receiving from ${opts.config.SERVICE_BUS_QUEUE ?? 'the queue'}: the receiver link is not attached` }
  }

  async function check (): Promise<ReadinessReport> {
    const draining: Check = fastify.lifecycle.draining ? { status: 'fail', detail: 'shutting down' } : { status: 'ok' }
    const token = await tokenCheck()
    // While draining, or without a token, there is no point asking upstream: the answer is 503 either way.
    const upstream: Check = draining.status === 'fail'
      ? { status: 'fail', detail: 'not checked while draining' }
      : token.status === 'fail' && fastify.tokenVault?.status().state === 'missing'
        ? { status: 'fail', detail: 'not checked without a token' }
        : await upstreamCheck()
    const worker = workerCheck()
    const ok = draining.status === 'ok' && token.status === 'ok' && upstream.status === 'ok' && worker?.status !== 'fail'
    return { status: ok ? 'ready' : 'unavailable', checks: { draining, token, upstream, ...(worker ? { worker } : {}) } }
  }

  fastify.decorate('readiness', {
    check,
    async detail (): Promise<Health> {
      const report = await check()
      return {
        status: report.status,
        version,
        uptime_seconds: Math.round((Date.now() - fastify.lifecycle.startedAt) / 1000),
        draining: fastify.lifecycle.draining,
        upstream: {
          base_url: fastify.upstream.baseUrl,
          emulated: fastify.upstream.emulated,
          last_check_at: last ? new Date(last.at).toISOString() : null,
          last_check: last ? (last.ok ? 'ok' : 'fail') : null,
          last_error: last?.error ?? null
        },
        moderation: { provider: fastify.moderation.name },
        // Replicate's ids are internal: operators find them here and in the log, callers never see them.
        predictions: { tracked: fastify.tracker.tracked(), queued: fastify.tracker.queued(), following: fastify.tracker.snapshot(20) },
        sync_wait_seconds: opts.config.SYNC_WAIT_SECONDS,
        default_plan: opts.config.DEFAULT_PLAN
      }
    }
  })
}, { name: 'readiness', dependencies: ['replicate', 'lifecycle', 'moderation', 'token-vault'] })
