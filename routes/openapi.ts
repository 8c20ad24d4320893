import type { FastifyPluginAsync } from 'fastify'

const openapi: FastifyPluginAsync = async (fastify) => {
  fastify.get('/openapi.json', {
    schema: { hide: true }
  }, async () => fastify.swagger())
}

export default openapi
