/**
 * Job kinds with their payloads and results, shared by the API (producer)
 * and the workers (consumers). Results are small: images stay in the session
 * store (or the blob store) and are read by the API afterwards.
 */
export interface JobMeta {
  /** Unique per request; a retried job with an id the session already applied is not applied twice. */
  requestId: string
  /** Epoch ms; a job that has not started by then is dropped with 'deadline_exceeded'. */
  deadline: number
}

export interface VersionedTarget {
  sessionId: string
  baseVersion?: number
}

export interface Payloads {
  encode: JobMeta & { sessionId: string; owner: string; uploadKey: string; crop?: { x: number; y: number; w: number; h: number } }
  sample: JobMeta & { sessionId: string; owner: string; seed: number }
  edit: JobMeta &
    VersionedTarget & {
      stroke: { points: { x: number; y: number }[]; radius: number }
      color?: [number, number, number]
      mode: 'color' | 'lighten' | 'darken'
      strength: number
    }
  latent: JobMeta & VersionedTarget & { latent?: number[]; entries?: { index: number; value: number }[] }
  undo: JobMeta & VersionedTarget
  redo: JobMeta & VersionedTarget
  reset: JobMeta & VersionedTarget
  commit: JobMeta & VersionedTarget
  interpolate: JobMeta & { from: number[]; to: number[]; steps: number; resultKey: string }
}

export type JobKind = keyof Payloads
export const JOB_KINDS: JobKind[] = ['encode', 'sample', 'edit', 'latent', 'undo', 'redo', 'reset', 'commit', 'interpolate']

export interface SessionResult {
  sessionId: string
  version: number
}

export type Results = { [K in Exclude<JobKind, 'interpolate'>]: SessionResult } & { interpolate: { resultKey: string; frames: number } }

export interface RunOptions {
  /** For logs: the HTTP request id. */
  traceId?: string
}

/** The port the API calls: inline (same process) or BullMQ (worker processes). */
export interface JobRunner {
  readonly kind: 'inline' | 'queue'
  run<K extends JobKind>(kind: K, payload: Payloads[K], opts?: RunOptions): Promise<Results[K]>
  /** Jobs waiting to start. */
  depth(): Promise<number>
  ping(): Promise<void>
  close(): Promise<void>
}
