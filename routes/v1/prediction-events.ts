import { PassThrough } from 'node:stream'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { AppOptions } from '../../src/app.ts'
import { eventsSince, formatEvent, parseLastEventId } from '../../src/predictions/events.ts'
import type { Position } from '../../src/predictions/events.ts'
import { BEARER_SECURITY, PredictionIdParamsSchema, problemResponses } from '../../src/schemas/common.ts'
import type { PredictionEntry } from '../../src/stores/types.ts'

/**
 * GET /v1/predictions/{id}/events: the prediction's progress pushed as it happens. Served from the store and the
 * change feed, never from Replicate, so a stream costs nothing upstream and works on any instance.
 *
 * Written by hand rather than with @fastify/sse: resuming here is derived from the stored state (any instance,
 * after a restart), not replayed from a per-process message buffer, which is what that plugin's replay keeps.
 */
const events: FastifyPluginAsyncTypebox<AppOptions> = async (fastify, opts) => {
  const heartbeatMs = opts.config.EVENTS_HEARTBEAT_SECONDS * 1000

  fastify.get('/predictions/:id/events', {
    schema: {
      operationId: 'streamPredictionEvents',
      tags: ['predictions'],
      summary: "A prediction's progress as server-sent events",
      description: 'A `text/event-stream`: `status` with the prediction whenever its status moves (and first thing), `output` with the image URLs ' +
        'when they are available, `completed` with the final prediction, after which the stream ends. A comment line every ' +
        'EVENTS_HEARTBEAT_SECONDS (15) keeps proxies from closing it. Reconnect with `Last-Event-ID` to resume without repeats. ' +
        "Only the key that created the prediction can follow it; another key's prediction is 404.",
      security: BEARER_SECURITY,
      params: PredictionIdParamsSchema,
      headers: Type.Object({
        'last-event-id': Type.Optional(Type.String({ maxLength: 40, description: 'The id of the last event received, to resume after it.' }))
      }),
      response: {
        200: { description: 'The event stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        ...problemResponses(400, 401, 404, 429)
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const baseUrl = fastify.publicBaseUrl(request)
    const present = (entry: PredictionEntry) => fastify.imageUrls.signOutput(fastify.tenancy.present(entry, baseUrl))
    const stream = new PassThrough()
    let at: Position = parseLastEventId(request.headers['last-event-id'])
    let ended = false
    const timers: { heartbeat?: NodeJS.Timeout } = {}
    // Subscribed before the first read, so a change in between is not lost; what arrives before the read is held.
    let held: PredictionEntry[] | null = []
    const end = (): void => {
      if (ended) return
      ended = true
      clearInterval(timers.heartbeat)
      unsubscribe()
      stream.end()
    }
    const deliver = (next: PredictionEntry): void => {
      if (ended) return
      if (held) return void held.push(next)
      const { events: out, at: after } = eventsSince(next, at, present)
      at = after
      for (const e of out) stream.write(formatEvent(e))
      if (next.finalized) end()
    }
    const unsubscribe = fastify.changes.subscribe(id, deliver)
    let entry: PredictionEntry
    try {
      entry = await fastify.tenancy.entry(request.tenant, id)
    } catch (err) {
      unsubscribe()
      throw err
    }
    timers.heartbeat = setInterval(() => { stream.write(': heartbeat\n\n') }, heartbeatMs)
    // The caller left: stop listening (the prediction itself goes on).
    reply.raw.once('close', end)
    stream.write('retry: 2000\n\n')
    const early = held
    held = null
    // Changes come with their seq: the store's entry and anything older are skipped by it.
    deliver(entry)
    for (const change of early) deliver(change)

    return reply
      .header('content-type', 'text/event-stream; charset=utf-8')
      .header('cache-control', 'no-cache, no-transform')
      // Proxies such as nginx buffer responses unless told not to; events must go out as they happen.
      .header('x-accel-buffering', 'no')
      .send(stream)
  })
}

export default events
