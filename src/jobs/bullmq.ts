/**
 * Queue mode's JobRunner (the API side): jobs go to a BullMQ queue in Redis,
 * worker processes run them (src/workers), and the API learns the outcome
 * from the queue's event stream. Results are small ({sessionId, version});
 * images are read from the session store afterwards.
 *
 * Waiting: one QueueEvents listener per process and a map of pending job ids
 * registered before the job is added, so completion cannot be missed and
 * removeOnComplete cannot race it. A job still waiting at the deadline is
 * removed and answered 'deadline_exceeded'; one already running finishes
 * (its result is simply not awaited).
 */
import { Queue, QueueEvents, type ConnectionOptions } from 'bullmq'
import { AppError, decodeFailure } from '../errors.js'
import type { JobKind, JobRunner, Payloads, Results } from './types.js'

export interface QueueRunnerOptions {
  connection: ConnectionOptions
  prefix: string
  queueName: string
  queueMax: number
  deadlineMs: number
}

interface Waiter {
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
}

export async function createQueueRunner(opts: QueueRunnerOptions): Promise<JobRunner & { queue: Queue }> {
  const queue = new Queue(opts.queueName, { connection: opts.connection, prefix: opts.prefix })
  const events = new QueueEvents(opts.queueName, { connection: opts.connection, prefix: opts.prefix })
  const waiters = new Map<string, Waiter>()
  events.on('completed', ({ jobId, returnvalue }) => {
    const w = waiters.get(jobId)
    if (!w) return
    waiters.delete(jobId)
    w.resolve(typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue)
  })
  events.on('failed', ({ jobId, failedReason }) => {
    const w = waiters.get(jobId)
    if (!w) return
    waiters.delete(jobId)
    w.reject(decodeFailure(failedReason))
  })
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()])

  async function depth(): Promise<number> {
    const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed')
    return (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0)
  }

  return {
    kind: 'queue',
    queue,
    async run<K extends JobKind>(kind: K, payload: Payloads[K]): Promise<Results[K]> {
      const waiting = await depth()
      if (waiting >= opts.queueMax) throw new AppError('queue_full', `${waiting} jobs are waiting; try again shortly`, 2)
      const jobId = payload.requestId
      const done = new Promise<Results[K]>((resolve, reject) => {
        waiters.set(jobId, { resolve: resolve as (v: unknown) => void, reject })
      })
      const remaining = Math.max(1, payload.deadline - Date.now())
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new AppError('deadline_exceeded', `no result within ${opts.deadlineMs} ms`)), remaining)
      })
      try {
        await queue.add(kind, payload, {
          jobId,
          attempts: 1,
          removeOnComplete: { age: 300, count: 10_000 },
          removeOnFail: { age: 3_600, count: 10_000 },
        })
        return await Promise.race([done, timeout])
      } catch (err) {
        if (err instanceof AppError && err.code === 'deadline_exceeded') {
          const job = await queue.getJob(jobId).catch(() => undefined)
          if (job && (await job.getState()) === 'waiting') await job.remove().catch(() => undefined)
        }
        throw err
      } finally {
        clearTimeout(timer)
        waiters.delete(jobId)
      }
    },
    depth,
    async ping() {
      await depth()
    },
    async close() {
      for (const w of waiters.values()) w.reject(new AppError('internal', 'the API is shutting down'))
      waiters.clear()
      await events.close()
      await queue.close()
    },
  }
}
