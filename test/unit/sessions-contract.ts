/**
 * The SessionStore contract: one suite that every adapter must pass (run by
 * test/integration/sessions.test.ts on the memory and the redis store).
 * Not a *.test.ts file: tap does not run it on its own.
 */
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import {
  newSessionId,
  SessionError,
  type HistoryEntry,
  type SessionBase,
  type SessionRecord,
  type SessionStore,
  type SessionStoreOptions,
} from '../../src/sessions/index.js'

export interface StoreHarness {
  store: SessionStore
  /** Lets `ms` pass: the injected clock (memory) or a real wait (redis). */
  advance: (ms: number) => Promise<void>
  /** Closes the store and removes whatever it left behind. */
  cleanup: () => Promise<void>
}

export type MakeStore = (opts: SessionStoreOptions) => Promise<StoreHarness>

// ---------------------------------------------------------------------------------------------
// Records

/** Latent size and model resolution of the test records (small: the store does not care). */
const L = 8
const R = 4

function bytes(n: number): Uint8Array {
  return new Uint8Array(randomBytes(n))
}

/** Random floats, plus a -0 and a NaN: the round trip must keep bytes, not just values. */
function floats(n: number): Float32Array {
  const a = Float32Array.from({ length: n }, () => Math.random() * 4 - 2)
  a[0] = -0
  if (n > 1) a[n - 1] = Number.NaN
  return a
}

export function makeBase(width = 8, height = 6): SessionBase {
  const s = Math.min(width, height)
  return {
    mode: 'photo',
    width,
    height,
    crop: { x: width - s, y: 0, w: s, h: s },
    photo: bytes(width * height * 3),
    x: floats(R * R * 3),
    xHat: floats(R * R * 3),
    z0: floats(L),
  }
}

export function makeEntry(size: { width: number; height: number }, withBase = false): HistoryEntry {
  return { z: floats(L), output: bytes(size.width * size.height * 3), ...(withBase ? { base: makeBase(size.width, size.height) } : {}) }
}

/** A version-1 record with two undo entries (the second with its own base), one redo entry and two applied ids. */
export function makeRecord(id = newSessionId(), size = { width: 8, height: 6 }): SessionRecord {
  const base = makeBase(size.width, size.height)
  return {
    id,
    owner: 'key-1',
    version: 1,
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_123,
    state: { ...base, z: floats(L), output: bytes(base.photo.length) },
    undo: [makeEntry(size), makeEntry(size, true)],
    redo: [makeEntry(size)],
    applied: ['req-1', 'req-2'],
  }
}

/** What an edit does: the current (z, output) goes on the undo list, a new one replaces it, redo is cleared. */
export function editOf(r: SessionRecord, requestId = `req-${randomBytes(4).toString('hex')}`): SessionRecord {
  return {
    ...r,
    updatedAt: r.updatedAt + 1,
    state: { ...r.state, z: floats(L), output: bytes(r.state.output.length) },
    undo: [...r.undo, { z: r.state.z, output: r.state.output }],
    redo: [],
    applied: [...r.applied, requestId],
  }
}

// ---------------------------------------------------------------------------------------------
// Comparison: a list of differences, empty when byte-identical

type Typed = Uint8Array | Float32Array

function sameBytes(a: unknown, b: Typed): boolean {
  if (!(a instanceof Uint8Array || a instanceof Float32Array) || a.constructor !== b.constructor || a.byteLength !== b.byteLength) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))
}

function baseDiff(got: SessionBase, want: SessionBase, at: string): string[] {
  const out: string[] = []
  for (const k of ['mode', 'width', 'height'] as const) if (got[k] !== want[k]) out.push(`${at}.${k}: ${got[k]} != ${want[k]}`)
  if (JSON.stringify(got.crop) !== JSON.stringify(want.crop)) out.push(`${at}.crop: ${JSON.stringify(got.crop)} != ${JSON.stringify(want.crop)}`)
  for (const k of ['photo', 'x', 'xHat', 'z0'] as const) if (!sameBytes(got[k], want[k])) out.push(`${at}.${k} differs`)
  return out
}

function entryDiff(got: HistoryEntry, want: HistoryEntry, at: string): string[] {
  const out: string[] = []
  if (!sameBytes(got.z, want.z)) out.push(`${at}.z differs`)
  if (!got.output !== !want.output) out.push(`${at}.output: ${got.output ? 'present' : 'absent'}, expected ${want.output ? 'present' : 'absent'}`)
  else if (got.output && want.output && !sameBytes(got.output, want.output)) out.push(`${at}.output differs`)
  if (!got.base !== !want.base) out.push(`${at}.base: ${got.base ? 'present' : 'absent'}, expected ${want.base ? 'present' : 'absent'}`)
  else if (got.base && want.base) out.push(...baseDiff(got.base, want.base, `${at}.base`))
  return out
}

export function recordDiff(got: SessionRecord | undefined, want: SessionRecord): string[] {
  if (!got) return ['record missing']
  const out: string[] = []
  for (const k of ['id', 'owner', 'version', 'createdAt', 'updatedAt'] as const) if (got[k] !== want[k]) out.push(`${k}: ${got[k]} != ${want[k]}`)
  out.push(...baseDiff(got.state, want.state, 'state'))
  if (!sameBytes(got.state.z, want.state.z)) out.push('state.z differs')
  if (!sameBytes(got.state.output, want.state.output)) out.push('state.output differs')
  for (const list of ['undo', 'redo'] as const) {
    if (got[list].length !== want[list].length) out.push(`${list}: ${got[list].length} entries, expected ${want[list].length}`)
    else got[list].forEach((e, i) => out.push(...entryDiff(e, want[list][i]!, `${list}[${i}]`)))
  }
  if (JSON.stringify(got.applied) !== JSON.stringify(want.applied)) out.push(`applied: ${JSON.stringify(got.applied)} != ${JSON.stringify(want.applied)}`)
  return out
}

function copyBase(b: SessionBase): SessionBase {
  return { ...b, crop: { ...b.crop }, photo: b.photo.slice(), x: b.x.slice(), xHat: b.xHat.slice(), z0: b.z0.slice() }
}

function deepCopy(r: SessionRecord): SessionRecord {
  const entry = (e: HistoryEntry): HistoryEntry => ({ z: e.z.slice(), ...(e.output ? { output: e.output.slice() } : {}), ...(e.base ? { base: copyBase(e.base) } : {}) })
  return {
    ...r,
    state: { ...r.state, ...copyBase(r.state), z: r.state.z.slice(), output: r.state.output.slice() },
    undo: r.undo.map(entry),
    redo: r.redo.map(entry),
    applied: [...r.applied],
  }
}

function withVersion(r: SessionRecord, version: number): SessionRecord {
  return { ...r, version }
}

/** A t.rejects pattern: a SessionError with this code. */
function isCode(code: string): { name: string; code: string } {
  return { name: 'SessionError', code }
}

function hasCode(err: unknown, code: string): boolean {
  return err instanceof SessionError && err.code === code
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves when `p` does, fails after `ms` (so a broken lock shows as a failure, not a hang). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

// ---------------------------------------------------------------------------------------------
// The suite

const DEFAULTS: SessionStoreOptions = { ttlSeconds: 60, historyLimit: 8 }

export function sessionStoreContract(t: Test, name: string, makeStore: MakeStore): void {
  const open = async (t: Test, opts: Partial<SessionStoreOptions> = {}): Promise<StoreHarness> => {
    const h = await makeStore({ ...DEFAULTS, ...opts })
    t.teardown(() => h.cleanup())
    return h
  }

  t.test(`${name}: history entries without an output stay without one`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    rec.undo = rec.undo.map(({ output: _output, ...e }) => e)
    rec.redo = [{ z: rec.state.z.slice() }]
    await store.create(rec)
    const got = (await store.get(rec.id))!
    t.same(recordDiff(got, rec), [])
    t.ok(got.undo.every((e) => e.output === undefined), 'no output on undo entries')
    t.equal(got.redo[0]!.output, undefined)
    t.ok(got.undo.some((e) => e.base !== undefined), 'a base is still kept')
    await store.save({ ...got, undo: [...got.undo, { z: got.state.z }], redo: [] }, 1)
    t.equal((await store.getMeta(rec.id))!.undoDepth, rec.undo.length + 1)
  })

  t.test(`${name}: create and get round-trip every field byte for byte`, async (t) => {
    const { store } = await open(t)
    t.equal(typeof store.kind, 'string')
    await store.ping()
    const rec = makeRecord()
    await store.create(rec)
    t.same(recordDiff(await store.get(rec.id), rec), [], 'get returns what create stored')
    t.same(recordDiff(await store.get(rec.id), rec), [], 'and again (reads change nothing)')

    const meta = await store.getMeta(rec.id)
    t.ok(meta)
    t.same(Object.keys(meta!).sort(), ['createdAt', 'crop', 'height', 'id', 'mode', 'owner', 'redoDepth', 'undoDepth', 'updatedAt', 'version', 'width', 'z', 'z0'])
    t.match(meta, { id: rec.id, owner: 'key-1', version: 1, createdAt: rec.createdAt, updatedAt: rec.updatedAt, mode: 'photo', width: 8, height: 6, undoDepth: 2, redoDepth: 1 })
    t.same(meta!.crop, rec.state.crop)
    t.ok(sameBytes(meta!.z, rec.state.z), 'meta z')
    t.ok(sameBytes(meta!.z0, rec.state.z0), 'meta z0')

    const out = await store.getOutput(rec.id)
    t.ok(out)
    t.match(out, { width: 8, height: 6, version: 1 })
    t.ok(sameBytes(out!.rgb, rec.state.output), 'output bytes')

    const other = newSessionId()
    t.equal(await store.get(other), undefined, 'unknown id: get')
    t.equal(await store.getMeta(other), undefined, 'unknown id: getMeta')
    t.equal(await store.getOutput(other), undefined, 'unknown id: getOutput')
  })

  t.test(`${name}: a sample session and empty history round-trip too`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    rec.state = { ...rec.state, mode: 'sample', width: R, height: R, crop: { x: 0, y: 0, w: R, h: R }, photo: bytes(R * R * 3) }
    rec.state.output = rec.state.photo.slice() // the same bytes twice
    rec.undo = []
    rec.redo = []
    rec.applied = []
    await store.create(rec)
    t.same(recordDiff(await store.get(rec.id), rec), [])
    t.match(await store.getMeta(rec.id), { mode: 'sample', undoDepth: 0, redoDepth: 0 })
  })

  t.test(`${name}: save bumps the version by exactly one`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    await store.create(rec)
    const v1 = (await store.get(rec.id))!
    const v2 = editOf(v1)
    await store.save(v2, 1)
    t.equal(v2.version, 2, 'the saved record carries the new version')
    t.same(recordDiff(await store.get(rec.id), v2), [])
    t.match(await store.getMeta(rec.id), { version: 2, undoDepth: 3, redoDepth: 0 })
    t.match(await store.getOutput(rec.id), { version: 2 })
    t.ok(sameBytes((await store.getOutput(rec.id))!.rgb, v2.state.output))

    const v3 = editOf((await store.get(rec.id))!)
    await store.save(v3, 2)
    t.equal(v3.version, 3)
    t.same(recordDiff(await store.get(rec.id), v3), [])
  })

  t.test(`${name}: a stale expectedVersion is a version_conflict and changes nothing`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    await store.create(rec)
    const v2 = editOf((await store.get(rec.id))!)
    await store.save(v2, 1)
    const stale = editOf(rec)
    await t.rejects(store.save(stale, 1), isCode('version_conflict'), 'behind')
    await t.rejects(store.save(editOf(rec), 7), isCode('version_conflict'), 'ahead')
    t.same(recordDiff(await store.get(rec.id), v2), [], 'the stored record is still version 2, all of it')
    await t.rejects(store.save(editOf(rec), 0), 'expectedVersion 0 is not a version')
  })

  t.test(`${name}: five concurrent saves on one version: exactly one wins`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    await store.create(rec)
    const loaded = (await store.get(rec.id))!
    const candidates = Array.from({ length: 5 }, (_, i) => editOf(loaded, `req-c${i}`))
    const results = await Promise.allSettled(candidates.map((c) => store.save(c, 1)))
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []))
    t.equal(won.length, 1, 'one success')
    const conflicts = results.filter((r) => r.status === 'rejected' && hasCode(r.reason, 'version_conflict'))
    t.equal(conflicts.length, 4, 'four version_conflicts')
    t.same(recordDiff(await store.get(rec.id), withVersion(candidates[won[0]!]!, 2)), [], 'the winner is stored')
  })

  t.test(`${name}: missing, deleted and duplicate sessions`, async (t) => {
    const { store } = await open(t)
    await t.rejects(store.save(makeRecord(), 1), isCode('session_not_found'), 'save of a session never created')
    const rec = makeRecord()
    await store.create(rec)
    const dup = makeRecord(rec.id)
    await t.rejects(store.create(dup), isCode('session_exists'))
    t.same(recordDiff(await store.get(rec.id), rec), [], 'the first one is kept')
    t.equal(await store.delete(rec.id), true)
    t.equal(await store.delete(rec.id), false, 'gone already')
    t.equal(await store.get(rec.id), undefined)
    t.equal(await store.getMeta(rec.id), undefined)
    t.equal(await store.getOutput(rec.id), undefined)
    await t.rejects(store.save(editOf(rec), 1), isCode('session_not_found'), 'save after delete')
    await store.create(dup)
    t.same(recordDiff(await store.get(rec.id), dup), [], 'the id can be used again')
  })

  t.test(`${name}: malformed ids and records are refused`, async (t) => {
    const { store } = await open(t)
    for (const id of ['', 'abc', newSessionId().toUpperCase(), `${newSessionId()}0`, newSessionId().slice(1), '../../etc/passwd0123456789abcdef0', `${newSessionId().slice(0, 31)}g`]) {
      await t.rejects(store.create(makeRecord(id)), TypeError, `create ${JSON.stringify(id)}`)
      await t.rejects(store.save(makeRecord(id), 1), TypeError, `save ${JSON.stringify(id)}`)
      t.equal(await store.get(id), undefined, `get ${JSON.stringify(id)}`)
      t.equal(await store.delete(id), false, `delete ${JSON.stringify(id)}`)
    }
    await t.rejects(store.withLock('nope', async () => 1), TypeError)
    await t.rejects(store.create({ ...makeRecord(), version: 2 }), TypeError, 'a new record has version 1')
    const bad = makeRecord()
    bad.state = { ...bad.state, output: bytes(5) }
    await t.rejects(store.create(bad), TypeError, 'output of the wrong size')
    t.equal(await store.count(), 0, 'nothing was stored')
  })

  t.test(`${name}: history and applied ids are cut to their limits, keeping the newest`, async (t) => {
    const { store } = await open(t, { historyLimit: 3, appliedLimit: 4 })
    const size = { width: 8, height: 6 }
    const rec = makeRecord()
    rec.undo = Array.from({ length: 5 }, (_, i) => makeEntry(size, i === 3))
    rec.redo = Array.from({ length: 4 }, () => makeEntry(size))
    rec.applied = ['a', 'b', 'c', 'd', 'e', 'f']
    await store.create(rec)
    const want = { ...rec, undo: rec.undo.slice(2), redo: rec.redo.slice(1), applied: ['c', 'd', 'e', 'f'] }
    t.same(recordDiff(await store.get(rec.id), want), [], 'on create')
    t.equal(rec.undo.length, 5, "the caller's record is left alone")
    t.match(await store.getMeta(rec.id), { undoDepth: 3, redoDepth: 3 })

    let cur = (await store.get(rec.id))!
    const edits: SessionRecord[] = []
    for (let i = 0; i < 4; i++) {
      const next = editOf(cur, `e${i}`)
      await store.save(next, cur.version)
      edits.push(next)
      cur = (await store.get(rec.id))!
    }
    const last = edits[3]!
    t.same(recordDiff(cur, { ...last, undo: last.undo.slice(-3), applied: ['e0', 'e1', 'e2', 'e3'] }), [], 'on save')
    t.same(
      cur.undo.map((e) => Buffer.from(e.output!).toString('hex')),
      edits.slice(0, 3).map((e) => Buffer.from(e.state.output).toString('hex')),
      'the undo list holds the outputs of the three edits before the current one',
    )

    const none = await open(t, { historyLimit: 0, appliedLimit: 0 })
    const r0 = makeRecord()
    await none.store.create(r0)
    t.same(recordDiff(await none.store.get(r0.id), { ...r0, undo: [], redo: [], applied: [] }), [], 'limits of 0 keep nothing')
  })

  t.test(`${name}: a session expires after its TTL; reads refresh it`, async (t) => {
    const { store, advance } = await open(t, { ttlSeconds: 1 })
    const rec = makeRecord()
    const other = makeRecord()
    await store.create(rec)
    await store.create(other)
    t.equal(await store.count(), 2)
    // each check leaves about 0.5 s of slack for a slow machine
    await advance(500)
    t.ok(await store.get(rec.id), 'alive after 0.5 s (and get refreshes it)')
    await advance(550)
    t.equal(await store.get(other.id), undefined, 'the untouched one expired after 1.05 s')
    t.ok(await store.getMeta(rec.id), 'the refreshed one lives on (getMeta refreshes it too)')
    await advance(500)
    t.ok(await store.getOutput(rec.id), 'alive 1.55 s after creation')
    t.equal(await store.count(), 1, 'count drops expired sessions')
    await advance(1200)
    t.equal(await store.get(rec.id), undefined, 'expired 1.2 s after its last use')
    t.equal(await store.getMeta(rec.id), undefined)
    t.equal(await store.count(), 0)
    await t.rejects(store.save(editOf(rec), 1), isCode('session_not_found'), 'an expired session cannot be saved')
    await store.create(rec)
    t.ok(await store.get(rec.id), 'its id can be created again')
  })

  t.test(`${name}: save refreshes the TTL`, async (t) => {
    const { store, advance } = await open(t, { ttlSeconds: 1 })
    const rec = makeRecord()
    await store.create(rec)
    await advance(550)
    await store.save(editOf(rec), 1)
    await advance(550)
    t.match(await store.getMeta(rec.id), { version: 2 }, 'alive 1.1 s after creation, 0.55 s after the save')
  })

  t.test(`${name}: count counts live sessions`, async (t) => {
    const { store } = await open(t)
    t.equal(await store.count(), 0)
    const recs = [makeRecord(), makeRecord(), makeRecord()]
    for (const r of recs) await store.create(r)
    t.equal(await store.count(), 3)
    await store.save(editOf(recs[0]!), 1)
    t.equal(await store.count(), 3, 'a save does not count twice')
    await store.delete(recs[1]!.id)
    t.equal(await store.count(), 2, 'delete drops it')
  })

  t.test(`${name}: records are copies in both directions`, async (t) => {
    const { store } = await open(t)
    const rec = makeRecord()
    const want = deepCopy(rec)
    await store.create(rec)
    rec.state.photo[0] = rec.state.photo[0]! ^ 0xff
    rec.state.z[1] = 123
    rec.state.crop.x = 0
    rec.undo[0]!.output![0] = rec.undo[0]!.output![0]! ^ 0xff
    rec.undo[1]!.base!.x[1] = 42
    rec.undo.pop()
    rec.applied.push('mutated')
    t.same(recordDiff(await store.get(rec.id), want), [], 'changing the created record changes nothing stored')

    const got = (await store.get(rec.id))!
    got.state.output[0] = got.state.output[0]! ^ 0xff
    got.state.x[2] = 7
    got.state.z0[1] = 9
    got.state.crop.w = 1
    got.undo[1]!.base!.photo[0] = got.undo[1]!.base!.photo[0]! ^ 0xff
    got.redo[0]!.z[1] = 5
    got.redo.length = 0
    got.applied.length = 0
    t.same(recordDiff(await store.get(rec.id), want), [], 'changing a returned record changes nothing stored')

    const meta = (await store.getMeta(rec.id))!
    meta.z[1] = 77
    meta.crop.x = 3
    const out = (await store.getOutput(rec.id))!
    out.rgb[0] = out.rgb[0]! ^ 0xff
    t.same(recordDiff(await store.get(rec.id), want), [], 'nor does changing a returned meta or output')
    t.ok(sameBytes((await store.getMeta(rec.id))!.z, want.state.z))
  })

  t.test(`${name}: withLock runs two holders of one id one after the other`, async (t) => {
    const { store } = await open(t)
    const id = newSessionId()
    const log: string[] = []
    const holder = (name: string) => async () => {
      log.push(`${name} in`)
      await sleep(40)
      log.push(`${name} out`)
      return name
    }
    const results = await within(Promise.all([store.withLock(id, holder('a')), store.withLock(id, holder('b'))]), 5_000, 'two holders')
    t.same(results, ['a', 'b'], 'each gets its own result')
    t.same(log, ['a in', 'a out', 'b in', 'b out'], 'no overlap, the first caller first')
  })

  t.test(`${name}: withLock on different ids runs concurrently`, async (t) => {
    const { store } = await open(t)
    let enterA!: () => void
    let enterB!: () => void
    const aIn = new Promise<void>((r) => (enterA = r))
    const bIn = new Promise<void>((r) => (enterB = r))
    // each holder waits until the other is inside: only possible when they overlap
    const a = store.withLock(newSessionId(), async () => {
      enterA()
      await bIn
      return 'a'
    })
    const b = store.withLock(newSessionId(), async () => {
      enterB()
      await aIn
      return 'b'
    })
    t.same(await within(Promise.all([a, b]), 2_000, 'both holders inside at once'), ['a', 'b'])
  })

  t.test(`${name}: a waiter gives up with session_busy after waitMs`, async (t) => {
    const { store } = await open(t)
    const id = newSessionId()
    let letGo!: () => void
    const held = new Promise<void>((r) => (letGo = r))
    let inside!: () => void
    const entered = new Promise<void>((r) => (inside = r))
    const holder = store.withLock(id, async () => {
      inside()
      await held
    })
    await entered
    const started = Date.now()
    await t.rejects(store.withLock(id, async () => 'never', { waitMs: 80 }), isCode('session_busy'))
    const waited = Date.now() - started
    t.ok(waited >= 70 && waited < 2_000, `waited about 80 ms (${waited} ms)`)
    await t.rejects(store.withLock(id, async () => 'never', { waitMs: 0 }), isCode('session_busy'), 'waitMs 0: one try')
    letGo()
    await holder
    t.equal(await store.withLock(id, async () => 'free', { waitMs: 0 }), 'free', 'free again once released')
  })

  t.test(`${name}: fn's errors propagate and release the lock`, async (t) => {
    const { store } = await open(t)
    const id = newSessionId()
    const boom = new Error('boom')
    await t.rejects(
      store.withLock(id, async () => {
        throw boom
      }),
      boom,
    )
    t.equal(await store.withLock(id, async () => 'next', { waitMs: 0 }), 'next')
  })

  t.test(`${name}: a holder past ttlMs loses the lock, and its release leaves the new holder's lock alone`, async (t) => {
    const { store } = await open(t)
    const id = newSessionId()
    const log: string[] = []
    let finishA!: () => void
    const aMayFinish = new Promise<void>((r) => (finishA = r))
    let aInside!: () => void
    const aEntered = new Promise<void>((r) => (aInside = r))
    const a = store.withLock(
      id,
      async () => {
        log.push('a in')
        aInside()
        await aMayFinish
        log.push('a out')
      },
      { ttlMs: 100 },
    )
    await aEntered
    const b = store.withLock(
      id,
      async () => {
        log.push('b in') // a is still running: its lock lapsed
        finishA()
        await a // a has released (or tried to)
        const third = await store.withLock(id, async () => 'c in', { waitMs: 50 }).catch((err: unknown) => (err instanceof SessionError ? err.code : String(err)))
        log.push(third)
      },
      { ttlMs: 10_000, waitMs: 3_000 },
    )
    await within(b, 5_000, 'the second holder')
    t.same(log, ['a in', 'b in', 'a out', 'session_busy'], "b got the lock while a ran; a's release did not free b's lock")
    t.equal(await store.withLock(id, async () => 'd', { waitMs: 0 }), 'd', 'free after b')
  })
}
