/**
 * Queue mode end to end: the API (in this process) enqueues to BullMQ on the real Redis, and
 * real `npe worker` processes run the jobs. A fresh key prefix per test, removed afterwards.
 */
import t, { type Test } from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { Queue } from 'bullmq'
import { buildService, decodeDataUrl, multipart, photoPng, tinyModelDir } from '../helpers/service.js'
import { startWorkerProcess, stopWorker, type WorkerProcess } from '../helpers/workers.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
t.teardown(() => redis.quit())
await redis.ping() // fails loudly if Redis is not there

const model = await tinyModelDir()
t.teardown(model.cleanup)

async function setup(t: Test, env: Record<string, string> = {}) {
  const prefix = `test-${randomUUID()}`
  const common = { REDIS_URL, REDIS_PREFIX: prefix, QUEUE_NAME: 'jobs', MODEL_DIR: model.dir, TFJS_BACKEND: 'wasm', BATCH_WAIT_MS: '5', ...env }
  const service = await buildService(common)
  const workers: WorkerProcess[] = []
  t.teardown(async () => {
    await Promise.all(workers.map((w) => stopWorker(w, 'SIGKILL')))
    await service.close()
    const keys = await redis.keys(`${prefix}:*`)
    if (keys.length) await redis.del(...keys)
  })
  const spawnWorker = async (extra: Record<string, string> = {}) => {
    const w = await startWorkerProcess({ ...common, ...extra })
    workers.push(w)
    return w
  }
  return { app: service.app, prefix, spawnWorker, common }
}

const encodeReq = async (png: Buffer, headers: Record<string, string> = {}) => {
  const m = multipart([{ name: 'image', filename: 'p.png', contentType: 'image/png', data: png }])
  return { method: 'POST' as const, url: '/encode', payload: m.payload, headers: { ...m.headers, ...headers } }
}

t.test('encode -> edit -> sample -> undo -> commit through BullMQ and a worker process', async (t) => {
  const { app, spawnWorker } = await setup(t)
  const workerPort = 20000 + Math.floor(Math.random() * 20000)
  await spawnWorker({ WORKER_PORT: String(workerPort) })
  const probe = await fetch(`http://127.0.0.1:${workerPort}/readyz`)
  t.equal(probe.status, 200, 'the worker reports ready once the model is loaded')
  const ready = (await app.inject({ method: 'GET', url: '/readyz' })).json()
  t.match(ready, { status: 'ready', mode: 'queue', store: 'ok', queue: 'ok' })
  const enc = await app.inject(await encodeReq(await photoPng(40, 30)))
  t.equal(enc.statusCode, 201, enc.body.slice(0, 300))
  const { sessionId, latent } = enc.json()
  const img = await decodeDataUrl(enc.json().image)
  t.same([img.width, img.height], [40, 30])
  const edit = await app.inject({ method: 'POST', url: '/edit', payload: { sessionId, stroke: { points: [{ x: 20, y: 15 }], radius: 5 }, color: '#00ff00' } })
  t.equal(edit.statusCode, 200, edit.body.slice(0, 300))
  t.equal(edit.json().version, 2)
  t.notSame(edit.json().latent, latent)
  const sample = await app.inject({ method: 'GET', url: '/sample?seed=3' })
  t.equal(sample.statusCode, 201)
  t.equal(sample.json().width, 16)
  const undo = await app.inject({ method: 'POST', url: `/sessions/${sessionId}/undo` })
  t.equal(undo.statusCode, 200)
  t.same(undo.json().latent, latent, 'undo restores the encoded latent')
  const commit = await app.inject({ method: 'POST', url: `/sessions/${sessionId}/commit` })
  t.equal(commit.statusCode, 200, commit.body.slice(0, 200))
  t.equal(commit.json().version, 4, commit.body.slice(0, 100))
  const workerMetrics = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text()
  t.match(workerMetrics, /npe_batch_size_count\{kind="edit"\} 1/, 'the worker counts its batches')
  t.match(workerMetrics, /npe_job_duration_seconds_count\{kind="commit",outcome="ok"\} 1/)
  const info = (await app.inject({ method: 'GET', url: `/sessions/${sessionId}` })).json()
  t.equal(info.undoDepth, 1, 'edit, undo, commit: only the commit is undoable')
  t.equal(info.redoDepth, 0, 'commit cleared the redo stack')
})

t.test('two concurrent edits of one session are both applied, one after the other', async (t) => {
  const { app, spawnWorker } = await setup(t, { BATCH_MAX: '8', BATCH_WAIT_MS: '50' })
  await spawnWorker()
  await spawnWorker()
  const { sessionId } = (await app.inject(await encodeReq(await photoPng(32, 32)))).json()
  const edit = (x: number) => app.inject({ method: 'POST', url: '/edit', payload: { sessionId, stroke: { points: [{ x, y: 10 }], radius: 4 }, color: '#ff00ff' } })
  const results = await Promise.all([edit(5), edit(20), edit(28)])
  t.same(results.map((r) => r.statusCode), [200, 200, 200])
  // each answer shows the session after that edit (or a later one): versions 2..4, the last is 4
  const versions = results.map((r) => r.json().version as number)
  t.ok(versions.every((v) => v >= 2 && v <= 4), `versions ${versions}`)
  t.equal(Math.max(...versions), 4)
  const info = (await app.inject({ method: 'GET', url: `/sessions/${sessionId}` })).json()
  t.equal(info.version, 4)
  t.equal(info.undoDepth, 3, 'three edits in the history')
  // a stale baseVersion is a 409
  const stale = await app.inject({ method: 'POST', url: '/edit', payload: { sessionId, stroke: { points: [{ x: 1, y: 1 }], radius: 2 }, color: '#000000', baseVersion: 2 } })
  t.equal(stale.statusCode, 409)
  t.equal(stale.json().code, 'version_conflict')
})

t.test('a worker killed in the middle of a job: another worker finishes it, once', async (t) => {
  const fast = { WORKER_LOCK_MS: '2000', WORKER_STALLED_INTERVAL_MS: '1000' }
  const { app, spawnWorker, prefix } = await setup(t, fast)
  const first = await spawnWorker()
  const { sessionId } = (await app.inject(await encodeReq(await photoPng(32, 32)))).json()
  await stopWorker(first)
  // this worker holds each job in its batcher for 20 s: long enough to kill it mid-job
  const slow = await spawnWorker({ BATCH_WAIT_MS: '20000', BATCH_MAX: '4' })
  const pending = app.inject({ method: 'POST', url: '/edit', payload: { sessionId, stroke: { points: [{ x: 16, y: 16 }], radius: 4 }, color: '#123456' } })
  const queue = new Queue('jobs', { connection: { url: REDIS_URL }, prefix })
  t.teardown(() => queue.close())
  for (let i = 0; i < 200 && (await queue.getActiveCount()) === 0; i++) await new Promise((r) => setTimeout(r, 50))
  t.equal(await queue.getActiveCount(), 1, 'the job is active on the slow worker')
  const killed = await stopWorker(slow, 'SIGKILL')
  t.equal(killed.signal, 'SIGKILL')
  await spawnWorker()
  const res = await pending
  t.equal(res.statusCode, 200, res.body.slice(0, 300))
  t.equal(res.json().version, 2)
  const info = (await app.inject({ method: 'GET', url: `/sessions/${sessionId}` })).json()
  t.equal(info.version, 2, 'applied exactly once')
  t.equal(info.undoDepth, 1)
})

t.test('API keys: sessions are visible only to the key that created them', async (t) => {
  const { app, spawnWorker } = await setup(t, { API_KEYS: 'alpha-key-123,beta-key-456' })
  await spawnWorker()
  const a = { authorization: 'Bearer alpha-key-123' }
  const b = { authorization: 'Bearer beta-key-456' }
  const noKey = await app.inject(await encodeReq(await photoPng(20, 20)))
  t.equal(noKey.statusCode, 401)
  t.equal(noKey.json().code, 'unauthorized')
  const wrong = await app.inject({ method: 'GET', url: '/sample', headers: { authorization: 'Bearer nope' } })
  t.equal(wrong.statusCode, 401)
  const enc = await app.inject(await encodeReq(await photoPng(20, 20), a))
  t.equal(enc.statusCode, 201, enc.body.slice(0, 300))
  const { sessionId } = enc.json()
  t.equal((await app.inject({ method: 'GET', url: `/sessions/${sessionId}`, headers: a })).statusCode, 200)
  const other = await app.inject({ method: 'GET', url: `/sessions/${sessionId}`, headers: b })
  t.equal(other.statusCode, 404)
  t.equal(other.json().code, 'session_not_found')
  const otherEdit = await app.inject({ method: 'POST', url: '/edit', headers: b, payload: { sessionId, stroke: { points: [{ x: 1, y: 1 }], radius: 2 }, color: '#000000' } })
  t.equal(otherEdit.statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/sessions/${sessionId}`, headers: b })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: `/sessions/${sessionId}`, headers: a })).statusCode, 200, 'still there for its owner')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'probes need no key')
})

t.test('queue full -> 503 with Retry-After; no worker -> 504 at the deadline and the job is dropped', async (t) => {
  const { app, prefix } = await setup(t, { QUEUE_MAX: '1', JOB_DEADLINE_MS: '1500' })
  const first = app.inject({ method: 'GET', url: '/sample?seed=1' })
  const queue = new Queue('jobs', { connection: { url: REDIS_URL }, prefix })
  t.teardown(() => queue.close())
  for (let i = 0; i < 100 && (await queue.getWaitingCount()) === 0; i++) await new Promise((r) => setTimeout(r, 20))
  const second = await app.inject({ method: 'GET', url: '/sample?seed=2' })
  t.equal(second.statusCode, 503)
  t.equal(second.json().code, 'queue_full')
  t.ok(Number(second.headers['retry-after']) >= 1, 'Retry-After')
  const timedOut = await first
  t.equal(timedOut.statusCode, 504)
  t.equal(timedOut.json().code, 'deadline_exceeded')
  t.equal(await queue.getWaitingCount(), 0, 'the job that never started was removed')
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200)
})
