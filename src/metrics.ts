/** Prometheus metrics of the service (API and, in embedded mode, the in-process runner). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  registry: Registry
  httpDuration: Histogram<'method' | 'route' | 'status'>
  jobDuration: Histogram<'kind' | 'outcome'>
  batchSize: Histogram<'kind'>
  batchDuration: Histogram<'kind'>
  jobsFailed: Counter<'kind' | 'code'>
  /** Set the collectors that read live values (queue depth, live sessions). */
  setSources(sources: { queueDepth: () => Promise<number>; liveSessions: () => Promise<number> }): void
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'npe_' })
  let sources: { queueDepth: () => Promise<number>; liveSessions: () => Promise<number> } | undefined
  new Gauge({
    name: 'npe_queue_depth',
    help: 'Jobs waiting to start',
    registers: [registry],
    async collect() {
      this.set(sources ? await sources.queueDepth().catch(() => -1) : 0)
    },
  })
  new Gauge({
    name: 'npe_live_sessions',
    help: 'Sessions in the store',
    registers: [registry],
    async collect() {
      this.set(sources ? await sources.liveSessions().catch(() => -1) : 0)
    },
  })
  return {
    registry,
    httpDuration: new Histogram({
      name: 'npe_http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    jobDuration: new Histogram({
      name: 'npe_job_duration_seconds',
      help: 'Time from enqueue to result, per job kind',
      labelNames: ['kind', 'outcome'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'npe_batch_size',
      help: 'Jobs per batch (in-process runner)',
      labelNames: ['kind'],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    batchDuration: new Histogram({
      name: 'npe_model_step_seconds',
      help: 'Model work per batch (in-process runner)',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    jobsFailed: new Counter({ name: 'npe_jobs_failed_total', help: 'Failed jobs by code', labelNames: ['kind', 'code'], registers: [registry] }),
    setSources(s) {
      sources = s
    },
  }
}
