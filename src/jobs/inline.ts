/**
 * Embedded mode's JobRunner: the same use cases, in this process, through
 * the same micro-batcher the workers use.
 */
import { AppError, toAppError } from '../errors.js'
import type { UseCases } from '../usecases/jobs.js'
import { Batcher, type BatcherStats } from './batcher.js'
import type { JobKind, JobRunner, Payloads, Results } from './types.js'

export function createInlineRunner(useCases: UseCases, opts: { maxBatch: number; waitMs: number; queueMax: number } & BatcherStats): JobRunner {
  const batcher = new Batcher(useCases.handle, opts)
  return {
    kind: 'inline',
    async run<K extends JobKind>(kind: K, payload: Payloads[K]): Promise<Results[K]> {
      if (batcher.pending >= opts.queueMax) throw new AppError('queue_full', `${batcher.pending} jobs are waiting; try again shortly`, 1)
      try {
        return await batcher.submit<Results[K]>(kind, payload)
      } catch (err) {
        throw toAppError(err)
      }
    },
    async depth() {
      return batcher.pending
    },
    async ping() {},
    async close() {
      batcher.close()
    },
  }
}
