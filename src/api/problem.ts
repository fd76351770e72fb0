/**
 * Errors as application/problem+json (RFC 9457) with a stable `code`: the one
 * place where error codes become HTTP statuses.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { AppError, type ErrorCode, toAppError } from '../errors.js'

export const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  image_missing: 400,
  image_unreadable: 422,
  image_unsupported_type: 415,
  image_too_large: 413,
  image_too_many_pixels: 422,
  session_not_found: 404,
  version_conflict: 409,
  nothing_to_undo: 409,
  nothing_to_redo: 409,
  session_busy: 409,
  rate_limited: 429,
  queue_full: 503,
  deadline_exceeded: 504,
  not_found: 404,
  not_acceptable: 406,
  internal: 500,
}

const TITLES: Record<ErrorCode, string> = {
  invalid_request: 'Invalid request',
  unauthorized: 'Unauthorized',
  image_missing: 'Image missing',
  image_unreadable: 'Image unreadable',
  image_unsupported_type: 'Unsupported image type',
  image_too_large: 'Image too large',
  image_too_many_pixels: 'Image has too many pixels',
  session_not_found: 'Session not found',
  version_conflict: 'Version conflict',
  nothing_to_undo: 'Nothing to undo',
  nothing_to_redo: 'Nothing to redo',
  session_busy: 'Session busy',
  rate_limited: 'Too many requests',
  queue_full: 'Service busy',
  deadline_exceeded: 'Deadline exceeded',
  not_found: 'Not found',
  not_acceptable: 'Not acceptable',
  internal: 'Internal error',
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  code: ErrorCode
  instance?: string
  requestId?: string
}

export function problemOf(err: AppError, request?: FastifyRequest): Problem {
  const status = STATUS[err.code]
  return {
    type: `https://neural-photo-editor.dev/problems/${err.code.replace(/_/g, '-')}`,
    title: TITLES[err.code],
    status,
    // 5xx internals stay in the log
    detail: status >= 500 && err.code === 'internal' ? 'An internal error occurred; it has been logged.' : err.message,
    code: err.code,
    ...(request ? { instance: request.url, requestId: String(request.id) } : {}),
  }
}

export function sendProblem(reply: FastifyReply, err: AppError): FastifyReply {
  const problem = problemOf(err, reply.request)
  if (err.retryAfterS !== undefined) reply.header('retry-after', String(err.retryAfterS))
  return reply.code(problem.status).type('application/problem+json').send(problem)
}

/** Fastify's own errors (body parsing, limits, validation) -> our codes. */
export function fromFastifyError(err: FastifyError): AppError {
  const code = err.code ?? ''
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE' || code === 'FST_REQ_FILE_TOO_LARGE') return new AppError('image_too_large', err.message)
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' || code === 'FST_INVALID_MULTIPART_CONTENT_TYPE') {
    return new AppError('invalid_request', `unsupported content type: ${err.message}`)
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err instanceof SyntaxError) {
    return new AppError('invalid_request', `malformed JSON body: ${err.message}`)
  }
  if (code === 'FST_ERR_RATE_LIMIT_EXCEEDED' || err.statusCode === 429) return new AppError('rate_limited', err.message)
  if (err.validation) return new AppError('invalid_request', err.message)
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError(err.statusCode === 404 ? 'not_found' : err.statusCode === 413 ? 'image_too_large' : 'invalid_request', err.message)
  }
  return toAppError(err)
}
