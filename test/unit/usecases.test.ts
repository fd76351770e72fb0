/** The use cases behind the jobs and the micro-batcher, on the memory store and a tiny model. */
import t from 'tap'
import { presetConfig } from '../../src/model/config.js'
import { createIAN } from '../../src/model/networks.js'
import { Editor } from '../../src/editor/editor.js'
import { createMemorySessionStore } from '../../src/sessions/memory.js'
import { createMemoryBlobStore, packImage } from '../../src/jobs/blobs.js'
import { Batcher } from '../../src/jobs/batcher.js'
import { UseCases } from '../../src/usecases/jobs.js'
import type { Payloads } from '../../src/jobs/types.js'
import { useBackend } from '../helpers/tf.js'

await useBackend('wasm')
const editor = new Editor(createIAN(presetConfig('tiny-16', { initStd: 0.15 }), 1))
const store = createMemorySessionStore({ ttlSeconds: 60, historyLimit: 5 })
const blobs = createMemoryBlobStore()
const uc = new UseCases({ store, editor, blobs })
t.teardown(() => store.close())

const far = () => Date.now() + 60_000
let n = 0
const meta = () => ({ requestId: `r${n++}`, deadline: far() })
const id = (k: number) => k.toString(16).padStart(32, '0')

async function newSession(k: number): Promise<string> {
  const rgb = new Uint8Array(24 * 24 * 3).map((_, i) => (i * 13) % 256)
  await blobs.put(`u${k}`, packImage(rgb, 24, 24), 60_000)
  const [r] = await uc.handle('encode', [{ ...meta(), sessionId: id(k), owner: '', uploadKey: `u${k}` } satisfies Payloads['encode']])
  if (!r!.ok) throw r!.error
  return id(k)
}

const edit = (sessionId: string, x: number, extra: Partial<Payloads['edit']> = {}): Payloads['edit'] => ({
  ...meta(),
  sessionId,
  stroke: { points: [{ x, y: 10 }], radius: 3 },
  color: [255, 0, 0],
  mode: 'color',
  strength: 1,
  ...extra,
})

t.test('a batch of edits: same-session edits in order, others independent, errors per item', async (t) => {
  const a = await newSession(1)
  const b = await newSession(2)
  const results = await uc.handle('edit', [edit(a, 5), edit(b, 5), edit(a, 15), edit(id(99), 5), edit(b, 8, { deadline: Date.now() - 1 })])
  t.same(results.map((r) => r.ok), [true, true, true, false, false])
  t.same(results.slice(0, 3).map((r) => (r as { value: { version: number } }).value.version), [2, 2, 3], 'a: 2 then 3; b: 2')
  t.equal((results[3] as { error: { code: string } }).error.code, 'session_not_found')
  t.equal((results[4] as { error: { code: string } }).error.code, 'deadline_exceeded')
  const recA = (await store.get(a))!
  t.equal(recA.version, 3)
  t.equal(recA.undo.length, 2)
  t.equal((await store.get(b))!.version, 2, 'the late edit was dropped')
})

t.test('a retried job is not applied twice; a stale baseVersion is a conflict', async (t) => {
  const a = await newSession(3)
  const job = edit(a, 7)
  const [first] = await uc.handle('edit', [job])
  const [again] = await uc.handle('edit', [job])
  t.same((first as { value: unknown }).value, { sessionId: a, version: 2 })
  t.same((again as { value: unknown }).value, { sessionId: a, version: 2 }, 'same answer, no new version')
  t.equal((await store.get(a))!.undo.length, 1)
  const [stale] = await uc.handle('edit', [edit(a, 9, { baseVersion: 1 })])
  t.equal((stale as { error: { code: string } }).error.code, 'version_conflict')
  t.equal((await store.get(a))!.version, 2, 'nothing changed')
})

t.test('undo / redo across a commit restores the old photo', async (t) => {
  const a = await newSession(4)
  await uc.handle('edit', [edit(a, 12)])
  const edited = (await store.get(a))!
  await uc.handle('commit', [{ ...meta(), sessionId: a }])
  const committed = (await store.get(a))!
  t.same(committed.state.photo, edited.state.output, 'commit: the output became the photo')
  await uc.handle('undo', [{ ...meta(), sessionId: a }])
  const undone = (await store.get(a))!
  t.same(undone.state.photo, edited.state.photo, 'undo of commit: the old photo is back')
  t.same(undone.state.z, edited.state.z)
  await uc.handle('redo', [{ ...meta(), sessionId: a }])
  t.same((await store.get(a))!.state.photo, committed.state.photo, 'redo: the committed photo again')
  const [none] = await uc.handle('redo', [{ ...meta(), sessionId: a }])
  t.equal((none as { error: { code: string } }).error.code, 'nothing_to_redo')
})

t.test('batcher: items within the wait are one batch; maxBatch splits; kinds are separate', async (t) => {
  const calls: [string, number][] = []
  const b = new Batcher(
    async (kind, items) => {
      calls.push([kind, items.length])
      return items.map((i) => ({ ok: true as const, value: `${kind}:${String(i)}` }))
    },
    { maxBatch: 3, waitMs: 20 },
  )
  const out = await Promise.all([b.submit('a', 1), b.submit('a', 2), b.submit('b', 3), b.submit('a', 4), b.submit('a', 5)])
  t.same(out, ['a:1', 'a:2', 'b:3', 'a:4', 'a:5'])
  t.same(calls, [['a', 3], ['b', 1], ['a', 1]])
  const failing = new Batcher(async (_k, items) => items.map((i) => (i === 2 ? { ok: false as const, error: new Error('bad') } : { ok: true as const, value: i })), { maxBatch: 8, waitMs: 0 })
  const settled = await Promise.allSettled([failing.submit('x', 1), failing.submit('x', 2)])
  t.same(settled.map((s) => s.status), ['fulfilled', 'rejected'], 'one failure does not fail the batch')
  b.close()
  await t.rejects(b.submit('a', 9), /closed/)
})
