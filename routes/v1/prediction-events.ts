import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
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
  // One timer for every open stream rather than one each.
  const streams = new Set<ServerResponse>()
  const heartbeat = setInterval(() => { for (const raw of streams) raw.write(': heartbeat\n\n') }, heartbeatMs)
  heartbeat.unref()
  fastify.addHook('onClose', async () => {
    clearInterval(heartbeat)
    for (const raw of streams) raw.end()
  })

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
    const raw = reply.raw
    let at: Position = parseLastEventId(request.headers['last-event-id'])
    let ended = false
    const end = (): void => {
      if (ended) return
      ended = true
      streams.delete(raw)
      unsubscribe()
      raw.end()
    }
    const deliver = (next: PredictionEntry): void => {
      if (ended) return
      const { events: out, at: after } = eventsSince(next, at, present)
      at = after
      if (out.length > 0) raw.write(out.map(formatEvent).join(''))
      if (next.finalized) end()
    }
    // Ownership first (404 for another key's prediction); the stream then follows the prediction from its
    // current state on, shared with everyone else watching it here.
    await fastify.tenancy.entry(request.tenant, id)
    let unsubscribe = (): void => {}
    // Written by hand from here: thousands of open streams are cheaper as raw writes than as piped stream objects.
    // The headers set so far (the request id, CORS) go out with the stream's own.
    reply.hijack()
    raw.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Proxies such as nginx buffer responses unless told not to; events must go out as they happen.
      'x-accel-buffering': 'no'
    })
    raw.write('retry: 2000\n\n')
    streams.add(raw)
    // The caller left: stop listening (the prediction itself goes on).
    raw.once('close', end)
    unsubscribe = fastify.tracker.follow(id, deliver)
    // Final at once: the stream has ended, and `unsubscribe` was not set yet when it did.
    if (ended) unsubscribe()
    request.log.info({ predictionId: id, status: 200 }, 'event stream opened')
  })
}

export default events
