import { createRequire } from 'node:module'
import type { Options } from 'fast-json-stringify'
import type FastJsonStringify from 'fast-json-stringify'

// CommonJS, loaded where the first response schema is compiled (see src/validation.ts).
const require = createRequire(import.meta.url)

/**
 * Fastify's response serializer compiler, compiling each schema when a response first needs it and once for all
 * routes that share it. Eagerly, every route × status was compiled at start-up (the problem schema alone some
 * hundred times), which was much of the time to become ready.
 */
export function buildSerializerCompiler (externalSchemas: unknown, serializerOpts: unknown = {}) {
  const compiled = new Map<string, (data: unknown) => string>()
  return ({ schema }: { schema?: unknown }) => {
    const key = JSON.stringify(schema)
    let serialize: ((data: unknown) => string) | undefined
    return (data: unknown): string => {
      if (!serialize) {
        serialize = compiled.get(key)
        if (!serialize) {
          // Only the shared schemas this one reaches: compiling against all of them cost some 100 ms for each
          // first response (the first readiness probe among them). A schema is not its own external schema either.
          const external = reachable(schema, externalSchemas as Record<string, unknown>)
          const id = (schema as { $id?: unknown }).$id
          if (typeof id === 'string') delete external[id]
          // fast-json-stringify picks an `anyOf` branch (a date or null, a URL list or null) by validating the value
          // against each. The branches differ by type alone, so formats need no checking there: checking them ran a
          // URI regex over every image URL of every prediction read.
          const options = serializerOpts as Options
          const fastJsonStringify = require('fast-json-stringify') as typeof FastJsonStringify
          serialize = fastJsonStringify(schema as Parameters<typeof fastJsonStringify>[0], { ...options, ajv: { ...options.ajv, validateFormats: false }, schema: external as Options['schema'] })
          compiled.set(key, serialize)
        }
      }
      return serialize(data)
    }
  }
}

/** The shared schemas `schema` refers to by `$ref`, directly or through each other, by `$id`. */
export function reachable (schema: unknown, shared: Record<string, unknown>): Record<string, unknown> {
  const found: Record<string, unknown> = {}
  const visit = (node: unknown): void => {
    if (node === null || typeof node !== 'object') return
    if (Array.isArray(node)) {
      for (const item of node) visit(item)
      return
    }
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') {
        const id = value.split('#')[0]!
        if (id !== '' && !(id in found) && shared[id] !== undefined) {
          found[id] = shared[id]
          visit(shared[id])
        }
      } else {
        visit(value)
      }
    }
  }
  visit(schema)
  return found
}
