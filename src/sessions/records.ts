/**
 * What both SessionStore adapters share: option and record validation, the
 * history / applied bounds, deep copies and the lock defaults.
 */
import { randomBytes } from 'node:crypto'
import type { HistoryEntry, SessionBase, SessionRecord, SessionStoreOptions } from './types.js'

/** Applied request ids kept when SessionStoreOptions.appliedLimit is not set. */
export const DEFAULT_APPLIED_LIMIT = 32
/** withLock defaults: a dead holder's lock lapses after LOCK_TTL_MS; a waiter gives up after LOCK_WAIT_MS. */
export const LOCK_TTL_MS = 30_000
export const LOCK_WAIT_MS = 5_000

const SESSION_ID = /^[0-9a-f]{32}$/

/** A new session id: 128 random bits as 32 lowercase hex characters. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex')
}

export function isSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID.test(id)
}

/** Throws a TypeError for an id that is not 32 lowercase hex characters (a caller's bug, not a missing session). */
export function checkSessionId(id: unknown): asserts id is string {
  if (!isSessionId(id)) throw new TypeError(`session id must be 32 lowercase hex characters, got ${JSON.stringify(id)}`)
}

export interface ResolvedOptions {
  ttlMs: number
  historyLimit: number
  appliedLimit: number
  now: () => number
}

export function resolveOptions(opts: SessionStoreOptions): ResolvedOptions {
  if (!(opts.ttlSeconds > 0) || !Number.isFinite(opts.ttlSeconds)) throw new RangeError(`ttlSeconds must be a positive number, got ${opts.ttlSeconds}`)
  if (!Number.isInteger(opts.historyLimit) || opts.historyLimit < 0) throw new RangeError(`historyLimit must be an integer >= 0, got ${opts.historyLimit}`)
  const appliedLimit = opts.appliedLimit ?? DEFAULT_APPLIED_LIMIT
  if (!Number.isInteger(appliedLimit) || appliedLimit < 0) throw new RangeError(`appliedLimit must be an integer >= 0, got ${appliedLimit}`)
  return { ttlMs: Math.max(1, Math.round(opts.ttlSeconds * 1000)), historyLimit: opts.historyLimit, appliedLimit, now: opts.now ?? Date.now }
}

export function resolveLockOptions(opts: { ttlMs?: number; waitMs?: number } = {}): { ttlMs: number; waitMs: number } {
  const ttlMs = opts.ttlMs ?? LOCK_TTL_MS
  const waitMs = opts.waitMs ?? LOCK_WAIT_MS
  if (!Number.isInteger(ttlMs) || ttlMs < 1) throw new RangeError(`lock ttlMs must be a positive integer, got ${ttlMs}`)
  if (!Number.isFinite(waitMs) || waitMs < 0) throw new RangeError(`lock waitMs must be a number >= 0, got ${waitMs}`)
  return { ttlMs, waitMs }
}

function invalid(message: string): never {
  throw new TypeError(`invalid session record: ${message}`)
}

function checkBase(b: SessionBase, where: string): void {
  if (b.mode !== 'photo' && b.mode !== 'sample') invalid(`${where}.mode is ${JSON.stringify(b.mode)}`)
  if (!Number.isInteger(b.width) || b.width < 1 || !Number.isInteger(b.height) || b.height < 1) invalid(`${where} size ${b.width}x${b.height}`)
  const c = b.crop
  const ints = c !== null && typeof c === 'object' && [c.x, c.y, c.w, c.h].every(Number.isInteger)
  if (!ints || c.w < 1 || c.h < 1 || c.x < 0 || c.y < 0 || c.x + c.w > b.width || c.y + c.h > b.height) {
    invalid(`${where}.crop is not a box of whole pixels inside the ${b.width}x${b.height} photo`)
  }
  if (!(b.photo instanceof Uint8Array) || b.photo.length !== b.width * b.height * 3) invalid(`${where}.photo must be ${b.width}x${b.height}x3 bytes`)
  if (!(b.x instanceof Float32Array) || !(b.xHat instanceof Float32Array) || b.x.length !== b.xHat.length) invalid(`${where}.x and .xHat must be Float32Arrays of one length`)
  if (!(b.z0 instanceof Float32Array)) invalid(`${where}.z0 must be a Float32Array`)
}

function checkEntry(e: HistoryEntry, where: string): void {
  if (e === null || typeof e !== 'object') invalid(`${where} is not an object`)
  if (!(e.z instanceof Float32Array)) invalid(`${where}.z must be a Float32Array`)
  if (e.output !== undefined && !(e.output instanceof Uint8Array)) invalid(`${where}.output must be a Uint8Array if given`)
  if (e.base !== undefined) checkBase(e.base, `${where}.base`)
}

/** Shape checks on a record about to be stored (TypeError: the caller built a bad record). */
export function checkRecord(r: SessionRecord): void {
  if (r === null || typeof r !== 'object') invalid('not an object')
  checkSessionId(r.id)
  if (typeof r.owner !== 'string') invalid('owner must be a string')
  if (!Number.isFinite(r.createdAt) || !Number.isFinite(r.updatedAt)) invalid('createdAt and updatedAt must be finite numbers')
  const s = r.state
  if (s === null || typeof s !== 'object') invalid('state is missing')
  checkBase(s, 'state')
  if (!(s.z instanceof Float32Array) || s.z.length !== s.z0.length) invalid('state.z must be a Float32Array as long as state.z0')
  if (!(s.output instanceof Uint8Array) || s.output.length !== s.photo.length) invalid('state.output must be as many bytes as state.photo')
  if (!Array.isArray(r.undo) || !Array.isArray(r.redo)) invalid('undo and redo must be arrays')
  r.undo.forEach((e, i) => checkEntry(e, `undo[${i}]`))
  r.redo.forEach((e, i) => checkEntry(e, `redo[${i}]`))
  if (!Array.isArray(r.applied) || !r.applied.every((a) => typeof a === 'string')) invalid('applied must be an array of strings')
}

/** The newest `limit` items (the end of the list). */
export function keepLast<T>(items: readonly T[], limit: number): T[] {
  return items.slice(Math.max(0, items.length - limit))
}

/** The record as it will be stored: history and applied ids cut to their bounds (the caller's arrays are not touched). */
export function boundRecord(r: SessionRecord, o: ResolvedOptions, version: number): SessionRecord {
  return {
    ...r,
    version,
    undo: keepLast(r.undo, o.historyLimit),
    redo: keepLast(r.redo, o.historyLimit),
    applied: keepLast(r.applied, o.appliedLimit),
  }
}

function copyBase(b: SessionBase): SessionBase {
  return { mode: b.mode, width: b.width, height: b.height, crop: { ...b.crop }, photo: b.photo.slice(), x: b.x.slice(), xHat: b.xHat.slice(), z0: b.z0.slice() }
}

/**
 * A deep copy. Typed arrays are copied with slice(), which copies only the
 * view (structuredClone would copy a view's whole underlying buffer).
 */
export function copyRecord(r: SessionRecord): SessionRecord {
  const s = r.state
  const entry = (e: HistoryEntry): HistoryEntry => ({
    z: e.z.slice(),
    ...(e.output ? { output: e.output.slice() } : {}),
    ...(e.base ? { base: copyBase(e.base) } : {}),
  })
  return {
    id: r.id,
    owner: r.owner,
    version: r.version,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    state: { ...copyBase(s), z: s.z.slice(), output: s.output.slice() },
    undo: r.undo.map(entry),
    redo: r.redo.map(entry),
    applied: [...r.applied],
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
