/**
 * Coded errors. Every failure the service can report is a subclass of AppError with a stable
 * `code` and an HTTP `statusCode`; one error handler turns them into application/problem+json.
 */
export interface FieldProblem {
  /** The request field, as a JSON pointer-ish dotted path (`body.width`, `query.wait`). */
  field: string
  message: string
}

export class AppError extends Error {
  readonly code: string
  readonly statusCode: number
  /** Extra members for the problem document (never internals). */
  readonly extra: Record<string, unknown>

  constructor (code: string, statusCode: number, message: string, extra: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.statusCode = statusCode
    this.extra = extra
  }
}

export class ValidationError extends AppError {
  readonly errors: FieldProblem[]
  constructor (errors: FieldProblem[], message = 'The request has invalid fields.') {
    super('validation_error', 400, message, { errors })
    this.errors = errors
  }
}
