/** /sessions/{id}: state, image, latent canvas, undo/redo/reset/commit, delete. */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { encodePng } from '../../data/image.js'
import { AppError } from '../../errors.js'
import type { components } from '../openapi.gen.js'
import { latentBodySchema, parse, versionedBodySchema } from '../schemas.js'
import { ownedMeta, reconstructionUrl, runJob, sendSession } from '../respond.js'

type WithId = { Params: { id: string } }

export async function sessionRoutes(app: FastifyInstance): Promise<void> {
  const { store } = app.deps

  app.get<WithId>('/sessions/:id', async (request): Promise<components['schemas']['Session']> => {
    const meta = await ownedMeta(app, request, request.params.id)
    return {
      sessionId: meta.id,
      version: meta.version,
      mode: meta.mode,
      width: meta.width,
      height: meta.height,
      crop: meta.crop,
      latent: Array.from(meta.z),
      inferredLatent: Array.from(meta.z0),
      undoDepth: meta.undoDepth,
      redoDepth: meta.redoDepth,
      createdAt: new Date(meta.createdAt).toISOString(),
      updatedAt: new Date(meta.updatedAt).toISOString(),
    }
  })

  app.get<WithId>('/sessions/:id/image', async (request, reply) => {
    const meta = await ownedMeta(app, request, request.params.id)
    const output = await store.getOutput(meta.id)
    if (!output) throw new AppError('session_not_found', `session ${meta.id} does not exist or has expired`)
    reply.header('x-session-version', String(output.version))
    return reply.type('image/png').send(await encodePng(output.rgb, output.width, output.height))
  })

  app.delete<WithId>('/sessions/:id', async (request, reply) => {
    const meta = await ownedMeta(app, request, request.params.id)
    await store.delete(meta.id)
    return reply.code(204).send()
  })

  app.put<WithId>('/sessions/:id/latent', async (request, reply) => {
    const meta = await ownedMeta(app, request, request.params.id)
    const body = parse(latentBodySchema, request.body, 'latent request')
    const L = app.deps.model.latentSize
    if (body.latent && body.latent.length !== L) throw new AppError('invalid_request', `latent must have ${L} numbers, got ${body.latent.length}`)
    const bad = body.entries?.find((e) => e.index >= L)
    if (bad) throw new AppError('invalid_request', `entry index ${bad.index} is out of range 0..${L - 1}`)
    await runJob(app, request, 'latent', { sessionId: meta.id, baseVersion: body.baseVersion, latent: body.latent, entries: body.entries })
    return sendSession(app, request, reply, meta.id)
  })

  const versioned = (request: FastifyRequest) => parse(versionedBodySchema, request.body ?? {}, 'request body')
  for (const kind of ['undo', 'redo', 'reset', 'commit'] as const) {
    app.post<WithId>(`/sessions/:id/${kind}`, async (request, reply) => {
      const meta = await ownedMeta(app, request, request.params.id)
      const { baseVersion } = versioned(request)
      await runJob(app, request, kind, { sessionId: meta.id, baseVersion })
      return sendSession(app, request, reply, meta.id, kind === 'commit' ? { extra: async () => ({ reconstruction: await reconstructionUrl(app, meta.id) }) } : {})
    })
  }
}
