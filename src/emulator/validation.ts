import type { JsonSchema } from '../models/replicate-models.ts'
import type { InvalidField } from './problems.ts'

/**
 * Request validation in the style of Replicate's API: top-level keys per [CL-val] (field "" for
 * the root, `additional_property_not_allowed`), and input values against the model's schema with
 * `field: "input.<name>"` (an assumption: no captured example exists, REFERENCE §3.1). Unknown
 * keys inside `input` are ignored, as Replicate does.
 */

export const WEBHOOK_EVENTS = ['start', 'output', 'logs', 'completed'] as const

function jsonType (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'array'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

function typeMatches (expected: string, value: unknown): boolean {
  switch (expected) {
    case 'string': return typeof value === 'string'
    case 'integer': return typeof value === 'number' && Number.isInteger(value)
    case 'number': return typeof value === 'number' && Number.isFinite(value)
    case 'boolean': return typeof value === 'boolean'
    case 'object': return typeof value === 'object' && value !== null && !Array.isArray(value)
    case 'array': return Array.isArray(value)
    default: return true
  }
}

function invalidType (field: string, expected: string, value: unknown): InvalidField {
  return { type: 'invalid_type', field, description: `Invalid type. Expected: ${expected}, given: ${jsonType(value)}` }
}

function isUri (value: string): boolean {
  try {
    return new URL(value).protocol.length > 1
  } catch {
    return false
  }
}

function checkValue (name: string, schema: JsonSchema, value: unknown, field: string): InvalidField[] {
  if (schema.type && !typeMatches(schema.type, value)) return [invalidType(field, schema.type, value)]
  if (schema.enum && !schema.enum.includes(value as string | number)) {
    const allowed = schema.enum.map((v) => JSON.stringify(v)).join(', ')
    return [{ type: 'enum', field, description: `${name} must be one of the following: ${allowed}` }]
  }
  const problems: InvalidField[] = []
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) {
      problems.push({ type: 'greater_than_equal', field, description: `Must be greater than or equal to ${schema.minimum}` })
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      problems.push({ type: 'less_than_equal', field, description: `Must be less than or equal to ${schema.maximum}` })
    }
  }
  if (schema.format === 'uri' && typeof value === 'string' && !isUri(value)) {
    problems.push({ type: 'format', field, description: "Does not match format 'uri'" })
  }
  return problems
}

/** Validates a model input against its `Input` schema; keys the schema does not know are ignored. */
export function validateInput (schema: JsonSchema & { properties: Record<string, JsonSchema> }, input: Record<string, unknown>): InvalidField[] {
  const problems: InvalidField[] = []
  for (const name of schema.required ?? []) {
    if (input[name] === undefined) problems.push({ type: 'required', field: `input.${name}`, description: `${name} is required` })
  }
  for (const [name, value] of Object.entries(input)) {
    const property = Object.hasOwn(schema.properties, name) ? schema.properties[name] : undefined
    if (property === undefined || value === undefined) continue
    problems.push(...checkValue(name, property, value, `input.${name}`))
  }
  return problems
}

export interface PredictionRequestBody {
  input: Record<string, unknown>
  version?: string
  webhook?: string
  webhook_events_filter?: (typeof WEBHOOK_EVENTS[number])[]
  stream?: boolean
}

/**
 * Top-level checks of a create body (openapi `schemas_prediction_request`, or
 * `schemas_version_prediction_request` when `withVersion`): both set additionalProperties false.
 */
export function validatePredictionRequest (body: unknown, withVersion: boolean): InvalidField[] {
  if (!typeMatches('object', body)) return [invalidType('', 'object', body)]
  const record = body as Record<string, unknown>
  const allowed = new Set(['input', 'webhook', 'webhook_events_filter', 'stream', ...(withVersion ? ['version'] : [])])
  const problems: InvalidField[] = []
  for (const name of withVersion ? ['version', 'input'] : ['input']) {
    if (record[name] === undefined) problems.push({ type: 'required', field: '', description: `${name} is required` })
  }
  for (const name of Object.keys(record)) {
    if (!allowed.has(name)) problems.push({ type: 'additional_property_not_allowed', field: '', description: `Additional property ${name} is not allowed` })
  }
  if (record.input !== undefined && !typeMatches('object', record.input)) problems.push(invalidType('input', 'object', record.input))
  if (record.version !== undefined && typeof record.version !== 'string') problems.push(invalidType('version', 'string', record.version))
  if (record.stream !== undefined && typeof record.stream !== 'boolean') problems.push(invalidType('stream', 'boolean', record.stream))
  if (record.webhook !== undefined) {
    if (typeof record.webhook !== 'string') problems.push(invalidType('webhook', 'string', record.webhook))
    else if (!/^https?:$/.test(safeProtocol(record.webhook))) problems.push({ type: 'format', field: 'webhook', description: "Does not match format 'uri'" })
  }
  const filter = record.webhook_events_filter
  if (filter !== undefined) {
    if (!Array.isArray(filter)) {
      problems.push(invalidType('webhook_events_filter', 'array', filter))
    } else {
      filter.forEach((event, i) => {
        if (!(WEBHOOK_EVENTS as readonly unknown[]).includes(event)) {
          const allowedEvents = WEBHOOK_EVENTS.map((e) => JSON.stringify(e)).join(', ')
          problems.push({ type: 'enum', field: `webhook_events_filter.${i}`, description: `webhook_events_filter.${i} must be one of the following: ${allowedEvents}` })
        }
      })
    }
  }
  return problems
}

function safeProtocol (url: string): string {
  try {
    return new URL(url).protocol
  } catch {
    return ''
  }
}
