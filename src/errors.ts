import { ERROR_CODES } from './error-codes.ts'
import type { ErrorCode } from './error-codes.ts'

/**
 * Coded errors. Every failure the service can report is a subclass of AppError with a stable
 * `code` from the catalog in error-codes.ts, which also gives its HTTP `statusCode`; one error handler turns them into application/problem+json.
 */
export interface FieldProblem {
  /** The request field, as a JSON pointer-ish dotted path (`body.width`, `query.wait`). */
  field: string
  message: string
}

export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  /** Extra members for the problem document (never internals). */
  readonly extra: Record<string, unknown>

  constructor (code: ErrorCode, message: string, extra: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.statusCode = ERROR_CODES[code].status
    this.extra = extra
  }
}

export class ValidationError extends AppError {
  readonly errors: FieldProblem[]
  constructor (errors: FieldProblem[], message = 'The request has invalid fields.') {
    super('validation_error', message, { errors })
    this.errors = errors
  }
}
