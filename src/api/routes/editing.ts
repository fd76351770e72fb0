/** POST /encode, POST /edit, GET /sample, POST /interpolate. */
import { randomInt, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { decodeImage } from '../../data/image.js'
import { checkCrop } from '../../editor/editor.js'
import { parseBox, parseHexColor } from '../../editor/parse.js'
import { AppError } from '../../errors.js'
import { packImage } from '../../jobs/blobs.js'
import { newSessionId } from '../../sessions/index.js'
import { unpackFrames } from '../../usecases/jobs.js'
import type { components } from '../openapi.gen.js'
import { editBodySchema, interpolateBodySchema, parse, sampleQuerySchema } from '../schemas.js'
import { ownedMeta, pngDataUrl, reconstructionUrl, runJob, sendSession } from '../respond.js'

export async function editingRoutes(app: FastifyInstance): Promise<void> {
  const { config, blobs } = app.deps

  app.post('/encode', async (request, reply) => {
    if (!request.isMultipart()) throw new AppError('invalid_request', 'POST /encode takes multipart/form-data with a file field "image"')
    let upload: Buffer | undefined
    let cropText: string | undefined
    for await (const part of request.parts()) {
      if (part.type === 'file') {
        if (part.fieldname !== 'image') {
          await part.toBuffer().catch(() => undefined)
          throw new AppError('invalid_request', `unexpected file field '${part.fieldname}' (the photo goes in 'image')`)
        }
        upload = await part.toBuffer()
      } else if (part.fieldname === 'crop') {
        cropText = String(part.value)
      } else {
        throw new AppError('invalid_request', `unexpected field '${part.fieldname}'`)
      }
    }
    if (!upload || upload.length === 0) throw new AppError('image_missing', 'the multipart field "image" with the photo is missing or empty')
    const image = await decodeImage(upload, { maxPixels: config.UPLOAD_MAX_PIXELS, maxBytes: config.UPLOAD_MAX_BYTES })
    let crop
    if (cropText !== undefined) {
      crop = parseBox(cropText)
      if (!crop) throw new AppError('invalid_request', `crop must be x,y,w,h in whole pixels, got '${cropText}'`)
      try {
        checkCrop(crop, image.width, image.height)
      } catch (err) {
        throw new AppError('invalid_request', (err as Error).message)
      }
    }
    const sessionId = newSessionId()
    const uploadKey = `upload:${sessionId}`
    await blobs.put(uploadKey, packImage(image.data, image.width, image.height), config.JOB_DEADLINE_MS + 60_000)
    await runJob(app, request, 'encode', { sessionId, owner: request.owner, uploadKey, crop })
    const rec = await app.deps.store.getMeta(sessionId)
    return sendSession(app, request, reply, sessionId, {
      status: 201,
      extra: async () => ({ width: image.width, height: image.height, crop: rec?.crop, reconstruction: await reconstructionUrl(app, sessionId) }),
    })
  })

  app.post('/edit', async (request, reply) => {
    const body = parse(editBodySchema, request.body, 'edit request')
    await ownedMeta(app, request, body.sessionId)
    const color = body.color === undefined ? undefined : parseHexColor(body.color)
    const { sessionId } = await runJob(app, request, 'edit', {
      sessionId: body.sessionId,
      baseVersion: body.baseVersion,
      stroke: body.stroke,
      color: color ? [color[0], color[1], color[2]] : undefined,
      mode: body.mode,
      strength: body.strength,
    })
    return sendSession(app, request, reply, sessionId)
  })

  app.get('/sample', async (request, reply) => {
    const query = parse(sampleQuerySchema, request.query, 'query')
    const seed = query.seed ?? randomInt(0, 2 ** 47)
    const sessionId = newSessionId()
    await runJob(app, request, 'sample', { sessionId, owner: request.owner, seed })
    return sendSession(app, request, reply, sessionId, {
      status: 201,
      extra: (meta) => ({ width: meta.width, height: meta.height, seed }),
    })
  })

  app.post('/interpolate', async (request): Promise<components['schemas']['InterpolateResponse']> => {
    const body = parse(interpolateBodySchema, request.body, 'interpolate request')
    const L = app.deps.model.latentSize
    const resolve = async (source: { sessionId?: string; latent?: number[] }, which: string) => {
      if (source.sessionId) return Array.from((await ownedMeta(app, request, source.sessionId)).z)
      if (source.latent!.length !== L) throw new AppError('invalid_request', `${which}.latent must have ${L} numbers, got ${source.latent!.length}`)
      return source.latent!
    }
    const [from, to] = await Promise.all([resolve(body.from, 'from'), resolve(body.to, 'to')])
    const resultKey = `interp:${randomUUID()}`
    await runJob(app, request, 'interpolate', { from, to, steps: body.steps, resultKey })
    const blob = await blobs.get(resultKey)
    if (!blob) throw new AppError('internal', 'interpolation frames are missing')
    await blobs.delete(resultKey)
    const { latents, images, resolution } = unpackFrames(blob)
    const frames = await Promise.all(latents.map(async (z, i) => ({ latent: Array.from(z), image: await pngDataUrl(images[i]!, resolution, resolution) })))
    return { frames }
  })
}
