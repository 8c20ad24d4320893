/**
 * The independent reference for the model tests: test/fixtures/replicate/flux-models.json, read from disk (never
 * from src/), with Ajv validators for each model's input schema.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv, type AnySchema, type Options, type ValidateFunction } from 'ajv'
import formats from 'ajv-formats'

export interface ReferenceProperty {
  type: string
  enum?: (string | number)[]
  minimum?: number
  maximum?: number
  default?: unknown
  format?: string
}

export interface ReferenceModel {
  'x-output': 'array' | 'string'
  'x-price-usd-per-image': number
  'x-typical-predict-seconds': number
  input: { type: 'object', required: string[], properties: Record<string, ReferenceProperty> }
}

export interface ReferenceFile {
  models: Record<string, ReferenceModel>
  'x-pixels-at-1mp': Record<string, [number, number]>
}

export const REFERENCE_PATH = fileURLToPath(new URL('../fixtures/replicate/flux-models.json', import.meta.url))

export const REFERENCE: ReferenceFile = JSON.parse(readFileSync(REFERENCE_PATH, 'utf8')) as ReferenceFile

export function referenceModel (ref: string): ReferenceModel {
  const model = REFERENCE.models[ref]
  if (model === undefined) throw new Error(`${ref} is not in ${REFERENCE_PATH}`)
  return model
}

export function newAjv (options: Options = {}): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: true, ...options })
  // ajv-formats is CommonJS: its callable default export is `.default` under ESM.
  formats.default(ajv)
  // Our schemas' own wording for a failed keyword (read by src/problems.ts); an annotation to Ajv.
  ajv.addKeyword({ keyword: 'x-error-message', schemaType: 'object' })
  return ajv
}

/** One validator per reference model, compiled from the reference file's input schemas. */
export function referenceValidators (): Record<string, ValidateFunction> {
  const ajv = newAjv()
  return Object.fromEntries(Object.entries(REFERENCE.models).map(([ref, model]) => [ref, ajv.compile(model.input as AnySchema)]))
}
