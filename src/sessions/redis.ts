/**
 * The Redis SessionStore (queue mode): one hash per session, so a single
 * PEXPIRE covers all of it.
 *
 *   ${prefix}:s:${id}      hash
 *     meta                 JSON (StoredMeta): ids, times, mode, size, crop, z and z0 (base64 of
 *                          the Float32Array bytes), applied ids, and for the photo, x, xHat, the
 *                          output and every history entry the names of the blob fields holding them
 *     v                    the version (the optimistic check compares it)
 *     w                    a random write token, new on every write
 *     b:<hash>             raw bytes (typed array contents, native byte order), named by the first
 *                          128 bits of their SHA-256: content-addressed, so a blob is written once
 *                          and shared by every reference (the old output that an edit pushes to
 *                          undo, an undo entry that moves to redo, an output equal to the photo
 *                          after a reset); fields that no reference needs any more are HDEL'd by
 *                          the write that drops the last reference
 *   ${prefix}:sessions     sorted set: id -> expiry time (ms), for count()
 *   ${prefix}:lock:${id}   withLock's lock: a random token, SET NX PX
 *
 * A write is one MULTI: HSET of the new blob fields, then the COMMIT script
 * with the small fields (big values never go through Lua, which costs about
 * five times a plain HSET). save first reads `meta` and `w` to work out which
 * blob fields the new record adds and drops, and sends only those; COMMIT
 * checks `v` against expectedVersion and `w` against the token read (so
 * nothing changed since), then HDELs the dropped fields, sets meta/v/w,
 * PEXPIREs and updates the index; if a check fails it removes the fields the
 * HSET added that the stored meta does not use, so a failed write leaves
 * nothing behind. Reads are one MULTI too: the TOUCH script (PEXPIRE + ZADD)
 * and then only the fields asked for (getMeta: `meta` alone).
 *
 * Typed arrays are treated as values. The store remembers, by identity, which
 * blob field each array returned by get() came from, and does not hash or
 * re-send it when it comes back in a save; mutating such an array in place and
 * saving it is therefore not supported (copy it first; every Editor op returns
 * new arrays). Arrays the caller made are hashed on every save.
 *
 * TTLs run on the Redis server's clock (SessionStoreOptions.now is not used).
 * close() leaves the connection open: the caller owns `redis`.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ChainableCommander, Redis } from 'ioredis'
import type { Box, EditorMode } from '../editor/editor.js'
import { boundRecord, checkRecord, checkSessionId, isSessionId, resolveLockOptions, resolveOptions, sleep } from './records.js'
import {
  SessionError,
  type HistoryEntry,
  type SessionBase,
  type SessionMeta,
  type SessionRecord,
  type SessionStore,
  type SessionStoreOptions,
} from './types.js'

/** Bumped when StoredMeta changes shape. */
const FORMAT = 1

interface StoredBase {
  mode: EditorMode
  width: number
  height: number
  crop: Box
  /** Blob field names. */
  photo: string
  x: string
  xHat: string
  z0: string
}

interface StoredEntry {
  /** Blob field names. */
  z: string
  output?: string
  base?: StoredBase
}

interface StoredMeta {
  fmt: number
  id: string
  owner: string
  version: number
  createdAt: number
  updatedAt: number
  mode: EditorMode
  width: number
  height: number
  crop: Box
  /** base64 of the Float32Array bytes. */
  z: string
  z0: string
  /** Blob field names. */
  photo: string
  x: string
  xHat: string
  output: string
  undo: StoredEntry[]
  redo: StoredEntry[]
  applied: string[]
}

type Blob = Uint8Array | Float32Array

interface Script {
  lua: string
  sha: string
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') }
}

// Redis time in ms: TIME gives [seconds, microseconds].
const NOW_MS = `local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)`

/**
 * KEYS: hash, index. ARGV: ttlMs, id -> 1, or 0 if the session is gone.
 * Refreshes the TTL and the index entry; run in a MULTI before the reads.
 */
const TOUCH = `
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end
${NOW_MS}
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
return 1
`

/**
 * Runs in a MULTI right after the HSET of the new blob fields (big values never
 * pass through Lua: that costs about 5x a plain HSET).
 * KEYS: hash, index. ARGV: ttlMs, id, 'create' | 'save', expectedVersion, token
 * read with meta, nAdd, added fields..., nDel, dropped fields..., field, value, ...
 * -> 1 written; 0 the id is taken (create); -1 not found, -2 version conflict,
 * -3 written since meta was read (save); -4 a blob field is missing. On any
 * failure the added fields that the stored meta does not refer to are removed
 * again (an emptied hash disappears), so a failed write leaves nothing behind.
 */
const COMMIT = `
local nAdd = tonumber(ARGV[6])
local iDel = 7 + nAdd
local nDel = tonumber(ARGV[iDel])
local cur = redis.call('HMGET', KEYS[1], 'meta', 'v', 'w')
local result
if ARGV[3] == 'create' then
  if cur[1] then result = 0 end
elseif not cur[1] then result = -1
elseif cur[2] ~= ARGV[4] then result = -2
elseif cur[3] ~= ARGV[5] then result = -3 end
if not result then
  for i = 7, 6 + nAdd do
    if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then result = -4 break end
  end
end
if result then
  local keep = {}
  if cur[1] then
    local m = cjson.decode(cur[1])
    local function base(b) keep[b.photo] = true keep[b.x] = true keep[b.xHat] = true if b.z0 then keep[b.z0] = true end end
    base(m)
    keep[m.output] = true
    for _, list in ipairs({ m.undo, m.redo }) do
      for _, e in ipairs(list) do
        keep[e.z] = true
        if e.output then keep[e.output] = true end
        if type(e.base) == 'table' then base(e.base) end
      end
    end
  end
  for i = 7, 6 + nAdd do
    if not keep[ARGV[i]] then redis.call('HDEL', KEYS[1], ARGV[i]) end
  end
  return result
end
if nDel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, iDel + 1, iDel + nDel)) end
redis.call('HSET', KEYS[1], unpack(ARGV, iDel + nDel + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
${NOW_MS}
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
return 1
`

/** KEYS: zset. Drops expired ids, returns how many are left. */
const COUNT = script(`
${NOW_MS}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`)

/** KEYS: lock. ARGV: token. Deletes the lock only if it is still ours. */
const UNLOCK = script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

const SAVE_ATTEMPTS = 5
const PING_TIMEOUT_MS = 2_000

function bytesOf(a: Blob): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength)
}

function base64Of(a: Float32Array): string {
  return bytesOf(a).toString('base64')
}

/** A Float32Array copy of `bytes` (which need not be 4-byte aligned). */
function floatsOf(bytes: Uint8Array, what: string): Float32Array {
  if (bytes.length % 4 !== 0) throw new Error(`stored ${what} has ${bytes.length} bytes, not a whole number of float32s`)
  const out = new Float32Array(bytes.length / 4)
  new Uint8Array(out.buffer).set(bytes)
  return out
}

function parseMeta(raw: string | Buffer, id: string): StoredMeta {
  const meta = JSON.parse(raw.toString()) as StoredMeta
  if (meta.fmt !== FORMAT) throw new Error(`session ${id} is stored in format ${meta.fmt}; this store reads format ${FORMAT}`)
  return meta
}

function fieldsOf(meta: StoredMeta): Set<string> {
  const fields = new Set([meta.photo, meta.x, meta.xHat, meta.output])
  for (const e of [...meta.undo, ...meta.redo]) {
    fields.add(e.z)
    if (e.output) fields.add(e.output)
    if (e.base) fields.add(e.base.photo).add(e.base.x).add(e.base.xHat).add(e.base.z0)
  }
  return fields
}

function metaView(m: StoredMeta): SessionMeta {
  return {
    id: m.id,
    owner: m.owner,
    version: m.version,
    createdAt: m.createdAt,
    updatedAt: m.updatedAt,
    mode: m.mode,
    width: m.width,
    height: m.height,
    crop: { ...m.crop },
    z: floatsOf(Buffer.from(m.z, 'base64'), 'z'),
    z0: floatsOf(Buffer.from(m.z0, 'base64'), 'z0'),
    undoDepth: m.undo.length,
    redoDepth: m.redo.length,
  }
}

export interface RedisSessionStoreOptions extends SessionStoreOptions {
  /** Key prefix: keys are `${prefix}:s:${id}`, `${prefix}:sessions` and `${prefix}:lock:${id}`. */
  prefix: string
}

export function createRedisSessionStore(redis: Redis, opts: RedisSessionStoreOptions): SessionStore {
  const o = resolveOptions(opts)
  if (typeof opts.prefix !== 'string' || opts.prefix === '') throw new TypeError('a redis session store needs a non-empty key prefix')
  const sessionKey = (id: string) => `${opts.prefix}:s:${id}`
  const lockKey = (id: string) => `${opts.prefix}:lock:${id}`
  const indexKey = `${opts.prefix}:sessions`
  const ttl = String(o.ttlMs)
  /** Blob field of each typed array this store handed out (see the file comment). */
  const known = new WeakMap<Blob, string>()

  /** EVALSHA, loading the script when Redis does not have it (first use, SCRIPT FLUSH, a restart). */
  async function run(s: Script, keys: string[], args: string[]): Promise<unknown> {
    const call = () => redis.call('evalsha', [s.sha, keys.length, ...keys, ...args])
    try {
      return await call()
    } catch (err) {
      if (!(err instanceof Error) || !err.message.includes('NOSCRIPT')) throw err
      await redis.script('LOAD', s.lua)
      return await call()
    }
  }

  /** The stored form of a (bounded) record: its meta and every blob it references, by field name. */
  function encode(r: SessionRecord): { meta: StoredMeta; blobs: Map<string, Blob> } {
    const blobs = new Map<string, Blob>()
    const hashed = new Map<Blob, string>()
    const ref = (a: Blob): string => {
      let field = known.get(a) ?? hashed.get(a)
      if (field === undefined) {
        field = `b:${createHash('sha256').update(bytesOf(a)).digest('hex').slice(0, 32)}`
        hashed.set(a, field)
      }
      if (!blobs.has(field)) blobs.set(field, a)
      return field
    }
    const base = (b: SessionBase): StoredBase => ({
      mode: b.mode,
      width: b.width,
      height: b.height,
      crop: { x: b.crop.x, y: b.crop.y, w: b.crop.w, h: b.crop.h },
      photo: ref(b.photo),
      x: ref(b.x),
      xHat: ref(b.xHat),
      z0: ref(b.z0),
    })
    const entry = (e: HistoryEntry): StoredEntry => ({ z: ref(e.z), ...(e.output ? { output: ref(e.output) } : {}), ...(e.base ? { base: base(e.base) } : {}) })
    const s = r.state
    const meta: StoredMeta = {
      fmt: FORMAT,
      id: r.id,
      owner: r.owner,
      version: r.version,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      mode: s.mode,
      width: s.width,
      height: s.height,
      crop: { x: s.crop.x, y: s.crop.y, w: s.crop.w, h: s.crop.h },
      z: base64Of(s.z),
      z0: base64Of(s.z0),
      photo: ref(s.photo),
      x: ref(s.x),
      xHat: ref(s.xHat),
      output: ref(s.output),
      undo: r.undo.map(entry),
      redo: r.redo.map(entry),
      applied: [...r.applied],
    }
    return { meta, blobs }
  }

  /** A record from its hash's fields (HGETALL). */
  function decode(id: string, fields: Map<string, Buffer>): SessionRecord {
    const rawMeta = fields.get('meta')
    if (!rawMeta) throw new Error(`session ${id} has no meta field`)
    const m = parseMeta(rawMeta, id)
    const need = (field: string): Buffer => {
      const b = fields.get(field)
      if (!b) throw new Error(`session ${id} lacks its blob field ${field}`)
      return b
    }
    const bytes = (field: string): Uint8Array => {
      const a = new Uint8Array(need(field))
      known.set(a, field)
      return a
    }
    const floats = (field: string): Float32Array => {
      const a = floatsOf(need(field), field)
      known.set(a, field)
      return a
    }
    const base = (b: StoredBase): SessionBase => ({
      mode: b.mode,
      width: b.width,
      height: b.height,
      crop: { ...b.crop },
      photo: bytes(b.photo),
      x: floats(b.x),
      xHat: floats(b.xHat),
      z0: floats(b.z0),
    })
    const entry = (e: StoredEntry): HistoryEntry => ({ z: floats(e.z), ...(e.output ? { output: bytes(e.output) } : {}), ...(e.base ? { base: base(e.base) } : {}) })
    const view = metaView(m)
    return {
      id: m.id,
      owner: m.owner,
      version: m.version,
      createdAt: m.createdAt,
      updatedAt: m.updatedAt,
      state: {
        mode: m.mode,
        width: m.width,
        height: m.height,
        crop: { ...m.crop },
        photo: bytes(m.photo),
        x: floats(m.x),
        xHat: floats(m.xHat),
        z0: view.z0,
        z: view.z,
        output: bytes(m.output),
      },
      undo: m.undo.map(entry),
      redo: m.redo.map(entry),
      applied: [...m.applied],
    }
  }

  const newToken = () => randomBytes(12).toString('base64url')

  /**
   * One transaction: HSET the new blob fields, then COMMIT (see the script)
   * with the small fields. Returns COMMIT's result code.
   */
  async function write(
    mode: 'create' | 'save',
    meta: StoredMeta,
    add: [string, Blob][],
    drop: string[],
    expected: { version: number; token: string } | undefined,
  ): Promise<number> {
    const key = sessionKey(meta.id)
    const tx = redis.multi()
    if (add.length > 0) tx.hset(key, ...add.flatMap(([field, a]) => [field, bytesOf(a)]))
    tx.eval(
      COMMIT,
      2,
      key,
      indexKey,
      ttl,
      meta.id,
      mode,
      String(expected?.version ?? 0),
      expected?.token ?? '',
      add.length,
      ...add.map(([field]) => field),
      drop.length,
      ...drop,
      'meta',
      JSON.stringify(meta),
      'v',
      String(meta.version),
      'w',
      newToken(),
    )
    const replies = await tx.exec()
    if (!replies) throw new Error('redis transaction was aborted')
    for (const [err] of replies) if (err) throw err
    const result = Number(replies[replies.length - 1]![1])
    if (result === -4) throw new Error(`session ${meta.id}: a blob field was not written; nothing was saved`)
    return result
  }

  /** TOUCH, then `reads` in the same transaction; undefined if the session is gone. */
  async function touchThen(id: string, reads: (tx: ChainableCommander) => ChainableCommander): Promise<unknown[] | undefined> {
    const replies = await reads(redis.multi().eval(TOUCH, 2, sessionKey(id), indexKey, ttl, id)).exec()
    if (!replies) throw new Error('redis transaction was aborted')
    for (const [err] of replies) if (err) throw err
    return replies[0]![1] === 1 ? replies.slice(1).map(([, value]) => value) : undefined
  }

  return {
    kind: 'redis',

    async create(record) {
      checkRecord(record)
      if (record.version !== 1) throw new TypeError(`a new session has version 1, got ${record.version}`)
      const { meta, blobs } = encode(boundRecord(record, o, 1))
      if ((await write('create', meta, [...blobs], [], undefined)) !== 1) {
        throw new SessionError('session_exists', `session ${record.id} already exists`)
      }
    },

    async get(id) {
      if (!isSessionId(id)) return undefined
      const reply = await touchThen(id, (tx) => tx.hgetallBuffer(sessionKey(id)))
      if (!reply) return undefined
      const all = reply[0] as Record<string, Buffer>
      return decode(id, new Map(Object.entries(all)))
    },

    async getMeta(id) {
      if (!isSessionId(id)) return undefined
      const reply = await touchThen(id, (tx) => tx.hget(sessionKey(id), 'meta'))
      return reply ? metaView(parseMeta(reply[0] as string, id)) : undefined
    },

    async getOutput(id) {
      if (!isSessionId(id)) return undefined
      const key = sessionKey(id)
      for (let attempt = 0; attempt < SAVE_ATTEMPTS; attempt++) {
        const reply = await touchThen(id, (tx) => tx.hget(key, 'meta'))
        if (!reply) return undefined
        const m = parseMeta(reply[0] as string, id)
        // blob fields never change, so the meta and the bytes agree even if a save
        // lands in between; if that save dropped the field, read again
        const rgb = await redis.hgetBuffer(key, m.output)
        if (!rgb) continue
        return { rgb: new Uint8Array(rgb), width: m.width, height: m.height, version: m.version }
      }
      throw new Error(`session ${id} kept changing while its output was read`)
    },

    async save(record, expectedVersion) {
      checkRecord(record)
      if (!Number.isInteger(expectedVersion) || expectedVersion < 1) throw new TypeError(`expectedVersion must be a positive integer, got ${expectedVersion}`)
      const key = sessionKey(record.id)
      const version = expectedVersion + 1
      const { meta, blobs } = encode(boundRecord(record, o, version))
      for (let attempt = 0; attempt < SAVE_ATTEMPTS; attempt++) {
        const [rawMeta, token] = await redis.hmget(key, 'meta', 'w')
        if (!rawMeta || !token) throw new SessionError('session_not_found', `session ${record.id} does not exist or has expired`)
        const stored = parseMeta(rawMeta, record.id)
        if (stored.version !== expectedVersion) {
          throw new SessionError('version_conflict', `session ${record.id} is at version ${stored.version}, not ${expectedVersion}`)
        }
        const have = fieldsOf(stored)
        const drop = [...have].filter((f) => !blobs.has(f))
        const add = [...blobs].filter(([f]) => !have.has(f))
        const result = await write('save', meta, add, drop, { version: expectedVersion, token })
        if (result === 1) {
          record.version = version
          return
        }
        if (result === -1) throw new SessionError('session_not_found', `session ${record.id} does not exist or has expired`)
        if (result === -2) throw new SessionError('version_conflict', `session ${record.id} moved past version ${expectedVersion}`)
        // -3: rewritten at the same version since we read it (deleted and re-created): read again
      }
      throw new SessionError('version_conflict', `session ${record.id} kept changing while saving`)
    },

    async delete(id) {
      if (!isSessionId(id)) return false
      const replies = await redis.multi().del(sessionKey(id)).zrem(indexKey, id).exec()
      const [err, deleted] = replies?.[0] ?? [new Error('transaction aborted'), 0]
      if (err) throw err
      return deleted === 1
    },

    async withLock(id, fn, lockOpts) {
      checkSessionId(id)
      const { ttlMs, waitMs } = resolveLockOptions(lockOpts)
      const key = lockKey(id)
      const token = randomBytes(16).toString('hex')
      const deadline = Date.now() + waitMs
      for (let backoff = 2; ; backoff = Math.min(backoff * 2, 50)) {
        if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK') break
        const left = deadline - Date.now()
        if (left <= 0) throw new SessionError('session_busy', `session ${id} stayed locked for ${waitMs} ms`)
        await sleep(Math.min(left, backoff * (0.5 + Math.random())))
      }
      try {
        return await fn()
      } finally {
        // the lock lapses after ttlMs anyway: a failed release must not hide fn's result or error
        await run(UNLOCK, [key], [token]).catch(() => undefined)
      }
    },

    async count() {
      return Number(await run(COUNT, [indexKey], []))
    },

    async ping() {
      if (redis.status === 'end' || redis.status === 'close' || redis.status === 'reconnecting') {
        throw new Error(`redis connection is ${redis.status}`)
      }
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`redis did not answer PING within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS)
      })
      try {
        await Promise.race([redis.ping(), timeout])
      } finally {
        clearTimeout(timer)
      }
    },

    async close() {},
  }
}
