/**
 * One error type with a stable string code, used by the use cases, the
 * workers and the API. Codes cross the queue boundary (a failed job's reason
 * is `code: message`), and the API maps each code to an HTTP status in one
 * place (src/api/problem.ts).
 */

export const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'image_missing',
  'image_unreadable',
  'image_unsupported_type',
  'image_too_large',
  'image_too_many_pixels',
  'session_not_found',
  'version_conflict',
  'nothing_to_undo',
  'nothing_to_redo',
  'session_busy',
  'rate_limited',
  'queue_full',
  'deadline_exceeded',
  'not_found',
  'not_acceptable',
  'internal',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export class AppError extends Error {
  override name = 'AppError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For 503s: seconds the client should wait. */
    readonly retryAfterS?: number,
  ) {
    super(message)
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code)
}

/** Any error -> AppError: errors carrying a known `code` keep it; everything else is 'internal'. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err
  const code = (err as { code?: unknown } | null)?.code
  const message = err instanceof Error ? err.message : String(err)
  if (isErrorCode(code)) return new AppError(code, message)
  return new AppError('internal', message)
}

/** `code: message` — how a failed job's reason carries the code across processes. */
export function encodeFailure(err: AppError): string {
  return `${err.code}: ${err.message}`
}

export function decodeFailure(reason: string | undefined): AppError {
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(reason ?? '')
  if (m && isErrorCode(m[1])) return new AppError(m[1], m[2]!)
  return new AppError('internal', reason || 'job failed')
}
