/** Helpers shared by the routes: running jobs, ownership checks, image responses. */
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { encodePng } from '../data/image.js'
import { floatToRgb } from '../data/pixels.js'
import { AppError, toAppError } from '../errors.js'
import type { JobKind, JobMeta, Payloads, Results } from '../jobs/types.js'
import type { SessionMeta } from '../sessions/types.js'
import type { components } from './openapi.gen.js'
import { parse, sessionIdSchema } from './schemas.js'

export async function pngDataUrl(rgb: Uint8Array, width: number, height: number): Promise<string> {
  return `data:image/png;base64,${(await encodePng(rgb, width, height)).toString('base64')}`
}

/** True if the client asked for the PNG itself (Accept: image/png before any JSON type). */
export function wantsPng(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? ''
  const png = accept.indexOf('image/png')
  if (png < 0) return false
  const json = accept.search(/application\/(json|\*)|\*\/\*/)
  return json < 0 || png < json
}

/** The session's metadata if it exists and belongs to the caller; else 404 (also for other keys' sessions). */
export async function ownedMeta(app: FastifyInstance, request: FastifyRequest, id: unknown): Promise<SessionMeta> {
  const sessionId = parse(sessionIdSchema, id, 'session id')
  const meta = await app.deps.store.getMeta(sessionId)
  if (!meta || meta.owner !== request.owner) throw new AppError('session_not_found', `session ${sessionId} does not exist or has expired`)
  return meta
}

/** Runs a job with a fresh request id and the configured deadline; records its duration. */
export async function runJob<K extends JobKind>(
  app: FastifyInstance,
  request: FastifyRequest,
  kind: K,
  payload: Omit<Payloads[K], keyof JobMeta>,
): Promise<Results[K]> {
  const { runner, config, metrics } = app.deps
  const full = { ...payload, requestId: `${request.id}_${randomUUID()}`, deadline: Date.now() + config.JOB_DEADLINE_MS } as Payloads[K]
  const t0 = performance.now()
  let timer: NodeJS.Timeout | undefined
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new AppError('deadline_exceeded', `no result within ${config.JOB_DEADLINE_MS} ms`)), config.JOB_DEADLINE_MS + 50)
    })
    const result = await Promise.race([runner.run(kind, full, { traceId: String(request.id) }), deadline])
    metrics.jobDuration.observe({ kind, outcome: 'ok' }, (performance.now() - t0) / 1000)
    return result
  } catch (err) {
    const e = toAppError(err)
    metrics.jobDuration.observe({ kind, outcome: e.code }, (performance.now() - t0) / 1000)
    metrics.jobsFailed.inc({ kind, code: e.code })
    request.log.info({ kind, code: e.code, requestId: full.requestId }, 'job did not succeed')
    throw e
  } finally {
    clearTimeout(timer)
  }
}

/** 200/201 with the session's current image: JSON (data URL + latent) or, on request, the PNG. */
export async function sendSession(
  app: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  sessionId: string,
  opts: { status?: number; extra?: (meta: SessionMeta) => Promise<Record<string, unknown>> | Record<string, unknown> } = {},
): Promise<FastifyReply> {
  const { store } = app.deps
  // meta and image are read separately: re-read if another edit landed in between
  let [meta, output] = await Promise.all([store.getMeta(sessionId), store.getOutput(sessionId)])
  for (let i = 0; i < 3 && meta && output && meta.version !== output.version; i++) {
    ;[meta, output] = await Promise.all([store.getMeta(sessionId), store.getOutput(sessionId)])
  }
  if (!meta || !output) throw new AppError('session_not_found', `session ${sessionId} expired while the request ran`)
  reply.code(opts.status ?? 200)
  if (wantsPng(request)) {
    reply.header('x-session-id', sessionId).header('x-session-version', String(meta.version))
    return reply.type('image/png').send(await encodePng(output.rgb, output.width, output.height))
  }
  const body: components['schemas']['EditResponse'] = {
    sessionId,
    version: meta.version,
    latent: Array.from(meta.z),
    image: await pngDataUrl(output.rgb, output.width, output.height),
  }
  return reply.type('application/json').send({ ...body, ...(opts.extra ? await opts.extra(meta) : {}) })
}

/** G(E(X)) of the session's current base, as a data URL at model resolution. */
export async function reconstructionUrl(app: FastifyInstance, sessionId: string): Promise<string> {
  const rec = await app.deps.store.get(sessionId)
  if (!rec) throw new AppError('session_not_found', `session ${sessionId} expired while the request ran`)
  const R = app.deps.model.resolution
  return pngDataUrl(floatToRgb(rec.state.xHat), R, R)
}
