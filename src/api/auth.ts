/**
 * Optional API keys (`Authorization: Bearer <key>`). A session belongs to the
 * key that created it; other keys get 404 for it. Keys are compared in
 * constant time and identified by a short hash, never logged.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { AppError } from '../errors.js'
import { sendProblem } from './problem.js'

/** Paths that need a key when keys are configured (the editing API); docs, probes and the page do not. */
const PROTECTED = /^\/(encode|edit|sample|interpolate|sessions)(\/|$|\?)/

export function keyIdOf(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

export function authHook(keys: string[]) {
  const digests = keys.map((k) => ({ id: keyIdOf(k), digest: createHash('sha256').update(k).digest() }))
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (digests.length === 0 || request.method === 'OPTIONS' || !PROTECTED.test(request.url)) return
    const header = request.headers.authorization ?? ''
    const m = /^Bearer\s+(\S+)$/i.exec(header)
    if (m) {
      const digest = createHash('sha256').update(m[1]!).digest()
      const match = digests.find((d) => timingSafeEqual(d.digest, digest))
      if (match) {
        request.owner = match.id
        return
      }
    }
    reply.header('www-authenticate', 'Bearer')
    return sendProblem(reply, new AppError('unauthorized', m ? 'the API key is not valid' : 'an API key is required: Authorization: Bearer <key>'))
  }
}
