import type { FastifyBaseLogger } from 'fastify'
import { fieldProblems } from '../problems.ts'
import type { AjvProblem } from '../problems.ts'
import { toProblem } from '../problems.ts'
import { abortableSleep } from '../replicate/retry.ts'
import type { PublicPrediction } from '../schemas/common.ts'
import type { ImageToImageRequest, TextToImageRequest } from '../schemas/generation.ts'
import type { GenerationMessage, ReplyTo } from '../schemas/queue-message.ts'
import type { StateStore } from '../stores/types.ts'
import { IDEMPOTENCY_LOCK_MS, canonicalJson, idempotencyScope, sha256 } from '../tenancy/idempotency.ts'
import type { ImageUrlSigner } from '../tenancy/image-urls.ts'
import type { TenantService } from '../tenancy/service.ts'
import { tenantOf } from '../tenancy/tenant.ts'
import type { Tenant } from '../tenancy/tenant.ts'

/**
 * One queued generation request, taken through the same service layer as POST /v1/text-to-image and
 * /v1/image-to-image: the key's tenant, its Idempotency-Key records, moderation, the ledger, kept images. The answer
 * is what to do with the message; the queue itself is someone else's business (queue-worker.ts).
 */

const TERMINAL = new Set(['succeeded', 'failed', 'canceled', 'aborted'])
/** Refusals that a redelivery would meet again: the message goes to the dead-letter queue. */
const PERMANENT_STATUSES = new Set([400, 401, 402, 403, 404, 413, 415, 422])
/** How long each wait for a running prediction lasts before it is asked again. */
const WAIT_SECONDS = 60
/** How often a message whose key another delivery holds looks again. */
const IN_FLIGHT_RECHECK_MS = 1_000

/** A compiled Ajv validator, as the routes' validator compiler returns it. */
export interface Validator {
  (data: unknown): boolean
  errors?: AjvProblem[] | null | undefined
}

export interface QueuedMessage {
  body: unknown
  messageId: string | undefined
  deliveryCount: number
}

export type Outcome =
  | { action: 'complete', prediction: PublicPrediction, replyTo: ReplyTo | undefined }
  | { action: 'dead-letter', reason: string, description: string, problem: Record<string, unknown> | undefined, replyTo: ReplyTo | undefined }
  | { action: 'abandon', reason: string, description: string, replyTo: ReplyTo | undefined, retryAfterSeconds?: number | undefined }

export interface MessageProcessorOptions {
  store: StateStore
  tenancy: TenantService
  imageUrls: ImageUrlSigner
  validators: { envelope: Validator, 'text-to-image': Validator, 'image-to-image': Validator }
  /** The origin of the image URLs in replies (PUBLIC_BASE_URL, or the HTTP service's own address). */
  baseUrl: string
  /** How long a create waits for the images in its one upstream request (SYNC_WAIT_SECONDS). */
  syncWaitSeconds: number
  idempotencyTtlMs: number
  /** Why a reply_to.webhook URL can never be posted to (scheme, forbidden address), or undefined. */
  webhookViolation: (url: string) => string | undefined
  log: FastifyBaseLogger
}

export interface MessageProcessor {
  /** Never throws: every failure is an outcome. `signal` is shutdown: waiting stops, and the message is abandoned. */
  process: (message: QueuedMessage, signal: AbortSignal) => Promise<Outcome>
}

/** What no redelivery can change: dead-lettered with `reason` (a problem code) and the message as description. */
class Refusal extends Error {
  readonly reason: string
  readonly problem: Record<string, unknown> | undefined
  constructor (reason: string, message: string, problem?: Record<string, unknown>) {
    super(message)
    this.reason = reason
    this.problem = problem
  }
}

function parseBody (body: unknown): unknown {
  // Senders other than the JS SDK put JSON in a data section as bytes; the JS SDK hands back the parsed object.
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : body instanceof Uint8Array ? Buffer.from(body).toString('utf8') : typeof body === 'string' ? body : undefined
  if (text === undefined) return body
  try {
    return JSON.parse(text)
  } catch {
    throw new Refusal('invalid_message', 'The message body is not JSON.')
  }
}

function describe (problems: Array<{ field: string, message: string }>): string {
  return problems.map((p) => `${p.field} ${p.message}`).join('; ')
}

export function createMessageProcessor (opts: MessageProcessorOptions): MessageProcessor {
  const { store, tenancy, validators } = opts

  function validate (body: unknown, replyTo: { value?: ReplyTo }): GenerationMessage {
    if (!validators.envelope(body)) {
      const problems = fieldProblems(validators.envelope.errors ?? [], 'body')
      throw new Refusal('invalid_message', `The message is not a generation request: ${describe(problems)}.`, { errors: problems })
    }
    const message = body as GenerationMessage
    if (message.reply_to && 'webhook' in message.reply_to) {
      const why = opts.webhookViolation(message.reply_to.webhook)
      if (why !== undefined) throw new Refusal('url_not_allowed', `reply_to.webhook: ${why}`, { errors: [{ field: 'reply_to.webhook', message: why }] })
    }
    // Known from here on, so even a refused request hears why.
    replyTo.value = message.reply_to
    const check = validators[message.kind]
    // Judged by the route's own schema (defaults applied as there), so the fields are named as the HTTP API names them.
    if (!check(message.request)) {
      const problems = fieldProblems(check.errors ?? [], 'body').map((p) => ({ ...p, field: `request.${p.field}` }))
      throw new Refusal('validation_error', `The request has invalid fields: ${describe(problems)}.`, { errors: problems })
    }
    return message
  }

  async function tenantFor (keyId: string): Promise<Tenant> {
    const key = await store.getKey(keyId)
    if (!key || key.revokedAt !== null) throw new Refusal('unknown_api_key', `No active API key has the id ${keyId}.`)
    return tenantOf(key)
  }

  /** Until the prediction is final: its images kept and its credits settled. */
  async function untilFinal (tenant: Tenant, prediction: PublicPrediction, signal: AbortSignal): Promise<PublicPrediction> {
    let current = prediction
    while (!TERMINAL.has(current.status)) {
      signal.throwIfAborted()
      current = await tenancy.get(tenant, current.id, { baseUrl: opts.baseUrl, waitSeconds: WAIT_SECONDS, signal })
    }
    return current
  }

  /** A prediction this key already made for this idempotency key, or a refusal it got then. */
  function replayed (status: number, body: string): { id: string } {
    const parsed = JSON.parse(body) as { id?: unknown, code?: unknown, detail?: unknown }
    if (status < 300 && typeof parsed.id === 'string') return { id: parsed.id }
    throw new Refusal(typeof parsed.code === 'string' ? parsed.code : 'invalid_message', typeof parsed.detail === 'string' ? parsed.detail : `The first request with this idempotency key was refused (${status}).`, parsed as Record<string, unknown>)
  }

  async function run (message: QueuedMessage, signal: AbortSignal, log: FastifyBaseLogger, replyTo: { value?: ReplyTo }): Promise<PublicPrediction> {
    const parsed = validate(parseBody(message.body), replyTo)
    const tenant = await tenantFor(parsed.api_key_id)
    const key = parsed.idempotency_key ?? message.messageId
    if (key === undefined || key === '') throw new Refusal('invalid_message', 'The message has neither an idempotency_key nor a messageId.')
    // The same record as POST /v1/<kind> with this Idempotency-Key: a message and an HTTP call cannot both create.
    const scope = idempotencyScope(tenant.id, `POST /v1/${parsed.kind}`, key)
    const fingerprint = sha256(canonicalJson(parsed.request))
    const ttl = { ttlMs: opts.idempotencyTtlMs }
    const givenUpAt = Date.now() + IDEMPOTENCY_LOCK_MS
    for (;;) {
      const begun = await store.idempotencyBegin(scope, fingerprint, { lockMs: IDEMPOTENCY_LOCK_MS, ...ttl, now: Date.now() })
      if (begun.state === 'mismatch') throw new Refusal('idempotency_key_reused', 'This idempotency key was used with a different request.')
      if (begun.state === 'completed') {
        const { id } = replayed(begun.response.status, begun.response.body)
        log.info({ predictionId: id }, 'queued request already made its prediction: following it')
        const current = await tenancy.get(tenant, id, { baseUrl: opts.baseUrl, signal })
        return await untilFinal(tenant, current, signal)
      }
      if (begun.state === 'started') break
      // Another delivery (a lock that lapsed, a worker that died) holds the key; its record ends within the lock.
      if (Date.now() > givenUpAt) throw new Error('the idempotency key stayed in flight past its lock')
      await abortableSleep(IN_FLIGHT_RECHECK_MS, signal)
    }
    let created
    try {
      // No signal: a create once begun runs to its answer, so its prediction is recorded whatever shutdown does.
      const body = parsed.request
      created = parsed.kind === 'text-to-image'
        ? await tenancy.createTextToImage(tenant, body as TextToImageRequest, { waitSeconds: opts.syncWaitSeconds, log, baseUrl: opts.baseUrl })
        : await tenancy.createImageToImage(tenant, body as ImageToImageRequest, { waitSeconds: opts.syncWaitSeconds, log, baseUrl: opts.baseUrl })
    } catch (err) {
      await store.idempotencyAbandon(scope)
      throw err
    }
    const prediction = opts.imageUrls.signOutput(created.prediction)
    // Kept as the HTTP route keeps it, so a redelivery, or an HTTP retry with the same key, follows this prediction.
    await store.idempotencyComplete(scope, fingerprint, {
      status: created.settled ? 200 : 202,
      headers: { 'content-type': 'application/json; charset=utf-8', ...(created.settled ? {} : { location: prediction.urls.get }) },
      body: JSON.stringify(prediction)
    }, { ...ttl, now: Date.now() })
    return await untilFinal(tenant, created.prediction, signal)
  }

  return {
    async process (message, signal) {
      const log = opts.log.child({ messageId: message.messageId, deliveryCount: message.deliveryCount })
      const replyTo: { value?: ReplyTo } = {}
      try {
        const final = await run(message, signal, log, replyTo)
        return { action: 'complete', prediction: opts.imageUrls.signOutput(final), replyTo: replyTo.value }
      } catch (err) {
        if (err instanceof Refusal) {
          log.warn({ reason: err.reason }, 'queued request refused: dead-lettering it')
          return { action: 'dead-letter', reason: err.reason, description: err.message, problem: err.problem, replyTo: replyTo.value }
        }
        if (signal.aborted) return { action: 'abandon', reason: 'shutting_down', description: 'The worker stopped before the prediction was final.', replyTo: replyTo.value }
        // The one translation of errors the routes use decides what is permanent.
        const problem = toProblem(err, message.messageId ?? 'unknown')
        if (PERMANENT_STATUSES.has(problem.status)) {
          log.warn({ reason: problem.body.code }, 'queued request refused: dead-lettering it')
          return { action: 'dead-letter', reason: problem.body.code, description: problem.body.detail, problem: problem.body, replyTo: replyTo.value }
        }
        if (problem.status === 500) log.error({ err }, 'queued request failed unexpectedly')
        else log.warn({ reason: problem.body.code }, 'queued request failed for now: abandoning it for a retry')
        const retryAfter = Number(problem.headers['retry-after'])
        return { action: 'abandon', reason: problem.body.code, description: problem.body.detail, replyTo: replyTo.value, retryAfterSeconds: Number.isFinite(retryAfter) ? retryAfter : undefined }
      }
    }
  }
}
