/**
 * The in-process SessionStore (embedded mode): a Map of deep copies, a TTL on
 * the injectable clock (checked on every read, swept by an unref'd timer) and
 * a FIFO async mutex per session id.
 */
import { boundRecord, checkRecord, checkSessionId, copyRecord, isSessionId, resolveLockOptions, resolveOptions } from './records.js'
import { metaOf, SessionError, type SessionRecord, type SessionStore, type SessionStoreOptions } from './types.js'

interface Stored {
  record: SessionRecord
  expiresAt: number
}

interface Waiter {
  ttlMs: number
  grant: (token: symbol) => void
  timer: NodeJS.Timeout
}

/** One session's lock: the holder's token, its lapse timer, and the waiters in arrival order. */
interface LockState {
  holder: symbol | undefined
  lapse: NodeJS.Timeout | undefined
  queue: Waiter[]
}

/** Sweeps run every ttl, at least once a second and at most once a minute. */
function sweepInterval(ttlMs: number): number {
  return Math.min(60_000, Math.max(1_000, ttlMs))
}

export function createMemorySessionStore(opts: SessionStoreOptions): SessionStore {
  const o = resolveOptions(opts)
  const sessions = new Map<string, Stored>()
  const locks = new Map<string, LockState>()

  const sweep = (): void => {
    const t = o.now()
    for (const [id, s] of sessions) if (t >= s.expiresAt) sessions.delete(id)
  }
  const sweeper = setInterval(sweep, sweepInterval(o.ttlMs))
  sweeper.unref()

  /** The live entry (an expired one is dropped), its TTL refreshed when `touch`. */
  const live = (id: string, touch: boolean): Stored | undefined => {
    if (!isSessionId(id)) return undefined
    const s = sessions.get(id)
    if (!s) return undefined
    const t = o.now()
    if (t >= s.expiresAt) {
      sessions.delete(id)
      return undefined
    }
    if (touch) s.expiresAt = t + o.ttlMs
    return s
  }

  const grant = (id: string, lock: LockState, ttlMs: number): symbol => {
    const token = Symbol(id)
    lock.holder = token
    lock.lapse = setTimeout(() => release(id, lock, token), ttlMs)
    lock.lapse.unref()
    return token
  }

  /** Frees the lock if `token` still holds it, and hands it to the longest waiter. */
  const release = (id: string, lock: LockState, token: symbol): void => {
    if (lock.holder !== token) return
    clearTimeout(lock.lapse)
    lock.holder = undefined
    lock.lapse = undefined
    const next = lock.queue.shift()
    if (next) {
      clearTimeout(next.timer)
      next.grant(grant(id, lock, next.ttlMs))
    } else if (locks.get(id) === lock) {
      locks.delete(id)
    }
  }

  const acquire = (id: string, ttlMs: number, waitMs: number): Promise<{ lock: LockState; token: symbol }> => {
    let lock = locks.get(id)
    if (!lock) {
      lock = { holder: undefined, lapse: undefined, queue: [] }
      locks.set(id, lock)
    }
    const l = lock
    if (l.holder === undefined && l.queue.length === 0) return Promise.resolve({ lock: l, token: grant(id, l, ttlMs) })
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        ttlMs,
        grant: (token) => resolve({ lock: l, token }),
        timer: setTimeout(() => {
          const i = l.queue.indexOf(waiter)
          if (i >= 0) l.queue.splice(i, 1)
          reject(new SessionError('session_busy', `session ${id} stayed locked for ${waitMs} ms`))
        }, waitMs),
      }
      l.queue.push(waiter)
    })
  }

  return {
    kind: 'memory',

    async create(record) {
      checkRecord(record)
      if (record.version !== 1) throw new TypeError(`a new session has version 1, got ${record.version}`)
      if (live(record.id, false)) throw new SessionError('session_exists', `session ${record.id} already exists`)
      sessions.set(record.id, { record: copyRecord(boundRecord(record, o, 1)), expiresAt: o.now() + o.ttlMs })
    },

    async get(id) {
      const s = live(id, true)
      return s && copyRecord(s.record)
    },

    async getMeta(id) {
      const s = live(id, true)
      if (!s) return undefined
      const meta = metaOf(s.record)
      return { ...meta, z: meta.z.slice(), z0: meta.z0.slice() }
    },

    async getOutput(id) {
      const s = live(id, true)
      if (!s) return undefined
      const { state, version } = s.record
      return { rgb: state.output.slice(), width: state.width, height: state.height, version }
    },

    async save(record, expectedVersion) {
      checkRecord(record)
      if (!Number.isInteger(expectedVersion) || expectedVersion < 1) throw new TypeError(`expectedVersion must be a positive integer, got ${expectedVersion}`)
      const s = live(record.id, false)
      if (!s) throw new SessionError('session_not_found', `session ${record.id} does not exist or has expired`)
      if (s.record.version !== expectedVersion) {
        throw new SessionError('version_conflict', `session ${record.id} is at version ${s.record.version}, not ${expectedVersion}`)
      }
      const version = expectedVersion + 1
      s.record = copyRecord(boundRecord(record, o, version))
      s.expiresAt = o.now() + o.ttlMs
      record.version = version
    },

    async delete(id) {
      const existed = live(id, false) !== undefined
      sessions.delete(id)
      return existed
    },

    async withLock(id, fn, lockOpts) {
      checkSessionId(id)
      const { ttlMs, waitMs } = resolveLockOptions(lockOpts)
      const { lock, token } = await acquire(id, ttlMs, waitMs)
      try {
        return await fn()
      } finally {
        release(id, lock, token)
      }
    },

    async count() {
      sweep()
      return sessions.size
    },

    async ping() {},

    async close() {
      clearInterval(sweeper)
    },
  }
}
