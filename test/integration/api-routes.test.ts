/**
 * Route tests with inject against the embedded service (real model code, in-memory store):
 * the happy path of every route and every listed error case as problem+json.
 */
import t, { type Test } from 'tap'
import { buildService, decodeDataUrl, multipart, photoPng } from '../helpers/service.js'

const service = await buildService({ UPLOAD_MAX_BYTES: '200000', UPLOAD_MAX_PIXELS: '1000000' })
t.teardown(() => service.close())
const { app } = service

const encode = async (png: Buffer, crop?: string) =>
  app.inject({ method: 'POST', url: '/encode', ...multipart([{ name: 'image', filename: 'p.png', contentType: 'image/png', data: png }, ...(crop ? [{ name: 'crop', data: crop }] : [])]) })

function expectProblem(t: Test, res: { statusCode: number; headers: Record<string, unknown>; json: () => any }, status: number, code: string) {
  t.equal(res.statusCode, status, `status ${status}`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/)
  const body = res.json()
  t.equal(body.code, code)
  t.equal(body.status, status)
  t.type(body.title, 'string')
  t.type(body.detail, 'string')
  t.type(body.type, 'string')
}

t.test('encode -> edit -> session -> undo -> redo -> reset -> commit -> image -> delete', async (t) => {
  const res = await encode(await photoPng(60, 40), '10,4,32,32')
  t.equal(res.statusCode, 201, res.body.slice(0, 300))
  const body = res.json()
  t.match(body.sessionId, /^[0-9a-f]{32}$/)
  t.equal(body.version, 1)
  t.equal(body.width, 60)
  t.equal(body.height, 40)
  t.same(body.crop, { x: 10, y: 4, w: 32, h: 32 })
  t.equal(body.latent.length, 16)
  const img = await decodeDataUrl(body.image)
  t.same([img.width, img.height], [60, 40], 'image at the photo size')
  const rec = await decodeDataUrl(body.reconstruction)
  t.same([rec.width, rec.height], [16, 16], 'reconstruction at model resolution')
  const id = body.sessionId

  const edit = await app.inject({ method: 'POST', url: '/edit', payload: { sessionId: id, stroke: { points: [{ x: 20, y: 20 }, { x: 25, y: 22 }], radius: 6 }, color: '#ff0000' } })
  t.equal(edit.statusCode, 200, edit.body.slice(0, 300))
  const e = edit.json()
  t.equal(e.version, 2)
  t.notSame(e.latent, body.latent, 'the latent moved')
  const edited = await decodeDataUrl(e.image)
  t.same([edited.width, edited.height], [60, 40])
  let outside = 0
  for (let y = 0; y < 40; y++) for (let x = 0; x < 60; x++) {
    if (x >= 10 && x < 42 && y >= 4 && y < 36) continue
    for (let c = 0; c < 3; c++) outside += Math.abs(edited.data[(y * 60 + x) * 3 + c]! - img.data[(y * 60 + x) * 3 + c]!)
  }
  t.equal(outside, 0, 'outside the crop unchanged')

  const png = await app.inject({ method: 'POST', url: '/edit', headers: { accept: 'image/png' }, payload: { sessionId: id, stroke: { points: [{ x: 30, y: 30 }], radius: 3 }, mode: 'darken' } })
  t.equal(png.statusCode, 200)
  t.equal(png.headers['content-type'], 'image/png')
  t.equal(png.rawPayload.subarray(1, 4).toString(), 'PNG')
  t.equal(png.headers['x-session-version'], '3')

  const info = (await app.inject({ method: 'GET', url: `/sessions/${id}` })).json()
  t.equal(info.version, 3)
  t.equal(info.undoDepth, 2)
  t.equal(info.redoDepth, 0)
  t.equal(info.mode, 'photo')
  t.same(info.inferredLatent, body.latent)

  const undo = (await app.inject({ method: 'POST', url: `/sessions/${id}/undo` })).json()
  t.equal(undo.version, 4)
  t.same(undo.latent, e.latent, 'undo restores the previous latent')
  t.equal(undo.image, e.image, 'and its image')
  const redo = await app.inject({ method: 'POST', url: `/sessions/${id}/redo`, payload: {} })
  t.equal(redo.statusCode, 200)
  const again = await app.inject({ method: 'POST', url: `/sessions/${id}/redo` })
  expectProblem(t, again, 409, 'nothing_to_redo')

  const reset = (await app.inject({ method: 'POST', url: `/sessions/${id}/reset` })).json()
  t.same(reset.latent, body.latent)
  t.equal(reset.image, body.image, 'reset shows the photo again')

  const latent = await app.inject({ method: 'PUT', url: `/sessions/${id}/latent`, payload: { entries: [{ index: 2, value: 3 }] } })
  t.equal(latent.statusCode, 200)
  t.equal(latent.json().latent[2], 3)
  const commit = await app.inject({ method: 'POST', url: `/sessions/${id}/commit` })
  t.equal(commit.statusCode, 200)
  t.match(commit.json().reconstruction, /^data:image\/png;base64,/)
  const image = await app.inject({ method: 'GET', url: `/sessions/${id}/image` })
  t.equal(image.headers['content-type'], 'image/png')
  const del = await app.inject({ method: 'DELETE', url: `/sessions/${id}` })
  t.equal(del.statusCode, 204)
  expectProblem(t, await app.inject({ method: 'GET', url: `/sessions/${id}` }), 404, 'session_not_found')
})

t.test('sample and interpolate', async (t) => {
  const a = await app.inject({ method: 'GET', url: '/sample?seed=5' })
  t.equal(a.statusCode, 201)
  const s = a.json()
  t.equal(s.seed, 5)
  t.equal(s.width, 16)
  const b = (await app.inject({ method: 'GET', url: '/sample?seed=5' })).json()
  t.same(b.latent, s.latent, 'same seed, same face')
  t.not(b.sessionId, s.sessionId)
  const png = await app.inject({ method: 'GET', url: '/sample?seed=6', headers: { accept: 'image/png' } })
  t.equal(png.statusCode, 201)
  t.equal(png.headers['content-type'], 'image/png')
  const paint = await app.inject({ method: 'POST', url: '/edit', payload: { sessionId: s.sessionId, stroke: { points: [{ x: 8, y: 8 }], radius: 2 }, color: '#0000ff' } })
  t.equal(paint.statusCode, 200, 'samples can be edited')
  const interp = await app.inject({ method: 'POST', url: '/interpolate', payload: { from: { sessionId: s.sessionId }, to: { latent: new Array(16).fill(0) }, steps: 4 } })
  t.equal(interp.statusCode, 200, interp.body.slice(0, 200))
  const frames = interp.json().frames
  t.equal(frames.length, 4)
  t.same(frames[0].latent, paint.json().latent, 'first frame is the session latent')
  t.same(frames[3].latent, new Array(16).fill(0))
  expectProblem(t, await app.inject({ method: 'GET', url: '/sample?seed=abc' }), 400, 'invalid_request')
  expectProblem(t, await app.inject({ method: 'POST', url: '/interpolate', payload: { from: { latent: [1, 2] }, to: { latent: new Array(16).fill(0) } } }), 400, 'invalid_request')
})

t.test('bad uploads', async (t) => {
  expectProblem(t, await app.inject({ method: 'POST', url: '/encode', ...multipart([{ name: 'image', filename: 'x.png', contentType: 'image/png', data: Buffer.from('definitely not an image') }]) }), 415, 'image_unsupported_type')
  const png = await photoPng(50, 50)
  expectProblem(t, await encode(png.subarray(0, png.length - 60)), 422, 'image_unreadable')
  const gif = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64')
  expectProblem(t, await encode(gif), 415, 'image_unsupported_type')
  expectProblem(t, await encode(await photoPng(1200, 1000)), 422, 'image_too_many_pixels')
  expectProblem(t, await encode(Buffer.concat([png, Buffer.alloc(300_000)])), 413, 'image_too_large')
  expectProblem(t, await app.inject({ method: 'POST', url: '/encode', ...multipart([{ name: 'crop', data: '0,0,10,10' }]) }), 400, 'image_missing')
  expectProblem(t, await encode(png, '40,40,20,20'), 400, 'invalid_request')
  expectProblem(t, await encode(png, 'a,b'), 400, 'invalid_request')
  expectProblem(t, await app.inject({ method: 'POST', url: '/encode', payload: { image: 'x' } }), 400, 'invalid_request')
})

t.test('bad edits and unknown sessions', async (t) => {
  const id = (await encode(await photoPng(32, 32))).json().sessionId
  const bad = async (payload: unknown) => app.inject({ method: 'POST', url: '/edit', payload: payload as object })
  expectProblem(t, await app.inject({ method: 'POST', url: '/edit', headers: { 'content-type': 'application/json' }, payload: '{"sessionId": ' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [{ x: 1, y: 1 }], radius: 2 }, color: 'red' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [{ x: 1, y: 1 }], radius: 2 } }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [], radius: 2 }, color: '#000000' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [{ x: 1, y: 1 }], radius: -1 }, color: '#000000' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [{ x: 1 }], radius: 1 }, color: '#000000' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: 'nope', stroke: { points: [{ x: 1, y: 1 }], radius: 1 }, color: '#000000' }), 400, 'invalid_request')
  expectProblem(t, await bad({ sessionId: '0'.repeat(32), stroke: { points: [{ x: 1, y: 1 }], radius: 1 }, color: '#000000' }), 404, 'session_not_found')
  expectProblem(t, await bad({ sessionId: id, stroke: { points: [{ x: 1, y: 1 }], radius: 1 }, color: '#000000', baseVersion: 7 }), 409, 'version_conflict')
  expectProblem(t, await app.inject({ method: 'POST', url: `/sessions/${id}/undo` }), 409, 'nothing_to_undo')
  expectProblem(t, await app.inject({ method: 'PUT', url: `/sessions/${id}/latent`, payload: { entries: [{ index: 99, value: 1 }] } }), 400, 'invalid_request')
  expectProblem(t, await app.inject({ method: 'PUT', url: `/sessions/${id}/latent`, payload: { latent: [1, 2, 3] } }), 400, 'invalid_request')
  expectProblem(t, await app.inject({ method: 'GET', url: '/nope' }), 404, 'not_found')
  // nothing stored was lost, and the service is still healthy
  const info = await app.inject({ method: 'GET', url: `/sessions/${id}` })
  t.equal(info.json().version, 1)
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
})

t.test('operations: readyz, metrics, docs, spec', async (t) => {
  const ready = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'ready', mode: 'embedded', backend: 'wasm', store: 'ok', queue: 'inline', model: { loaded: true, resolution: 16, latentSize: 16 } })
  const metrics = await app.inject({ method: 'GET', url: '/metrics' })
  t.match(metrics.body, /npe_http_request_duration_seconds_bucket/)
  t.match(metrics.body, /npe_job_duration_seconds_count\{kind="edit",outcome="ok"\}/)
  t.match(metrics.body, /npe_batch_size_count\{kind="encode"\}/)
  t.match(metrics.body, /npe_live_sessions \d+/)
  t.match(metrics.body, /npe_queue_depth 0/)
  const spec = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(spec.json().openapi, '3.1.0')
  t.match((await app.inject({ method: 'GET', url: '/openapi.yaml' })).body, /^openapi: 3\.1\.0/)
  const docs = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.headers['x-content-type-options'], 'nosniff', 'security headers')
  t.ok(ready.headers['x-request-id'], 'request id echoed')
})
