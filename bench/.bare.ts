import Fastify from 'fastify'
import { Agent, request } from 'undici'
const app = Fastify()
const waiting: Array<() => void> = []
app.get('/wait', async () => { await new Promise<void>((r) => waiting.push(r)); return { ok: true } })
await app.listen({ port: 3991 })
const agent = new Agent({ connections: null })
const rss = () => process.memoryUsage().rss / 1048576
const start = rss()
const N = 8000
const all = Array.from({ length: N }, async () => { const r = await request('http://127.0.0.1:3991/wait', { dispatcher: agent }); await r.body.text() })
await new Promise((r) => setTimeout(r, 6000))
console.log('bare fastify + client in one process, plateau rss', rss().toFixed(0), 'start', start.toFixed(0), 'waiting', waiting.length)
for (const w of waiting) w()
await Promise.all(all)
await app.close(); await agent.close()
