import type { Problem } from '../problems.ts'
import type { OpenAIError } from './schemas.ts'
import { AppError } from '../errors.ts'

/** Our request fields, as the OpenAI request names them. */
const PARAMS: Record<string, string> = { num_outputs: 'n', width: 'size', height: 'size', image_url: 'image', model: 'model', prompt: 'prompt' }

/**
 * A problem document in OpenAI's error shape and status, so OpenAI's SDKs raise the matching typed error
 * (BadRequestError, AuthenticationError, PermissionDeniedError, NotFoundError, RateLimitError, InternalServerError).
 */
export function openAIError (problem: Problem): { status: number, body: OpenAIError, retry: boolean } {
  const field = problem.errors?.[0]?.field
  const param = field === undefined ? null : (PARAMS[field] ?? field)
  const fieldMessage = problem.errors?.[0]?.message
  const message = problem.code === 'validation_error' && field !== undefined && fieldMessage !== undefined
    ? `${param}: ${fieldMessage}`
    : problem.detail
  const error = (status: number, type: string, code: string | null = problem.code, retry = status >= 500 || status === 409) =>
    ({ status, body: { error: { message, type, param, code } }, retry })
  switch (problem.code) {
    case 'unauthorized': return error(401, 'invalid_request_error', 'invalid_api_key')
    case 'model_not_in_plan': return error(403, 'permission_error')
    case 'insufficient_credits': return error(429, 'insufficient_quota', 'insufficient_quota', false)
    case 'rate_limited':
    case 'upstream_rate_limited': return error(429, 'requests', 'rate_limit_exceeded', true)
    // OpenAI refuses a prompt of its safety system with a 400.
    case 'content_policy_violation': return error(400, 'invalid_request_error')
    // A model it does not have is a 404 for OpenAI, with its own code.
    case 'not_found': return error(404, 'invalid_request_error', param === 'model' ? 'model_not_found' : 'not_found')
    default:
      break
  }
  if (problem.status >= 500) return error(problem.status, 'server_error')
  if (problem.status === 413 || problem.status === 415 || problem.status === 422) return error(400, 'invalid_request_error')
  return error(problem.status, 'invalid_request_error')
}

/** What OpenAI answers for a model it does not have, from our catalog's point of view. */
export function modelNotFound (model: string, models: readonly string[]): AppError {
  return new AppError('not_found', `The model \`${model}\` does not exist or you do not have access to it. Models here: ${models.join(', ')}.`, { field: 'model' })
}
