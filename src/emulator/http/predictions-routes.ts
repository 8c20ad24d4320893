import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { findReplicateModel, REPLICATE_MODELS } from '../../models/replicate-models.ts'
import type { ReplicateModelSpec } from '../../models/replicate-models.ts'
import type { EmulatorContext } from '../context.ts'
import { MIN_CANCEL_AFTER_MS, parseCancelAfter, parsePreferWait } from '../headers.ts'
import { versionIdFor } from '../ids.ts'
import { dataUriByteLength } from '../input-images.ts'
import { imageInputFields } from '../output-size.ts'
import { badRequest, billingRequired, fileTooLarge, invalidVersion, notFound, validationFailed } from '../problems.ts'
import type { Problem } from '../problems.ts'
import { validateInput, validatePredictionRequest } from '../validation.ts'
import type { PredictionRequestBody } from '../validation.ts'
import { tokenOf } from './pipeline.ts'
import { sendJson, sendProblem } from './reply.ts'

/** Prediction create, get, cancel and list (REFERENCE §1.1–§1.5, §2.1, §11.3–7). */

type ModelParams = { owner: string, name: string }
type IdParams = { id: string }

/** `owner/name` (official models), `owner/name:<64 hex>` or a bare 64-hex version id. */
function resolveVersion (version: string): { model: ReplicateModelSpec, version: string } | undefined {
  const [ref, id] = version.split(':', 2)
  if (id !== undefined) {
    const model = findReplicateModel(ref!)
    return model && versionIdFor(model.ref) === id ? { model, version: id } : undefined
  }
  const byRef = findReplicateModel(version)
  if (byRef) return { model: byRef, version: 'hidden' }
  const byId = Object.values(REPLICATE_MODELS).find((m) => versionIdFor(m.ref) === version)
  return byId && { model: byId, version }
}

function headerValue (request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name]
  return Array.isArray(value) ? value.join(', ') : value
}

type Checked<T> = { ok: true, value: T } | { ok: false, problem: Problem }

function checkCancelAfter (header: string | undefined): Checked<number | undefined> {
  if (header === undefined) return { ok: true, value: undefined }
  const ms = parseCancelAfter(header)
  if (ms === undefined) return { ok: false, problem: badRequest(`Invalid Cancel-After header: ${JSON.stringify(header)}. Use a duration such as 30s, 5m or 1h30m.`, 'Invalid Cancel-After header') }
  if (ms < MIN_CANCEL_AFTER_MS) return { ok: false, problem: badRequest('Cancel-After must be at least 5 seconds', 'Invalid Cancel-After header') }
  return { ok: true, value: ms }
}

function checkPrefer (ctx: EmulatorContext, header: string | undefined): Checked<{ seconds: number, applied: string } | undefined> {
  const prefer = parsePreferWait(header)
  if (prefer.kind === 'none') return { ok: true, value: undefined }
  if (prefer.kind === 'wait') return { ok: true, value: prefer }
  if (ctx.options.preferWaitOutOfRange === 'reject') {
    return { ok: false, problem: badRequest(`Prefer: wait=${prefer.requested} is out of range; use a number of seconds between 1 and 60`) }
  }
  const seconds = Math.min(60, Math.max(1, prefer.requested))
  return { ok: true, value: { seconds, applied: `wait=${seconds}` } }
}

async function createPrediction (ctx: EmulatorContext, request: FastifyRequest, reply: FastifyReply, model: ReplicateModelSpec | undefined): Promise<FastifyReply> {
  const token = tokenOf(request)
  if (ctx.options.billingRequiredTokens.has(token)) return sendProblem(reply, billingRequired())
  const withVersion = model === undefined
  const invalid = validatePredictionRequest(request.body, withVersion)
  if (invalid.length > 0) return sendProblem(reply, validationFailed(invalid))
  const body = request.body as PredictionRequestBody
  let version = 'hidden'
  if (withVersion) {
    const resolved = resolveVersion(body.version!)
    if (!resolved) return sendProblem(reply, invalidVersion())
    model = resolved.model
    version = resolved.version
  }
  const inputProblems = validateInput(model!.input, body.input)
  if (inputProblems.length > 0) return sendProblem(reply, validationFailed(inputProblems))
  for (const field of imageInputFields(model!)) {
    const value = body.input[field]
    const size = typeof value === 'string' ? dataUriByteLength(value) : undefined
    if (size !== undefined && size > ctx.options.maxFileBytes) return sendProblem(reply, fileTooLarge(ctx.options.maxFileBytes))
  }
  const cancelAfter = checkCancelAfter(headerValue(request, 'cancel-after'))
  if (!cancelAfter.ok) return sendProblem(reply, cancelAfter.problem)
  const prefer = checkPrefer(ctx, headerValue(request, 'prefer'))
  if (!prefer.ok) return sendProblem(reply, prefer.problem)

  const created = ctx.engine.create({
    model: model!,
    version,
    input: body.input,
    webhook: body.webhook,
    webhookEventsFilter: body.webhook_events_filter,
    cancelAfterMs: cancelAfter.value
  })
  if (!prefer.value) return sendJson(reply, 201, created)
  const waited = await ctx.engine.waitForOutput(created.id, prefer.value.seconds * 1000)
  reply.header('preference-applied', prefer.value.applied)
  return sendJson(reply, waited.ready ? 201 : ctx.options.syncTimeoutStatus, waited.prediction ?? created)
}

const CURSOR_PREFIX = 'p='

function parseTime (value: unknown): number | undefined | null {
  if (value === undefined) return undefined
  const ms = typeof value === 'string' ? Date.parse(value) : NaN
  return Number.isNaN(ms) ? null : ms
}

export function registerPredictionRoutes (app: FastifyInstance, ctx: EmulatorContext): void {
  app.post<{ Params: ModelParams }>('/v1/models/:owner/:name/predictions', async (request, reply) => {
    const model = findReplicateModel(`${request.params.owner}/${request.params.name}`)
    if (!model) return sendProblem(reply, notFound())
    return createPrediction(ctx, request, reply, model)
  })

  app.post('/v1/predictions', async (request, reply) => createPrediction(ctx, request, reply, undefined))

  app.get<{ Params: IdParams }>('/v1/predictions/:id', async (request, reply) => {
    const prediction = ctx.engine.get(request.params.id)
    return prediction ? sendJson(reply, 200, prediction) : sendProblem(reply, notFound())
  })

  app.post<{ Params: IdParams }>('/v1/predictions/:id/cancel', async (request, reply) => {
    const prediction = ctx.engine.cancel(request.params.id)
    return prediction ? sendJson(reply, 200, prediction) : sendProblem(reply, notFound())
  })

  app.get<{ Querystring: Record<string, string | undefined> }>('/v1/predictions', async (request, reply) => {
    const { cursor, created_after: after, created_before: before } = request.query
    const createdAfter = parseTime(after)
    const createdBefore = parseTime(before)
    if (createdAfter === null || createdBefore === null) return sendProblem(reply, badRequest('created_after and created_before must be ISO 8601 date-times'))
    let beforeSeq: number | undefined
    if (cursor !== undefined) {
      const decoded = Buffer.from(cursor, 'base64url').toString('utf8')
      beforeSeq = decoded.startsWith(CURSOR_PREFIX) ? Number(decoded.slice(CURSOR_PREFIX.length)) : NaN
      if (!Number.isInteger(beforeSeq)) return sendProblem(reply, badRequest('Invalid cursor'))
    }
    const page = ctx.engine.list({ createdAfter, createdBefore, before: beforeSeq, limit: ctx.options.listPageSize })
    let next: string | null = null
    if (page.nextBefore !== undefined) {
      const url = new URL(`${ctx.publicUrl()}/v1/predictions`)
      url.searchParams.set('cursor', Buffer.from(`${CURSOR_PREFIX}${page.nextBefore}`).toString('base64url'))
      if (after !== undefined) url.searchParams.set('created_after', after)
      if (before !== undefined) url.searchParams.set('created_before', before)
      next = url.href
    }
    return sendJson(reply, 200, { next, previous: null, results: page.results })
  })
}
