import { createRequire } from 'node:module'
import type { AnySchema, Ajv, ValidateFunction } from 'ajv'
import type * as AjvModule from 'ajv'
import type AjvFormats from 'ajv-formats'

// Ajv is CommonJS, so it can be loaded synchronously where the first schema is compiled: a probe, which validates
// nothing, then answers without waiting for it to load.
const require = createRequire(import.meta.url)

/**
 * Request validation with two Ajv instances: bodies are checked strictly (no type coercion, so
 * `"width": "1024"` is a 400 naming `width`, and unknown fields are refused rather than dropped),
 * while querystrings and params, which are always text on the wire, are coerced to their types.
 * Both report every bad field at once. `verbose` hands each error its schema, so the one place errors are turned
 * into messages (fieldProblems in src/problems.ts) can read a schema's own `x-error-message` and its known fields.
 */
export function buildValidatorCompiler (externalSchemas: Record<string, unknown>) {
  const make = (coerceTypes: boolean | 'array') => {
    const { Ajv } = require('ajv') as typeof AjvModule
    const formats = require('ajv-formats') as typeof AjvFormats
    const ajv = new Ajv({ allErrors: true, verbose: true, coerceTypes, removeAdditional: false, useDefaults: true, strict: false })
    formats.default(ajv)
    for (const schema of Object.values(externalSchemas)) ajv.addSchema(schema as AnySchema)
    return ajv
  }
  // Made on first use, and each schema compiled when a request first needs it: compiling every route's schemas
  // up front was most of the time to start, and many routes are never called by a given deployment.
  let strict: Ajv | undefined
  let coercing: Ajv | undefined
  const compiled = new Map<string, ValidateFunction>()
  return ({ schema, httpPart }: { schema: unknown, httpPart?: string }) => {
    const body = httpPart === 'body'
    const key = `${body ? 'body' : 'text'}:${JSON.stringify(schema)}`
    let validate: ValidateFunction | undefined
    const get = (): ValidateFunction => {
      if (validate) return validate
      validate = compiled.get(key)
      if (!validate) {
        const ajv = body ? (strict ??= make(false)) : (coercing ??= make('array'))
        validate = ajv.compile(schema as AnySchema)
        compiled.set(key, validate)
      }
      return validate
    }
    // Fastify reads `errors` off the function after a failed call, as Ajv's own validators carry them.
    const lazy = (data: unknown): boolean => get()(data) as boolean
    Object.defineProperty(lazy, 'errors', { get: () => get().errors })
    // Typed as Ajv's validator for Fastify's types; Fastify only calls it and reads `errors`.
    return lazy as unknown as ValidateFunction
  }
}
