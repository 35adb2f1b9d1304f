/**
 * The error catalogue every HTTP surface shares (receivers, the query API):
 * a client sees JSON `{ error, message, details }` with a stable code to
 * switch on. collector/server/errors.ts holds the one handler that renders it.
 */
export const ERROR_STATUS = {
  ACT_ERR_MALFORMED_BODY: 400,
  ACT_ERR_VALIDATION: 400,
  ACT_ERR_EMPTY_BODY: 400,
  ACT_ERR_UNAUTHORIZED: 401,
  ACT_ERR_FORBIDDEN: 403,
  ACT_ERR_NOT_FOUND: 404,
  ACT_ERR_BODY_TOO_LARGE: 413,
  ACT_ERR_UNSUPPORTED_MEDIA_TYPE: 415,
  ACT_ERR_UNSUPPORTED_ENCODING: 415,
  ACT_ERR_BACKPRESSURE: 429,
  ACT_ERR_RATE_LIMITED: 429,
  ACT_ERR_INTERNAL: 500,
  ACT_ERR_NOT_READY: 503,
  ACT_ERR_OVERLOADED: 503,
  ACT_ERR_STORAGE_UNAVAILABLE: 503,
} as const

export type ErrorCode = keyof typeof ERROR_STATUS

export class ActlineError extends Error {
  readonly statusCode: number
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message)
    this.statusCode = ERROR_STATUS[code]
  }
}

export interface ErrorBody {
  error: ErrorCode
  message: string
  details: Record<string, unknown>
}

