import Fastify from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { EmulatorContext } from './context.ts'
import { registerCatalogRoutes } from './http/catalog-routes.ts'
import { registerControlRoutes } from './http/control-routes.ts'
import { registerDeliveryRoutes } from './http/delivery-routes.ts'
import { registerFileRoutes } from './http/files-routes.ts'
import { registerPipeline } from './http/pipeline.ts'
import { registerPredictionRoutes } from './http/predictions-routes.ts'
import { sendProblem } from './http/reply.ts'
import { notFound } from './problems.ts'

/** The emulator's HTTP app, built without listening. */
export function buildEmulatorApp (ctx: EmulatorContext): FastifyInstance {
  const app = Fastify({
    logger: false,
    // Room for a data-URI input or upload at the limit (base64 adds a third); the routes answer 413 above it.
    bodyLimit: Math.ceil(ctx.options.maxFileBytes * 1.4) + 1024 * 1024,
    // Sync waits and keep-alive sockets must not hold up close().
    forceCloseConnections: true,
    return503OnClosing: false
  })
  registerPipeline(app, ctx)
  registerPredictionRoutes(app, ctx)
  registerCatalogRoutes(app, ctx)
  registerFileRoutes(app, ctx)
  registerDeliveryRoutes(app, ctx)
  if (ctx.options.control) registerControlRoutes(app, ctx)
  app.setNotFoundHandler((_request, reply) => sendProblem(reply, notFound()))
  return app
}
