import { Ajv } from 'ajv'
import type { AnySchema } from 'ajv'
import formats from 'ajv-formats'

/**
 * Request validation with two Ajv instances: bodies are checked strictly (no type coercion, so
 * `"width": "1024"` is a 400 naming `width`, and unknown fields are refused rather than dropped),
 * while querystrings and params, which are always text on the wire, are coerced to their types.
 * Both report every bad field at once. `verbose` hands each error its schema, so the one place errors are turned
 * into messages (fieldProblems in src/problems.ts) can read a schema's own `x-error-message` and its known fields.
 */
export function buildValidatorCompiler (externalSchemas: Record<string, unknown>) {
  const make = (coerceTypes: boolean | 'array') => {
    const ajv = new Ajv({ allErrors: true, verbose: true, coerceTypes, removeAdditional: false, useDefaults: true, strict: false })
    // ajv-formats is CommonJS: its callable default export is `.default` under ESM.
    formats.default(ajv)
    for (const schema of Object.values(externalSchemas)) ajv.addSchema(schema as AnySchema)
    return ajv
  }
  const strict = make(false)
  const coercing = make('array')
  return ({ schema, httpPart }: { schema: unknown, httpPart?: string }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema as AnySchema)
}
