import { createHash } from 'node:crypto'
import { TERMINAL_STATUSES } from './types.ts'
import type { Prediction } from './types.ts'
import { ContentSafetyError, PredictionFailedError } from './errors.ts'

/** `output` as a list of URIs, whichever shape the model uses (array for schnell/dev, one string for pro). */
export function normalizeOutput (output: unknown): string[] {
  if (typeof output === 'string') return output === '' ? [] : [output]
  if (Array.isArray(output)) return output.filter((item): item is string => typeof item === 'string' && item !== '')
  return []
}

/**
 * Whether we can stop waiting. Completion is read from the body's `status`, never the HTTP code;
 * a `processing` prediction whose files are all there counts as done, because sync mode answers
 * that way before `succeeded` is written (REFERENCE §2.1).
 */
export function isSettled (prediction: Pick<Prediction, 'status' | 'output'>): boolean {
  if (TERMINAL_STATUSES.has(prediction.status)) return true
  return prediction.status === 'processing' && normalizeOutput(prediction.output).length > 0
}

const SAFETY_PATTERN = /nsfw|flagged as sensitive|\(E005\)/i

function errorText (error: unknown): string {
  if (typeof error === 'string') return error
  if (error === null || error === undefined) return 'The prediction failed without an error message.'
  try {
    return JSON.stringify(error)
  } catch {
    return String(error)
  }
}

/** The coded error for a failed prediction: model-side moderation, or any other failure. */
export function failureError (prediction: Pick<Prediction, 'id' | 'error'>): ContentSafetyError | PredictionFailedError {
  const message = errorText(prediction.error)
  return SAFETY_PATTERN.test(message)
    ? new ContentSafetyError(message, prediction.id)
    : new PredictionFailedError(message, prediction.id)
}

/**
 * Replicate echoes the input it was sent, so a prediction can be recognised by its model and the hash of its input
 * before its id is known (a create whose answer never came, or is still held).
 */
function sorted (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted)
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, sorted(obj[k])]))
  }
  return value
}

/** JSON with object keys sorted at every depth; what is dropped or changed on the wire (undefined, toJSON) is dropped here too. */
export function canonicalJson (value: unknown): string {
  const json = JSON.stringify(value)
  return json === undefined ? 'null' : JSON.stringify(sorted(JSON.parse(json)))
}

export function inputHash (input: unknown): string {
  return createHash('sha256').update(canonicalJson(input)).digest('hex')
}
