/**
 * Composition root: builds the API's dependencies for one of the two modes.
 *
 * - embedded (REDIS_URL unset): in-memory sessions and blobs, the model in
 *   this process, jobs run by the in-process runner (same use cases, same
 *   batcher as the workers).
 * - queue (REDIS_URL set): sessions and blobs in Redis, jobs on a BullMQ queue
 *   run by `npe worker` processes; this process does not load the weights,
 *   only the checkpoint's config (resolution, latent size).
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import { buildApp, type AppDeps, type ModelInfo } from './api/app.js'
import type { Config } from './config.js'
import { Editor } from './editor/editor.js'
import { createInlineRunner } from './jobs/inline.js'
import { createMemoryBlobStore, createRedisBlobStore } from './jobs/blobs.js'
import { createQueueRunner } from './jobs/bullmq.js'
import { createMetrics } from './metrics.js'
import { initBackend } from './model/backend.js'
import { CheckpointError } from './model/checkpoint.js'
import { loadCheckpoint } from './model/checkpoint-dir.js'
import { createMemorySessionStore } from './sessions/memory.js'
import { createRedisSessionStore } from './sessions/redis.js'
import { UseCases } from './usecases/jobs.js'

export interface Service {
  app: FastifyInstance
  deps: AppDeps
  close(): Promise<void>
}

/** The model's shape from checkpoint.json, without loading the weights. */
export async function readModelInfo(dir: string): Promise<ModelInfo> {
  let json: { config?: { resolution?: number; latentSize?: number }; step?: number }
  try {
    json = JSON.parse(await readFile(join(dir, 'checkpoint.json'), 'utf8'))
  } catch {
    throw new CheckpointError('checkpoint_missing', `no readable checkpoint at ${dir} (checkpoint.json)`)
  }
  const { resolution, latentSize } = json.config ?? {}
  if (typeof resolution !== 'number' || typeof latentSize !== 'number') throw new CheckpointError('checkpoint_config', `${dir}/checkpoint.json has no model config`)
  return { resolution, latentSize, step: json.step ?? 0 }
}

export async function createService(config: Config, logger: FastifyServerOptions['logger'], opts: { webRoot?: string } = {}): Promise<Service> {
  const metrics = createMetrics()
  const storeOpts = { ttlSeconds: config.SESSION_TTL_S, historyLimit: config.HISTORY_LIMIT }
  if (!config.REDIS_URL) {
    const backend = await initBackend(config.TFJS_BACKEND)
    const { model, json } = await loadCheckpoint(config.MODEL_DIR)
    const editor = new Editor(model, { maskSigma: config.MASK_SIGMA })
    const store = createMemorySessionStore(storeOpts)
    const blobs = createMemoryBlobStore()
    const runner = createInlineRunner(new UseCases({ store, editor, blobs }), {
      maxBatch: config.BATCH_MAX,
      waitMs: config.BATCH_WAIT_MS,
      queueMax: config.QUEUE_MAX,
      onBatch: (kind, size, ms) => {
        metrics.batchSize.observe({ kind }, size)
        metrics.batchDuration.observe({ kind }, ms / 1000)
      },
    })
    const deps: AppDeps = {
      config,
      mode: 'embedded',
      runner,
      store,
      blobs,
      metrics,
      backend: backend.name,
      model: { resolution: model.config.resolution, latentSize: model.config.latentSize, step: json.step },
      webRoot: opts.webRoot,
    }
    const app = await buildApp(deps, logger)
    return {
      app,
      deps,
      async close() {
        await app.close()
        await runner.close()
        await store.close()
        await blobs.close()
      },
    }
  }
  const model = await readModelInfo(config.MODEL_DIR)
  // producers fail fast rather than queueing commands while Redis is away
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, enableOfflineQueue: true })
  const store = createRedisSessionStore(redis, { ...storeOpts, prefix: config.REDIS_PREFIX })
  const blobs = createRedisBlobStore(redis, config.REDIS_PREFIX)
  const runner = await createQueueRunner({
    connection: { url: config.REDIS_URL },
    prefix: config.REDIS_PREFIX,
    queueName: config.QUEUE_NAME,
    queueMax: config.QUEUE_MAX,
    deadlineMs: config.JOB_DEADLINE_MS,
  })
  const deps: AppDeps = { config, mode: 'queue', runner, store, blobs, metrics, backend: 'none (queue mode: see the workers)', model, redis, webRoot: opts.webRoot }
  const app = await buildApp(deps, logger)
  return {
    app,
    deps,
    async close() {
      await app.close()
      await runner.close()
      await store.close()
      await redis.quit().catch(() => undefined)
    },
  }
}
