/**
 * A GPU (or CPU) worker process: pulls jobs from the BullMQ queue, gathers
 * up to BATCH_MAX jobs of one kind within BATCH_WAIT_MS, and runs them as one
 * batch through the same use cases as embedded mode.
 *
 * Workers are processes, not threads (tfjs-node cannot be loaded in a second
 * worker_thread). Tensor work is synchronous and blocks the event loop, so
 * the lock duration is sized well above a batch's duration; a worker killed
 * mid-job loses its lock and the job is retried by another worker (stalled-job
 * recovery), which is safe: sessions are saved atomically and idempotently.
 */
import { createServer, type Server } from 'node:http'
import { Worker, type Job } from 'bullmq'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { Editor } from '../editor/editor.js'
import { encodeFailure, toAppError } from '../errors.js'
import { Batcher } from '../jobs/batcher.js'
import { createRedisBlobStore } from '../jobs/blobs.js'
import type { JobMeta } from '../jobs/types.js'
import { initBackend } from '../model/backend.js'
import { loadCheckpoint } from '../model/checkpoint-dir.js'
import { createMetrics } from '../metrics.js'
import { createRedisSessionStore } from '../sessions/redis.js'
import { UseCases } from '../usecases/jobs.js'

export interface RunningWorker {
  worker: Worker
  close(): Promise<void>
}

export async function startWorker(config: Config, log: Logger): Promise<RunningWorker> {
  if (!config.REDIS_URL) throw new Error('npe worker needs REDIS_URL (workers only exist in queue mode)')
  const backend = await initBackend(config.TFJS_BACKEND)
  const { model, json } = await loadCheckpoint(config.MODEL_DIR)
  const editor = new Editor(model, { maskSigma: config.MASK_SIGMA })
  // Warm-up before the BullMQ worker exists: on Ampere/Hopper the first run of each kernel
  // JIT-compiles TF 2.9's PTX (minutes on an H100) and would block the event loop past the job
  // lock. The probe server starts after the worker, so /readyz also waits for this.
  const warmStart = performance.now()
  const [warm] = editor.sample([0])
  editor.paint([{ state: warm!, stroke: { points: [{ x: 0, y: 0 }], radius: 1 }, color: [0, 0, 0] }])
  editor.encode([{ rgb: warm!.output, width: warm!.width, height: warm!.height }])
  log.info({ ms: Math.round(performance.now() - warmStart) }, 'warm-up done')
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null })
  const store = createRedisSessionStore(redis, { prefix: config.REDIS_PREFIX, ttlSeconds: config.SESSION_TTL_S, historyLimit: config.HISTORY_LIMIT })
  const blobs = createRedisBlobStore(redis, config.REDIS_PREFIX)
  const useCases = new UseCases({ store, editor, blobs })
  const metrics = createMetrics()
  metrics.setSources({ queueDepth: async () => 0, liveSessions: () => store.count() })
  const batcher = new Batcher(useCases.handle, {
    maxBatch: config.BATCH_MAX,
    waitMs: config.BATCH_WAIT_MS,
    onBatch: (kind, size, ms) => {
      metrics.batchSize.observe({ kind }, size)
      metrics.batchDuration.observe({ kind }, ms / 1000)
      log.debug({ kind, size, ms: Math.round(ms) }, 'batch')
    },
  })

  const processor = async (job: Job) => {
    const data = job.data as JobMeta
    const t0 = performance.now()
    try {
      const result = await batcher.submit(job.name, data)
      metrics.jobDuration.observe({ kind: job.name, outcome: 'ok' }, (performance.now() - t0) / 1000)
      log.info({ job: job.id, kind: job.name, requestId: data.requestId, ms: Math.round(performance.now() - t0) }, 'job done')
      return result
    } catch (err) {
      const e = toAppError(err)
      metrics.jobDuration.observe({ kind: job.name, outcome: e.code }, (performance.now() - t0) / 1000)
      metrics.jobsFailed.inc({ kind: job.name, code: e.code })
      if (e.code === 'internal') log.error({ job: job.id, kind: job.name, requestId: data.requestId, err }, 'job failed')
      else log.info({ job: job.id, kind: job.name, requestId: data.requestId, code: e.code }, 'job rejected')
      throw new Error(encodeFailure(e))
    }
  }
  const worker = new Worker(config.QUEUE_NAME, processor, {
    connection: { url: config.REDIS_URL, maxRetriesPerRequest: null },
    prefix: config.REDIS_PREFIX,
    concurrency: config.BATCH_MAX,
    lockDuration: config.WORKER_LOCK_MS,
    stalledInterval: config.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: 1,
  })
  worker.on('error', (err) => log.error({ err }, 'worker error'))
  await worker.waitUntilReady()
  const server = config.WORKER_PORT > 0 ? await serveProbes(config.WORKER_PORT, metrics.registry, () => worker.isRunning()) : undefined
  log.info(
    { pid: process.pid, backend: backend.name, model: config.MODEL_DIR, step: json.step, queue: config.QUEUE_NAME, batchMax: config.BATCH_MAX },
    'worker ready',
  )
  let closing: Promise<void> | undefined
  return {
    worker,
    close() {
      closing ??= (async () => {
        log.info('worker closing: finishing active jobs')
        await worker.close()
        batcher.close()
        await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
        await redis.quit().catch(() => undefined)
        log.info('worker closed')
      })()
      return closing
    },
  }
}


/**
 * The worker's probe and metrics endpoint: /healthz (alive), /readyz (the model is
 * loaded and the BullMQ worker is running: the server only starts after both), /metrics.
 */
function serveProbes(port: number, registry: ReturnType<typeof createMetrics>['registry'], running: () => boolean): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/healthz') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}')
    if (path === '/readyz') {
      const ready = running()
      return void res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ready ? 'ready' : 'not_ready' }))
    }
    if (path === '/metrics') {
      return void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text))
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"status":"not_found"}')
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '0.0.0.0', () => resolve(server))
  })
}
