/**
 * The SessionStore contract on both adapters, plus what only one of them has:
 * the memory store's FIFO lock, the redis store's key layout, TTL refresh,
 * partial writes and script reloading. Needs a real Redis at REDIS_URL
 * (default redis://127.0.0.1:6379); without one the redis half fails.
 */
import { randomUUID } from 'node:crypto'
import t, { type Test } from 'tap'
import { Redis, type Command } from 'ioredis'
import { createMemorySessionStore, createRedisSessionStore, newSessionId, type SessionRecord, type SessionStore, type SessionStoreOptions } from '../../src/sessions/index.js'
import { editOf, makeRecord, recordDiff, sessionStoreContract, type StoreHarness } from '../unit/sessions-contract.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const DEFAULTS: SessionStoreOptions = { ttlSeconds: 60, historyLimit: 8 }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// memory

function openMemory(opts: SessionStoreOptions): StoreHarness & { store: SessionStore } {
  let clock = 1_700_000_000_000
  const store = createMemorySessionStore({ ...opts, now: () => clock })
  return {
    store,
    advance: async (ms) => {
      clock += ms
    },
    cleanup: () => store.close(),
  }
}

sessionStoreContract(t, 'memory', async (opts) => openMemory(opts))

t.test('memory: waiters get the lock in arrival order, also when a holder lapses', async (t) => {
  const { store, cleanup } = openMemory(DEFAULTS)
  t.teardown(cleanup)
  const id = newSessionId()
  const log: string[] = []
  let finishA!: () => void
  const aMayFinish = new Promise<void>((r) => (finishA = r))
  const a = store.withLock(
    id,
    async () => {
      log.push('a')
      await aMayFinish
    },
    { ttlMs: 50 },
  )
  const rest = ['b', 'c', 'd'].map((name) =>
    store.withLock(id, async () => {
      log.push(name)
      await sleep(5)
    }),
  )
  await Promise.all(rest)
  t.same(log, ['a', 'b', 'c', 'd'], 'b took over when a lapsed, then c, then d')
  finishA()
  await a
})

t.test('memory: a waiter that gives up leaves the queue', async (t) => {
  const { store, cleanup } = openMemory(DEFAULTS)
  t.teardown(cleanup)
  const id = newSessionId()
  let letGo!: () => void
  const held = new Promise<void>((r) => (letGo = r))
  const a = store.withLock(id, () => held)
  const impatient = store.withLock(id, async () => 'impatient', { waitMs: 20 })
  const patient = store.withLock(id, async () => 'patient', { waitMs: 2_000 })
  await t.rejects(impatient, { code: 'session_busy' })
  letGo()
  await a
  t.equal(await patient, 'patient')
})

t.test('memory: an expired session is swept without a read', async (t) => {
  let clock = 0
  const store = createMemorySessionStore({ ...DEFAULTS, ttlSeconds: 1, now: () => clock })
  t.teardown(() => store.close())
  await store.create(makeRecord())
  clock += 5_000
  t.equal(await store.count(), 0)
})

// ---------------------------------------------------------------------------------------------
// redis

async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length > 0) await redis.unlink(...keys)
    cursor = next
  } while (cursor !== '0')
}

async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = []
  let cursor = '0'
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    keys.push(...found)
    cursor = next
  } while (cursor !== '0')
  return keys.sort()
}

interface StoredMetaView {
  id: string
  version: number
  photo: string
  x: string
  xHat: string
  output: string
  undo: { z: string; output: string; base?: { photo: string; x: string; xHat: string; z0: string } }[]
  redo: { z: string; output: string; base?: { photo: string; x: string; xHat: string; z0: string } }[]
}

/** The hash fields a session's meta refers to, plus the fixed ones. */
function expectedFields(meta: StoredMetaView): string[] {
  const fields = new Set(['meta', 'v', 'w', meta.photo, meta.x, meta.xHat, meta.output])
  for (const e of [...meta.undo, ...meta.redo]) {
    fields.add(e.z).add(e.output)
    if (e.base) for (const f of [e.base.photo, e.base.x, e.base.xHat, e.base.z0]) fields.add(f)
  }
  return [...fields].sort()
}

function connect(): Redis {
  return new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: (times) => (times > 3 ? null : 200) })
}

/** Buffer bytes and string arguments of the commands a client sends. */
function spyOn(client: Redis): { bytes: () => number; strings: () => string[]; reset: () => void } {
  let sent: Command[] = []
  const send = client.sendCommand.bind(client)
  client.sendCommand = ((command: Command, ...rest: unknown[]) => {
    sent.push(command)
    return (send as (...a: unknown[]) => unknown)(command, ...rest)
  }) as typeof client.sendCommand
  return {
    bytes: () => sent.reduce((n, c) => n + c.args.reduce<number>((m, a) => m + (Buffer.isBuffer(a) ? a.length : 0), 0), 0),
    strings: () => sent.flatMap((c) => c.args.filter((a): a is string => typeof a === 'string')),
    reset: () => {
      sent = []
    },
  }
}

t.test('redis', async (t) => {
  const redis = connect()
  t.teardown(() => redis.disconnect())
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    t.fail(`no Redis at ${REDIS_URL} (${err instanceof Error ? err.message : String(err)}): start redis-server or set REDIS_URL`)
    return
  }

  const openRedis = async (t: Test, opts: Partial<SessionStoreOptions> = {}, client: Redis = redis) => {
    const prefix = `test-${randomUUID()}`
    const store = createRedisSessionStore(client, { ...DEFAULTS, ...opts, prefix })
    t.teardown(async () => {
      await store.close()
      await deleteKeys(redis, prefix)
    })
    return { store, prefix, key: (id: string) => `${prefix}:s:${id}`, index: `${prefix}:sessions` }
  }

  sessionStoreContract(t, 'redis', async (opts) => {
    const prefix = `test-${randomUUID()}`
    const store = createRedisSessionStore(redis, { ...opts, prefix })
    return {
      store,
      advance: sleep,
      cleanup: async () => {
        await store.close()
        await deleteKeys(redis, prefix)
      },
    }
  })

  t.test('redis: one hash per session and an index of expiry times', async (t) => {
    const { store, prefix, key, index } = await openRedis(t)
    const rec = makeRecord()
    await store.create(rec)
    const k = key(rec.id)
    t.same(await keysOf(redis, prefix), [index, k].sort(), 'nothing else')
    t.equal(await redis.type(k), 'hash')
    const pttl = await redis.pttl(k)
    t.ok(pttl > 58_000 && pttl <= 60_000, `PTTL ${pttl} ~ 60 s`)
    const score = Number(await redis.zscore(index, rec.id))
    t.ok(Math.abs(score - (Date.now() + 60_000)) < 2_000, 'the index holds the expiry time')

    const meta = JSON.parse((await redis.hget(k, 'meta'))!) as StoredMetaView & Record<string, unknown>
    t.match(meta, { id: rec.id, owner: 'key-1', version: 1, mode: 'photo', width: 8, height: 6, applied: ['req-1', 'req-2'] })
    t.equal(meta.z, Buffer.from(rec.state.z.buffer).toString('base64'), 'z as base64 of its bytes')
    t.equal(await redis.hget(k, 'v'), '1')
    t.same((await redis.hkeys(k)).sort(), expectedFields(meta), 'exactly the referenced fields')
    t.ok((await redis.hgetBuffer(k, meta.photo))!.equals(Buffer.from(rec.state.photo)), 'the photo as raw bytes')
    t.ok((await redis.hgetBuffer(k, meta.x))!.equals(Buffer.from(rec.state.x.buffer)), 'x as raw float32 bytes')
    t.ok(((await redis.hget(k, 'meta'))?.length ?? 0) < 2_000, 'meta is small')

    t.equal(await store.delete(rec.id), true)
    t.same(await keysOf(redis, prefix), [], 'delete removes the hash and the index entry')
  })

  t.test('redis: get, getMeta, getOutput and save refresh the TTL', async (t) => {
    const { store, key, index } = await openRedis(t)
    const rec = makeRecord()
    await store.create(rec)
    const k = key(rec.id)
    const reads: [string, () => Promise<unknown>][] = [
      ['get', () => store.get(rec.id)],
      ['getMeta', () => store.getMeta(rec.id)],
      ['getOutput', () => store.getOutput(rec.id)],
      ['save', () => store.save(editOf(rec), rec.version)],
    ]
    for (const [name, read] of reads) {
      await redis.pexpire(k, 1_500)
      await redis.zadd(index, Date.now() + 1_500, rec.id)
      await read()
      const pttl = await redis.pttl(k)
      t.ok(pttl > 58_000, `${name}: PTTL back to ${pttl} ms`)
      t.ok(Number(await redis.zscore(index, rec.id)) > Date.now() + 58_000, `${name}: index refreshed`)
    }
  })

  t.test('redis: saves send only new blobs and delete the ones no longer referenced', async (t) => {
    const client = connect()
    t.teardown(() => client.disconnect())
    await client.connect()
    const spy = spyOn(client)
    const { store, key } = await openRedis(t, { historyLimit: 2 }, client)
    const size = { width: 128, height: 128 }
    const rec = makeRecord(newSessionId(), size)
    await store.create(rec)
    const k = key(rec.id)
    const photoField = JSON.parse((await redis.hget(k, 'meta'))!).photo as string
    const firstOutputField = JSON.parse((await redis.hget(k, 'meta'))!).output as string

    // an edit: same base, new z and output; the old output goes to undo
    const loaded = (await store.get(rec.id))!
    const edited = editOf(loaded)
    spy.reset()
    await store.save(edited, 1)
    const out = edited.state.output.byteLength
    t.ok(spy.bytes() >= out && spy.bytes() < out + 1_024, `an edit sent ${spy.bytes()} bytes of blobs: the new output (${out}) and a small z`)
    t.notOk(spy.strings().includes(photoField), 'the photo field was not written')
    t.notOk(spy.strings().includes(firstOutputField), 'the old output was not re-sent for the undo list')
    t.same(recordDiff(await store.get(rec.id), { ...edited, undo: edited.undo.slice(-2) }), [], 'stored, history cut to 2')

    // an undo: the newest undo entry becomes current, the current one goes to redo
    const u = (await store.get(rec.id))!
    const back = u.undo.pop()!
    const undone: SessionRecord = { ...u, state: { ...u.state, z: back.z, output: back.output! }, undo: u.undo, redo: [{ z: u.state.z, output: u.state.output }] }
    spy.reset()
    await store.save(undone, 2)
    t.ok(spy.bytes() < 1_024, `an undo sent ${spy.bytes()} bytes of blobs (only the small z that was inline)`)
    t.same(recordDiff(await store.get(rec.id), undone), [])

    // arrays the caller copied are recognised by content
    const copied = (await store.get(rec.id))!
    const fresh: SessionRecord = {
      ...copied,
      state: { ...copied.state, photo: copied.state.photo.slice(), x: copied.state.x.slice(), xHat: copied.state.xHat.slice(), output: copied.state.output.slice() },
      undo: copied.undo.map((e) => ({ z: e.z.slice(), output: e.output!.slice(), ...(e.base ? { base: { ...e.base, photo: e.base.photo.slice() } } : {}) })),
      applied: [...copied.applied, 'noop'],
    }
    spy.reset()
    await store.save(fresh, 3)
    t.equal(spy.bytes(), 0, 'copies of stored arrays are not re-sent')

    // edits past the history limit: dropped entries' fields are deleted
    let cur = (await store.get(rec.id))!
    for (let i = 0; i < 4; i++) {
      const next = editOf(cur)
      await store.save(next, cur.version)
      cur = (await store.get(rec.id))!
    }
    const meta = JSON.parse((await redis.hget(k, 'meta'))!) as StoredMetaView
    t.equal(meta.undo.length, 2)
    t.same((await redis.hkeys(k)).sort(), expectedFields(meta), 'no orphaned fields')
    t.notOk(await redis.hexists(k, firstOutputField), 'the first output is gone')
  })

  t.test('redis: failed writes leave no stray fields or keys', async (t) => {
    const client = connect()
    t.teardown(() => client.disconnect())
    await client.connect()
    const { store, key } = await openRedis(t, {}, client)
    const fieldsMatchMeta = async (id: string, what: string) => {
      const meta = JSON.parse((await redis.hget(key(id), 'meta'))!) as StoredMetaView
      t.same((await redis.hkeys(key(id))).sort(), expectedFields(meta), what)
    }

    const rec = makeRecord()
    await store.create(rec)
    await t.rejects(store.create(makeRecord(rec.id)), { code: 'session_exists' })
    await fieldsMatchMeta(rec.id, 'a refused create removed the blobs it sent')

    const loaded = (await store.get(rec.id))!
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => store.save(editOf(loaded), 1)))
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    await fieldsMatchMeta(rec.id, 'the four conflicting saves removed the blobs they sent')

    // the session disappears between save's read of meta and its transaction
    const hmget = client.hmget.bind(client)
    const between = async (action: () => Promise<unknown>, run: () => Promise<unknown>) => {
      client.hmget = (async (...args: Parameters<typeof client.hmget>) => {
        const reply = await hmget(...args)
        client.hmget = hmget
        await action()
        return reply
      }) as typeof client.hmget
      try {
        return await run()
      } finally {
        client.hmget = hmget
      }
    }
    const gone = makeRecord()
    await store.create(gone)
    await t.rejects(
      between(
        () => redis.del(key(gone.id)),
        () => store.save(editOf(gone), 1),
      ),
      { code: 'session_not_found' },
    )
    t.equal(await redis.exists(key(gone.id)), 0, 'no hash without a TTL was left behind')

    // ... or is deleted and created again at the same version: the save reads again and wins
    const again = makeRecord()
    await store.create(again)
    const recreated = makeRecord(again.id)
    const next = editOf(again)
    await between(
      async () => {
        await store.delete(again.id)
        await store.create(recreated)
      },
      () => store.save(next, 1),
    )
    t.same(recordDiff(await store.get(again.id), next), [], 'saved over the re-created session')
    await fieldsMatchMeta(again.id, 'no stray fields after the retry')
  })

  t.test('redis: scripts are reloaded after SCRIPT FLUSH', async (t) => {
    const { store } = await openRedis(t)
    await redis.script('FLUSH')
    const rec = makeRecord()
    await store.create(rec)
    await redis.script('FLUSH')
    t.same(recordDiff(await store.get(rec.id), rec), [])
    await redis.script('FLUSH')
    await store.save(editOf(rec), 1)
    await redis.script('FLUSH')
    t.equal(await store.count(), 1)
    await redis.script('FLUSH')
    t.equal(await store.withLock(rec.id, async () => 'locked'), 'locked')
  })

  t.test('redis: a lock on another store instance (another process) excludes too', async (t) => {
    const other = connect()
    t.teardown(() => other.disconnect())
    await other.connect()
    const { store, prefix } = await openRedis(t)
    const twin = createRedisSessionStore(other, { ...DEFAULTS, prefix })
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
    await t.rejects(twin.withLock(id, async () => 1, { waitMs: 50 }), { name: 'SessionError', code: 'session_busy' })
    letGo()
    await holder
    t.equal(await twin.withLock(id, async () => 2, { waitMs: 0 }), 2)
  })

  t.test('redis: ping rejects when Redis is unreachable; close leaves the connection open', async (t) => {
    const down = new Redis('redis://127.0.0.1:1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    t.teardown(() => down.disconnect())
    down.on('error', () => {})
    const unreachable = createRedisSessionStore(down, { ...DEFAULTS, prefix: `test-${randomUUID()}` })
    await t.rejects(unreachable.ping())
    await t.rejects(unreachable.ping(), 'still down')

    const { store } = await openRedis(t)
    await store.ping()
    await store.close()
    t.equal(await redis.ping(), 'PONG', "the caller's connection is still usable")
  })
})
