import type { FastifyInstance } from 'fastify'
import { findReplicateModel } from '../../models/replicate-models.ts'
import type { JsonSchema, ReplicateModelSpec } from '../../models/replicate-models.ts'
import type { EmulatorContext } from '../context.ts'
import { versionIdFor } from '../ids.ts'
import { notFound } from '../problems.ts'
import { sendJson, sendProblem } from './reply.ts'

/** Model metadata, the account, and the webhook signing secret (REFERENCE §1.6, §1.7, §1.9). */

const DESCRIPTIONS: Record<string, string> = {
  'black-forest-labs/flux-schnell': 'The fastest image generation model tailored for local development and personal use',
  'black-forest-labs/flux-dev': 'A 12 billion parameter rectified flow transformer capable of generating images from text descriptions',
  'black-forest-labs/flux-1.1-pro': 'Faster, better FLUX Pro. Text-to-image model with excellent image quality, prompt adherence, and output diversity.',
  'black-forest-labs/flux-kontext-pro': 'A state-of-the-art text-based image editing model that delivers high-quality outputs with excellent prompt following and consistent results'
}

const LICENSES: Record<string, string> = {
  'black-forest-labs/flux-schnell': 'https://github.com/black-forest-labs/flux/blob/main/model_licenses/LICENSE-FLUX1-schnell',
  'black-forest-labs/flux-dev': 'https://github.com/black-forest-labs/flux/blob/main/model_licenses/LICENSE-FLUX1-dev'
}

const titleOf = (name: string): string => name.split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ')

/** The Cog-style `Input` component: the pinned schema plus the `title` and `x-order` Cog adds. */
function inputComponent (spec: ReplicateModelSpec): Record<string, unknown> {
  const properties: Record<string, JsonSchema & Record<string, unknown>> = {}
  Object.entries(spec.input.properties).forEach(([name, schema], order) => {
    properties[name] = { ...structuredClone(schema), title: titleOf(name), 'x-order': order }
  })
  return { type: 'object', title: 'Input', required: [...(spec.input.required ?? [])], properties }
}

function outputComponent (spec: ReplicateModelSpec): Record<string, unknown> {
  const uri = { type: 'string', format: 'uri' }
  return spec.output === 'array' ? { type: 'array', title: 'Output', items: uri } : { ...uri, title: 'Output' }
}

export function modelView (spec: ReplicateModelSpec): Record<string, unknown> {
  const [owner, name] = spec.ref.split('/')
  return {
    url: `https://replicate.com/${spec.ref}`,
    owner,
    name,
    description: DESCRIPTIONS[spec.ref] ?? null,
    visibility: 'public',
    github_url: null,
    paper_url: null,
    license_url: LICENSES[spec.ref] ?? null,
    run_count: 0,
    cover_image_url: null,
    default_example: null,
    latest_version: {
      id: versionIdFor(spec.ref),
      created_at: '2025-01-01T00:00:00.000Z',
      cog_version: '0.16.8',
      openapi_schema: {
        openapi: '3.0.2',
        info: { title: 'Cog', version: '0.1.0' },
        paths: {},
        components: { schemas: { Input: inputComponent(spec), Output: outputComponent(spec) } }
      }
    },
    is_official: true
  }
}

export function registerCatalogRoutes (app: FastifyInstance, ctx: EmulatorContext): void {
  app.get<{ Params: { owner: string, name: string } }>('/v1/models/:owner/:name', async (request, reply) => {
    const spec = findReplicateModel(`${request.params.owner}/${request.params.name}`)
    return spec ? sendJson(reply, 200, modelView(spec)) : sendProblem(reply, notFound())
  })

  app.get<{ Params: { owner: string, name: string } }>('/v1/models/:owner/:name/versions', async (request, reply) => {
    const spec = findReplicateModel(`${request.params.owner}/${request.params.name}`)
    if (!spec) return sendProblem(reply, notFound())
    return sendJson(reply, 200, { next: null, previous: null, results: [modelView(spec).latest_version] })
  })

  app.get<{ Params: { owner: string, name: string, version: string } }>('/v1/models/:owner/:name/versions/:version', async (request, reply) => {
    const spec = findReplicateModel(`${request.params.owner}/${request.params.name}`)
    if (!spec || versionIdFor(spec.ref) !== request.params.version) return sendProblem(reply, notFound())
    return sendJson(reply, 200, modelView(spec).latest_version)
  })

  app.get('/v1/account', async (_request, reply) => sendJson(reply, 200, {
    type: 'user',
    username: 'emulator',
    name: 'Replicate Emulator',
    github_url: 'https://github.com/replicate'
  }))

  app.get('/v1/webhooks/default/secret', async (_request, reply) => sendJson(reply, 200, { key: ctx.options.webhookSecret }))

  // urls.web points here; a page with the status and images is enough for a person looking.
  app.get<{ Params: { id: string } }>('/p/:id', async (request, reply) => {
    const prediction = ctx.engine.get(request.params.id)
    if (!prediction) return sendProblem(reply, notFound())
    const outputs = Array.isArray(prediction.output) ? prediction.output : prediction.output ? [prediction.output] : []
    const images = outputs.map((src) => `<img src="${String(src)}" style="max-width:45%">`).join('\n')
    const html = `<!doctype html><title>${prediction.id}</title><h1>${prediction.model}: ${prediction.status}</h1>\n${images}\n<pre>${escapeHtml(JSON.stringify(prediction, null, 2))}</pre>`
    return reply.type('text/html; charset=utf-8').send(html)
  })
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!)
}
