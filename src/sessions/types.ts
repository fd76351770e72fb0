/**
 * The SessionStore port: versioned editor sessions with a bounded undo/redo
 * history, an owner, and a time-to-live refreshed on use. Adapters: memory
 * (embedded mode) and redis (queue mode); one contract test suite runs on both.
 */
import type { Box, EditorMode, EditorState } from '../editor/editor.js'

/** The ground truth an edit is blended onto; changes only on encode and commit. */
export type SessionBase = Pick<EditorState, 'mode' | 'width' | 'height' | 'crop' | 'photo' | 'x' | 'xHat' | 'z0'>

/**
 * One undo/redo step: the latent, and the base if it differs from the current one. The output
 * it renders to is optional: the use cases store none and re-render on undo/redo (one generator
 * pass), so a session's history costs a few hundred bytes per step instead of a full-size image.
 */
export interface HistoryEntry {
  z: Float32Array
  output?: Uint8Array
  /** Set when undoing/redoing across a commit (the base changed). */
  base?: SessionBase
}

export interface SessionRecord {
  /** 128-bit random, 32 lowercase hex characters. */
  id: string
  /** Id of the API key that created it ('' when the service runs without keys). */
  owner: string
  /** 1 after creation; +1 on every save. */
  version: number
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
  state: EditorState
  /** Most recent last; at most `historyLimit` entries. */
  undo: HistoryEntry[]
  redo: HistoryEntry[]
  /** Request ids of recently applied jobs (most recent last, bounded): a retried job is not applied twice. */
  applied: string[]
}

/** What GET /sessions/{id} shows, without any image. */
export interface SessionMeta {
  id: string
  owner: string
  version: number
  createdAt: number
  updatedAt: number
  mode: EditorMode
  width: number
  height: number
  crop: Box
  z: Float32Array
  z0: Float32Array
  undoDepth: number
  redoDepth: number
}

export type SessionErrorCode = 'session_not_found' | 'version_conflict' | 'session_busy' | 'session_exists'

export class SessionError extends Error {
  override name = 'SessionError'
  constructor(
    readonly code: SessionErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export interface SessionStore {
  /** 'memory' | 'redis'. */
  readonly kind: string
  /** Stores a new record (version must be 1); 'session_exists' if the id is taken. */
  create(record: SessionRecord): Promise<void>
  /** The full record, or undefined if unknown or expired. Refreshes the TTL. */
  get(id: string): Promise<SessionRecord | undefined>
  /** The record without images (cheap). Refreshes the TTL. */
  getMeta(id: string): Promise<SessionMeta | undefined>
  /** The current output image. */
  getOutput(id: string): Promise<{ rgb: Uint8Array; width: number; height: number; version: number } | undefined>
  /**
   * Replaces the record if the stored version equals `expectedVersion`; the stored
   * version becomes expectedVersion + 1 (record.version is set to it). Throws
   * 'version_conflict' otherwise and 'session_not_found' if it expired or was deleted.
   * History beyond `historyLimit` and `applied` beyond its bound are dropped.
   */
  save(record: SessionRecord, expectedVersion: number): Promise<void>
  /** True if it existed. */
  delete(id: string): Promise<boolean>
  /**
   * Runs fn while holding the session's lock (exclusive across every process using
   * the same store). Waits up to waitMs for the lock ('session_busy' after that); the
   * lock expires after ttlMs if its holder dies.
   */
  withLock<T>(id: string, fn: () => Promise<T>, opts?: { ttlMs?: number; waitMs?: number }): Promise<T>
  /** Number of live sessions. */
  count(): Promise<number>
  /** Throws if the store is unreachable. */
  ping(): Promise<void>
  close(): Promise<void>
}

export interface SessionStoreOptions {
  /** Seconds a session lives after its last use. */
  ttlSeconds: number
  /** Undo (and redo) entries kept. */
  historyLimit: number
  /** Applied request ids kept. */
  appliedLimit?: number
  /** Clock (tests). */
  now?: () => number
}

export function metaOf(r: SessionRecord): SessionMeta {
  return {
    id: r.id,
    owner: r.owner,
    version: r.version,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    mode: r.state.mode,
    width: r.state.width,
    height: r.state.height,
    crop: { ...r.state.crop },
    z: r.state.z,
    z0: r.state.z0,
    undoDepth: r.undo.length,
    redoDepth: r.redo.length,
  }
}
