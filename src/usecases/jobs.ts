/**
 * The use cases behind every job kind: load session(s) -> editor op -> save
 * (optimistic version check), batched where the editor batches. The inline
 * runner (embedded mode) and the BullMQ workers call exactly this.
 *
 * Guarantees:
 * - a session's operations apply one after another: saves are conditional on
 *   the version read; an internal conflict (another worker saved first) is
 *   retried on the fresh record, a client's stale `baseVersion` is a 409;
 * - a job retried after a worker died is not applied twice (`applied` ids);
 * - a job that has not started by its deadline is dropped ('deadline_exceeded').
 */
import type { EditorState, Editor } from '../editor/editor.js'
import { AppError, toAppError } from '../errors.js'
import { unpackImage, type BlobStore } from '../jobs/blobs.js'
import type { Settled } from '../jobs/batcher.js'
import type { JobKind, JobMeta, Payloads, Results, SessionResult, VersionedTarget } from '../jobs/types.js'
import type { HistoryEntry, SessionBase, SessionRecord, SessionStore } from '../sessions/types.js'

export interface UseCaseDeps {
  store: SessionStore
  editor: Editor
  blobs: BlobStore
  now?: () => number
}

const MAX_RETRIES = 5
export const RESULT_TTL_MS = 120_000

export function baseOf(s: EditorState): SessionBase {
  return { mode: s.mode, width: s.width, height: s.height, crop: { ...s.crop }, photo: s.photo, x: s.x, xHat: s.xHat, z0: s.z0 }
}

function withBase(s: EditorState, base: SessionBase): EditorState {
  return { ...s, ...base, crop: { ...base.crop } }
}

function checkDeadline(meta: JobMeta, now: number): void {
  if (now > meta.deadline) throw new AppError('deadline_exceeded', 'the request deadline passed before the work started')
}

function sameBase(a: EditorState, b: EditorState): boolean {
  return a.photo === b.photo && a.x === b.x && a.xHat === b.xHat && a.z0 === b.z0
}

/**
 * The record after replacing its state by `next`, with an undo entry for the old one: its latent
 * (and base, if `next` has another one), not its output, which undo re-renders.
 */
function advance(rec: SessionRecord, next: EditorState): SessionRecord {
  const entry: HistoryEntry = { z: rec.state.z }
  if (!sameBase(rec.state, next)) entry.base = baseOf(rec.state)
  return { ...rec, state: next, undo: [...rec.undo, entry], redo: [] }
}

type Mutation = (rec: SessionRecord) => SessionRecord

export class UseCases {
  private readonly now: () => number

  constructor(private readonly deps: UseCaseDeps) {
    this.now = deps.now ?? Date.now
  }

  /** The batch handler for the Batcher: one settled result per item, in order. */
  handle = async (kind: string, items: unknown[]): Promise<Settled<unknown>[]> => {
    switch (kind as JobKind) {
      case 'encode':
        return this.encode(items as Payloads['encode'][])
      case 'sample':
        return this.sample(items as Payloads['sample'][])
      case 'edit':
        return this.edit(items as Payloads['edit'][])
      case 'latent':
      case 'undo':
      case 'redo':
      case 'reset':
      case 'commit':
      case 'interpolate':
        return settleEach(items, (item) => this.single(kind as JobKind, item))
      default:
        return items.map(() => ({ ok: false as const, error: new AppError('invalid_request', `unknown job kind '${kind}'`) }))
    }
  }

  private async single(kind: JobKind, item: unknown): Promise<unknown> {
    const { editor } = this.deps
    switch (kind) {
      case 'latent': {
        const p = item as Payloads['latent']
        return this.mutate(p, (rec) => {
          const values = p.latent ? Float32Array.from(p.latent) : p.entries!
          return advance(rec, editor.setLatent(rec.state, values))
        })
      }
      case 'undo':
      case 'redo': {
        const p = item as Payloads['undo']
        return this.mutate(p, (rec) => step(editor, rec, kind))
      }
      case 'reset': {
        const p = item as Payloads['reset']
        return this.mutate(p, (rec) => advance(rec, editor.reset(rec.state)))
      }
      case 'commit': {
        const p = item as Payloads['commit']
        return this.mutate(p, (rec) => advance(rec, editor.commit(rec.state)))
      }
      case 'interpolate':
        return this.interpolate(item as Payloads['interpolate'])
      default:
        throw new AppError('invalid_request', `unknown job kind '${kind}'`)
    }
  }

  /** Load -> checks -> fn -> conditional save, retrying internal conflicts. */
  async mutate(p: JobMeta & VersionedTarget, fn: Mutation): Promise<SessionResult> {
    checkDeadline(p, this.now())
    for (let attempt = 0; ; attempt++) {
      const rec = await this.load(p)
      if (rec.applied.includes(p.requestId)) return { sessionId: rec.id, version: rec.version }
      const next = fn(rec)
      try {
        return await this.save(rec, next, p.requestId)
      } catch (err) {
        if ((err as { code?: string }).code === 'version_conflict' && p.baseVersion === undefined && attempt < MAX_RETRIES) continue
        throw err
      }
    }
  }

  private async load(p: VersionedTarget): Promise<SessionRecord> {
    const rec = await this.deps.store.get(p.sessionId)
    if (!rec) throw new AppError('session_not_found', `session ${p.sessionId} does not exist or has expired`)
    if (p.baseVersion !== undefined && rec.version !== p.baseVersion) {
      throw new AppError('version_conflict', `session ${p.sessionId} is at version ${rec.version}, not ${p.baseVersion}`)
    }
    return rec
  }

  private async save(rec: SessionRecord, next: SessionRecord, requestId: string): Promise<SessionResult> {
    const expected = rec.version
    const record = { ...next, applied: [...rec.applied, requestId], updatedAt: this.now() }
    await this.deps.store.save(record, expected)
    return { sessionId: rec.id, version: record.version }
  }

  private async encode(items: Payloads['encode'][]): Promise<Settled<unknown>[]> {
    const { store, blobs, editor } = this.deps
    const results: Settled<unknown>[] = items.map(() => ({ ok: false, error: new AppError('internal', 'not processed') }))
    const todo: { i: number; p: Payloads['encode']; rgb: Uint8Array; width: number; height: number }[] = []
    await Promise.all(
      items.map(async (p, i) => {
        try {
          const existing = await store.getMeta(p.sessionId)
          if (existing) {
            results[i] = { ok: true, value: { sessionId: p.sessionId, version: existing.version } } // a retried job
            return
          }
          checkDeadline(p, this.now())
          const blob = await blobs.get(p.uploadKey)
          if (!blob) throw new AppError('invalid_request', 'the upload expired before it was processed')
          todo.push({ i, p, ...unpackImage(blob) })
        } catch (err) {
          results[i] = { ok: false, error: err }
        }
      }),
    )
    if (todo.length > 0) {
      let states: EditorState[] = []
      try {
        states = editor.encode(todo.map((t) => ({ rgb: t.rgb, width: t.width, height: t.height, crop: t.p.crop })))
      } catch {
        // one bad input must not fail the others: redo them one by one
        for (const t of todo) {
          try {
            results[t.i] = { ok: true, value: await this.create(t.p, editor.encode([{ rgb: t.rgb, width: t.width, height: t.height, crop: t.p.crop }])[0]!) }
          } catch (e) {
            results[t.i] = { ok: false, error: e }
          }
        }
        return results
      }
      await Promise.all(
        todo.map(async (t, k) => {
          try {
            results[t.i] = { ok: true, value: await this.create(t.p, states[k]!) }
            await blobs.delete(t.p.uploadKey)
          } catch (err) {
            results[t.i] = { ok: false, error: err }
          }
        }),
      )
    }
    return results
  }

  private async create(p: JobMeta & { sessionId: string; owner: string }, state: EditorState): Promise<SessionResult> {
    const t = this.now()
    const record: SessionRecord = { id: p.sessionId, owner: p.owner, version: 1, createdAt: t, updatedAt: t, state, undo: [], redo: [], applied: [p.requestId] }
    await this.deps.store.create(record)
    return { sessionId: p.sessionId, version: 1 }
  }

  private async sample(items: Payloads['sample'][]): Promise<Settled<unknown>[]> {
    const now = this.now()
    const live = items.map((p, i) => ({ p, i })).filter(({ p }) => p.deadline >= now)
    const states = new Map<number, EditorState>()
    if (live.length) this.deps.editor.sample(live.map(({ p }) => p.seed)).forEach((s, k) => states.set(live[k]!.i, s))
    return Promise.all(
      items.map(async (p, i): Promise<Settled<unknown>> => {
        try {
          checkDeadline(p, now)
          const existing = await this.deps.store.getMeta(p.sessionId)
          if (existing) return { ok: true, value: { sessionId: p.sessionId, version: existing.version } } // a retried job
          return { ok: true, value: await this.create(p, states.get(i)!) }
        } catch (err) {
          return { ok: false, error: toAppError(err) }
        }
      }),
    )
  }

  /**
   * Edits: the first edit of each session in the batch is painted in one
   * batched call; later edits of the same session (and internal conflicts)
   * follow one by one, each on the record the previous one saved.
   */
  private async edit(items: Payloads['edit'][]): Promise<Settled<unknown>[]> {
    const { editor } = this.deps
    const results: Settled<unknown>[] = items.map(() => ({ ok: false, error: new AppError('internal', 'not processed') }))
    const seen = new Set<string>()
    const first: number[] = []
    const later: number[] = []
    items.forEach((p, i) => {
      if (seen.has(p.sessionId)) later.push(i)
      else {
        seen.add(p.sessionId)
        first.push(i)
      }
    })
    const loaded: { i: number; rec: SessionRecord }[] = []
    const now = this.now()
    await Promise.all(
      first.map(async (i) => {
        const p = items[i]!
        try {
          checkDeadline(p, now)
          const rec = await this.load(p)
          if (rec.applied.includes(p.requestId)) results[i] = { ok: true, value: { sessionId: rec.id, version: rec.version } }
          else loaded.push({ i, rec })
        } catch (err) {
          results[i] = { ok: false, error: err }
        }
      }),
    )
    let painted: EditorState[] | undefined
    try {
      painted = loaded.length ? editor.paint(loaded.map(({ i, rec }) => paintRequest(items[i]!, rec.state))) : []
    } catch {
      painted = undefined // a bad request in the batch: fall back to one by one below
    }
    await Promise.all(
      loaded.map(async ({ i, rec }, k) => {
        const p = items[i]!
        if (!painted) {
          later.push(i)
          return
        }
        try {
          results[i] = { ok: true, value: await this.save(rec, advance(rec, painted[k]!), p.requestId) }
        } catch (err) {
          if ((err as { code?: string }).code === 'version_conflict' && p.baseVersion === undefined) later.push(i)
          else results[i] = { ok: false, error: err }
        }
      }),
    )
    later.sort((a, b) => a - b)
    for (const i of later) {
      const p = items[i]!
      try {
        results[i] = { ok: true, value: await this.mutate(p, (rec) => advance(rec, editor.paint([paintRequest(p, rec.state)])[0]!)) }
      } catch (err) {
        results[i] = { ok: false, error: err }
      }
    }
    return results
  }

  private async interpolate(p: Payloads['interpolate']): Promise<Results['interpolate']> {
    checkDeadline(p, this.now())
    const { latents, images } = this.deps.editor.interpolate(Float32Array.from(p.from), Float32Array.from(p.to), p.steps)
    await this.deps.blobs.put(p.resultKey, packFrames(latents, images, this.deps.editor.resolution), RESULT_TTL_MS)
    return { resultKey: p.resultKey, frames: latents.length }
  }
}

function paintRequest(p: Payloads['edit'], state: EditorState) {
  return { state, stroke: p.stroke, color: p.color, mode: p.mode, strength: p.strength }
}

/** Undo or redo: the entry's latent (and base) come back, and its output is rendered again (or taken from the entry if it has one). */
function step(editor: Editor, rec: SessionRecord, kind: 'undo' | 'redo'): SessionRecord {
  const from = kind === 'undo' ? rec.undo : rec.redo
  const entry = from[from.length - 1]
  if (!entry) throw new AppError(kind === 'undo' ? 'nothing_to_undo' : 'nothing_to_redo', `there is nothing to ${kind} in session ${rec.id}`)
  const back: HistoryEntry = { z: rec.state.z }
  if (entry.base) back.base = baseOf(rec.state)
  let state: EditorState = entry.base ? withBase(rec.state, entry.base) : rec.state
  state = entry.output ? { ...state, z: entry.z, output: entry.output } : editor.render([state], [entry.z])[0]!
  const rest = from.slice(0, -1)
  return kind === 'undo' ? { ...rec, state, undo: rest, redo: [...rec.redo, back] } : { ...rec, state, redo: rest, undo: [...rec.undo, back] }
}

async function settleEach<T>(items: unknown[], fn: (item: T) => Promise<unknown>): Promise<Settled<unknown>[]> {
  const out: Settled<unknown>[] = []
  for (const item of items) {
    try {
      out.push({ ok: true, value: await fn(item as T) })
    } catch (err) {
      out.push({ ok: false, error: toAppError(err) })
    }
  }
  return out
}

/** [u32 n][u32 R][u32 L][n*L float32 latents][n*R*R*3 bytes]. */
export function packFrames(latents: Float32Array[], images: Uint8Array[], R: number): Uint8Array {
  const n = latents.length
  const L = latents[0]?.length ?? 0
  const out = new Uint8Array(12 + n * L * 4 + n * R * R * 3)
  const view = new DataView(out.buffer)
  view.setUint32(0, n, true)
  view.setUint32(4, R, true)
  view.setUint32(8, L, true)
  latents.forEach((z, i) => out.set(new Uint8Array(z.buffer, z.byteOffset, z.byteLength), 12 + i * L * 4))
  images.forEach((img, i) => out.set(img, 12 + n * L * 4 + i * R * R * 3))
  return out
}

export function unpackFrames(buf: Uint8Array): { latents: Float32Array[]; images: Uint8Array[]; resolution: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const n = view.getUint32(0, true)
  const R = view.getUint32(4, true)
  const L = view.getUint32(8, true)
  const latents = Array.from({ length: n }, (_, i) => new Float32Array(buf.slice(12 + i * L * 4, 12 + (i + 1) * L * 4).buffer))
  const images = Array.from({ length: n }, (_, i) => buf.slice(12 + n * L * 4 + i * R * R * 3, 12 + n * L * 4 + (i + 1) * R * R * 3))
  return { latents, images, resolution: R }
}

