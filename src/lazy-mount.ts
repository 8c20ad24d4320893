import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'

/** Headers that describe the inner exchange's connection or length, which the outer reply sets for itself. */
const HOP_HEADERS = ['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date']

/**
 * Serves `urls` from an app built on their first request, through `inject`: what only a person opens in a browser
 * (the docs page, the playground's files) then costs nothing at start-up, where a scale-to-zero host has a caller
 * waiting. The inner app sees the request as it came (HEAD as GET: the outer route drops the body and keeps the
 * length); its status and headers are answered as they are.
 */
export function lazyMount (fastify: FastifyInstance, o: { urls: string[], build: () => Promise<FastifyInstance> }): void {
  let inner: Promise<FastifyInstance> | undefined
  const app = (): Promise<FastifyInstance> => {
    inner ??= o.build().then(async (built) => {
      await built.ready()
      return built
    }, (err: unknown) => {
      inner = undefined
      throw err
    })
    return inner
  }
  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const res = await (await app()).inject({
      method: request.method === 'HEAD' ? 'GET' : request.method as 'GET',
      url: request.url,
      headers: request.headers
    })
    const headers: Record<string, string | string[] | number | undefined> = { ...res.headers }
    for (const name of HOP_HEADERS) delete headers[name]
    return reply.code(res.statusCode).headers(headers).send(res.rawPayload)
  }
  for (const url of o.urls) fastify.get(url, { schema: { hide: true } }, handler)
  fastify.addHook('onClose', async () => {
    if (inner) await (await inner.catch(() => undefined))?.close()
  })
}
