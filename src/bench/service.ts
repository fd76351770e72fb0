/**
 * `npe bench service`: what the service adds to an edit, and how it scales.
 *
 * 1. in-process: Editor.encode once, then N sequential 1-point Editor.paint calls (no HTTP);
 * 2. embedded: createService without REDIS_URL, real HTTP (fetch) on 127.0.0.1, POST /encode
 *    once, then N sequential POST /edit with a 1-point stroke;
 * 3. queue: createService with REDIS_URL and a fresh REDIS_PREFIX, W real `npe worker`
 *    processes, the same N edits; plus the parts of the round trip measured one by one
 *    (HTTP floor, Redis session reads and writes, PNG data URL, a no-op BullMQ job);
 * 4. throughput in queue mode with C = 1, 4, 16 concurrent clients (one session each, edits back
 *    to back), workers with batching off (BATCH_MAX=1, BATCH_WAIT_MS=0) and on (16, 5 ms).
 *
 * Latency runs (1-3) use batching off in both service modes, so the ratios to in-process are the
 * service's own overhead (batching on adds up to BATCH_WAIT_MS per lone edit: see the C = 1 rows).
 *
 * Everything it creates (Redis keys under the prefix, worker processes, temp dirs) is removed at
 * the end, on errors, and on SIGINT/SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync, rmSync } from 'node:fs'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Redis } from 'ioredis'
import sharp from 'sharp'
import { pngDataUrl } from '../api/respond.js'
import { configSchema, loadConfig } from '../config.js'
import { Editor, type EditorState } from '../editor/editor.js'
import type { JobKind, Payloads } from '../jobs/types.js'
import { initBackend, type BackendPreference } from '../model/backend.js'
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint-dir.js'
import { presetConfig } from '../model/config.js'
import { createIAN, disposeIAN } from '../model/networks.js'
import { createService, type Service } from '../runtime.js'
import { markdownTable, percentile } from './timing.js'

export interface ServiceBenchOptions {
  /** Checkpoint directory. */
  modelDir: string
  /** Fall back to an untrained `preset` model when modelDir has no checkpoint (the default dir only). */
  fallback: boolean
  preset: string
  requests: number
  workers: number
  backend: BackendPreference
  redisUrl: string
  photoSize: number
  log: (line: string) => void
}

export interface Stats {
  p50: number
  p95: number
  n: number
}

export interface LatencyRow extends Stats {
  mode: 'in-process' | 'embedded' | 'queue'
  what: string
  /** p50 / in-process p50, p95 / in-process p95. */
  ratioP50: number
  ratioP95: number
}

export interface ComponentRow extends Stats {
  component: string
  where: string
}

export interface ThroughputRow {
  batching: 'off' | 'on'
  batchMax: number
  batchWaitMs: number
  clients: number
  edits: number
  seconds: number
  editsPerSec: number
  p50: number
  p95: number
  /** Mean size of the edit batches the workers ran in the timed window. */
  meanBatch: number
}

export interface ServiceBenchResult {
  machine: string
  model: string
  settings: { requests: number; workers: number; photoSize: number; redis: string; prefix: string; workerLaunch: string }
  latency: LatencyRow[]
  components: ComponentRow[]
  throughput: ThroughputRow[]
  notes: string[]
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TS_LOADER = join(ROOT, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')
const COLOR_HEX = '#c82828'
const COLOR: [number, number, number] = [200, 40, 40]
const BATCH_OFF = { max: 1, waitMs: 0 }
const BATCH_ON = { max: 16, waitMs: 5 }
const CONCURRENCY = [1, 4, 16]

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b)
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95), n: s.length }
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '-')
const sleep = (t: number) => new Promise((resolve) => setTimeout(resolve, t))

/** Edits each client sends in a throughput run: about `requests` in all, at least 4 per client. */
export function editsPerClient(requests: number, clients: number): number {
  return Math.max(4, Math.ceil(requests / clients))
}

// ---------------------------------------------------------------- cleanup

/** LIFO cleanup actions, run once, each on its own (one failing does not stop the others). */
class Cleanup {
  private readonly actions: { name: string; fn: () => Promise<void> }[] = []
  private running: Promise<void> | undefined
  readonly children = new Set<ChildProcess>()

  add(name: string, fn: () => Promise<void>): () => void {
    const entry = { name, fn }
    this.actions.push(entry)
    return () => {
      const i = this.actions.indexOf(entry)
      if (i >= 0) this.actions.splice(i, 1)
    }
  }

  /** Set on SIGINT/SIGTERM: clients stop sending. */
  aborted = false
  /** Temp dirs, also removed synchronously on a forced exit. */
  readonly dirs = new Set<string>()

  run(log: (line: string) => void, timeoutMs = 30_000): Promise<void> {
    this.running ??= (async () => {
      while (this.actions.length > 0) {
        const { name, fn } = this.actions.pop()!
        let timer: NodeJS.Timeout | undefined
        try {
          await Promise.race([
            fn(),
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)
            }),
          ])
        } catch (err) {
          log(`  cleanup: ${name} failed: ${(err as Error).message}`)
        } finally {
          clearTimeout(timer)
        }
      }
    })()
    return this.running
  }

  /** Last resort on process exit: no async work possible, kill what is left. */
  killNow(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------- model and photo

async function hasCheckpoint(dir: string): Promise<boolean> {
  return existsSync(join(dir, 'checkpoint.json'))
}

function testPhoto(S: number): Uint8Array {
  const rgb = new Uint8Array(S * S * 3)
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) rgb.set([Math.round((x * 255) / S), Math.round((y * 255) / S), 128 + Math.round(60 * Math.sin((x + y) / 9))], (y * S + x) * 3)
  return rgb
}

function oneStroke(S: number) {
  return { points: [{ x: S / 2, y: S / 2 }], radius: S / 16 }
}

// ---------------------------------------------------------------- HTTP client

class Client {
  constructor(
    readonly base: string,
    private readonly cleanup: Cleanup,
  ) {}

  private async request(path: string, init: RequestInit): Promise<Response> {
    if (this.cleanup.aborted) throw new Error('interrupted')
    const res = await fetch(`${this.base}${path}`, { ...init, signal: AbortSignal.timeout(180_000) })
    if (!res.ok) throw new Error(`${init.method ?? 'GET'} ${path}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`)
    return res
  }

  async encode(png: Buffer): Promise<string> {
    const form = new FormData()
    form.append('image', new Blob([new Uint8Array(png)], { type: 'image/png' }), 'photo.png')
    const body = (await (await this.request('/encode', { method: 'POST', body: form })).json()) as { sessionId: string }
    return body.sessionId
  }

  /** One 1-point stroke; reads the whole JSON answer (data URL included), as a client would. */
  async edit(sessionId: string, S: number): Promise<void> {
    const res = await this.request('/edit', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sessionId, stroke: oneStroke(S), color: COLOR_HEX }),
    })
    const body = (await res.json()) as { image?: string }
    if (typeof body.image !== 'string') throw new Error('POST /edit: no image in the answer')
  }

  async healthz(): Promise<void> {
    await (await this.request('/healthz', { method: 'GET' })).text()
  }

  async remove(sessionId: string): Promise<void> {
    await (await this.request(`/sessions/${sessionId}`, { method: 'DELETE' })).arrayBuffer()
  }
}

async function timedEdits(client: Client, sessionId: string, S: number, n: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await client.edit(sessionId, S)
  const samples: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await client.edit(sessionId, S)
    samples.push(performance.now() - t0)
  }
  return samples
}

// ---------------------------------------------------------------- services

/** The service's settings from an explicit map (nothing read from process.env). */
function serviceConfig(modelDir: string, backend: BackendPreference, extra: Record<string, string>) {
  return loadConfig({
    MODEL_DIR: modelDir,
    TFJS_BACKEND: backend,
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    RATE_LIMIT_MAX: '0',
    QUEUE_MAX: '10000',
    JOB_DEADLINE_MS: '300000',
    BATCH_MAX: String(BATCH_OFF.max),
    BATCH_WAIT_MS: String(BATCH_OFF.waitMs),
    ...extra,
  })
}

async function listen(service: Service, cleanup: Cleanup): Promise<Client> {
  await service.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = service.app.server.address() as AddressInfo
  return new Client(`http://127.0.0.1:${port}`, cleanup)
}

/** Closes a service; the job runner first, so requests still waiting for a job end at once. */
async function closeService(service: Service): Promise<void> {
  await service.deps.runner.close().catch(() => undefined)
  await service.close()
}

// ---------------------------------------------------------------- workers

/** True if dist/ has a compiled .js at least as new as every src/**.ts. */
export async function distUpToDate(root = ROOT): Promise<boolean> {
  if (!existsSync(join(root, 'dist/cli/index.js'))) return false
  const src = join(root, 'src')
  const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  for (const f of files) {
    const js = join(root, 'dist', f.replace(/\.ts$/, '.js'))
    if (!existsSync(js)) return false
    if ((await stat(js)).mtimeMs < (await stat(join(src, f))).mtimeMs) return false
  }
  return true
}

interface WorkerProc {
  child: ChildProcess
  backend: string
  /** Edit batches logged so far (debug 'batch' lines): size and duration (load + paint + save). */
  editBatches: { size: number; ms: number }[]
  tail: () => string
}

async function startWorker(args: string[], env: NodeJS.ProcessEnv, cleanup: Cleanup, timeoutMs = 180_000): Promise<WorkerProc> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  cleanup.children.add(child)
  child.once('exit', () => cleanup.children.delete(child))
  let tail = ''
  let partial = ''
  let backend = '?'
  let ready = false
  const editBatches: WorkerProc['editBatches'] = []
  const keep = (s: string) => {
    tail = (tail + s).slice(-8000)
  }
  child.stderr!.on('data', (d: Buffer) => keep(d.toString()))
  child.stdout!.on('data', (d: Buffer) => {
    const text = d.toString()
    keep(text)
    const lines = (partial + text).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (!line.startsWith('{')) continue
      try {
        const rec = JSON.parse(line) as { msg?: string; kind?: string; size?: number; ms?: number; backend?: string }
        if (rec.msg === 'batch' && rec.kind === 'edit' && typeof rec.size === 'number') editBatches.push({ size: rec.size, ms: rec.ms ?? NaN })
        else if (rec.msg === 'worker ready') {
          backend = rec.backend ?? '?'
          ready = true
        }
      } catch {
        // not a log line
      }
    }
  })
  const t0 = Date.now()
  while (!ready) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`worker exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail}`)
    if (Date.now() - t0 > timeoutMs) {
      child.kill('SIGKILL')
      throw new Error(`worker not ready after ${timeoutMs} ms:\n${tail}`)
    }
    await sleep(50)
  }
  return { child, backend, editBatches, tail: () => tail }
}

async function stopWorkers(workers: WorkerProc[]): Promise<void> {
  await Promise.all(
    workers.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
      await exited
      clearTimeout(timer)
    }),
  )
  workers.length = 0
}

async function deleteKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 5_000 })
  redis.on('error', () => undefined)
  try {
    await redis.connect()
    let cursor = '0'
    let deleted = 0
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) deleted += await redis.unlink(...keys)
    } while (cursor !== '0')
    return deleted
  } finally {
    redis.disconnect()
  }
}

async function redisReachable(url: string): Promise<string | undefined> {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true, connectTimeout: 3_000, retryStrategy: () => null })
  let last: string | undefined
  redis.on('error', (err: Error) => (last ??= err.message))
  try {
    await redis.connect()
    await redis.ping()
    return undefined
  } catch (err) {
    return last ?? (err as Error).message
  } finally {
    redis.disconnect()
  }
}

// ---------------------------------------------------------------- the benchmark

export async function benchService(opts: ServiceBenchOptions): Promise<ServiceBenchResult> {
  const { log, requests: N, photoSize: S } = opts
  const cleanup = new Cleanup()
  const notes: string[] = []
  let interrupted = false
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) {
      cleanup.killNow()
      process.exit(signal === 'SIGINT' ? 130 : 143)
    }
    interrupted = true
    cleanup.aborted = true
    log(`\n${signal}: cleaning up (again to quit at once) ...`)
    void cleanup.run(log).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  const onExit = () => cleanup.killNow()
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', onExit)

  try {
    // ---- model
    let modelDir = resolve(opts.modelDir)
    let modelText: string
    if (await hasCheckpoint(modelDir)) {
      modelText = `checkpoint ${modelDir}`
    } else {
      if (!opts.fallback) throw new Error(`no checkpoint at ${modelDir} (checkpoint.json)`)
      const tmp = await mkdtemp(join(os.tmpdir(), 'npe-bench-model-'))
      cleanup.dirs.add(tmp)
      cleanup.add(`remove ${tmp}`, async () => {
        await rm(tmp, { recursive: true, force: true })
        cleanup.dirs.delete(tmp)
      })
      const model = createIAN(presetConfig(opts.preset), 0)
      await saveCheckpoint(tmp, model)
      disposeIAN(model)
      modelDir = tmp
      modelText = `untrained ${opts.preset} (no checkpoint at ${opts.modelDir}; temp checkpoint ${tmp})`
      log(`bench service: ${opts.modelDir} has no checkpoint: using an untrained ${opts.preset} model written to ${tmp}`)
    }
    const backend = await initBackend(opts.backend)
    const photo = testPhoto(S)
    const png = await sharp(Buffer.from(photo), { raw: { width: S, height: S, channels: 3 } }).png().toBuffer()
    log(`bench service: ${modelText}; photo ${S}x${S}; ${N} edits per measurement; backend ${backend.name}`)

    // ---- 1. in-process
    log('  in-process: Editor.encode, then Editor.paint ...')
    const inProcess: number[] = []
    {
      const { model } = await loadCheckpoint(modelDir)
      try {
        const editor = new Editor(model)
        let state: EditorState = editor.encode([{ rgb: photo, width: S, height: S }])[0]!
        const paint = () => {
          state = editor.paint([{ state, stroke: oneStroke(S), color: COLOR }])[0]!
        }
        for (let i = 0; i < 3; i++) paint()
        for (let i = 0; i < N; i++) {
          const t0 = performance.now()
          paint()
          inProcess.push(performance.now() - t0)
        }
      } finally {
        disposeIAN(model)
      }
    }
    const base = stats(inProcess)
    const latency: LatencyRow[] = []
    const addLatency = (mode: LatencyRow['mode'], what: string, samples: number[]) => {
      const s = stats(samples)
      latency.push({ mode, what, ...s, ratioP50: s.p50 / base.p50, ratioP95: s.p95 / base.p95 })
    }
    addLatency('in-process', 'Editor.paint, 1 point (no HTTP, no store)', inProcess)

    // ---- 2. embedded
    log('  embedded: POST /encode, then POST /edit over HTTP ...')
    const components: ComponentRow[] = []
    {
      const service = await createService(serviceConfig(modelDir, opts.backend, {}), false)
      const remove = cleanup.add('close the embedded service', () => closeService(service))
      try {
        const client = await listen(service, cleanup)
        const id = await client.encode(png)
        addLatency('embedded', 'HTTP -> in-process runner -> memory store', await timedEdits(client, id, S, N, 3))
        const http: number[] = []
        for (let i = 0; i < N; i++) {
          const t0 = performance.now()
          await client.healthz()
          http.push(performance.now() - t0)
        }
        components.push({ component: 'HTTP round trip (GET /healthz, fetch keep-alive)', where: 'client <-> API', ...stats(http) })
        const out = await service.deps.store.getOutput(id)
        const pngMs: number[] = []
        for (let i = 0; i < N && out; i++) {
          const t0 = performance.now()
          await pngDataUrl(out.rgb, out.width, out.height)
          pngMs.push(performance.now() - t0)
        }
        components.push({ component: `PNG data URL of the ${S}x${S} output (sharp + base64)`, where: 'API, every answer', ...stats(pngMs) })
      } finally {
        remove()
        await closeService(service)
      }
    }

    // ---- 3 and 4. queue mode
    const throughput: ThroughputRow[] = []
    const prefix = `bench-${randomUUID()}`
    let workerLaunch = '-'
    const unreachable = await redisReachable(opts.redisUrl)
    if (unreachable) {
      notes.push(`queue mode skipped: Redis at ${opts.redisUrl} is unreachable (${unreachable})`)
      log(`  ${notes[notes.length - 1]}`)
    } else {
      cleanup.add(`delete Redis keys ${prefix}:*`, async () => {
        const n = await deleteKeys(opts.redisUrl, prefix)
        log(`  cleanup: deleted ${n} Redis keys under ${prefix}:`)
      })
      const config = serviceConfig(modelDir, opts.backend, { REDIS_URL: opts.redisUrl, REDIS_PREFIX: prefix, QUEUE_NAME: 'npe' })
      const service = await createService(config, false)
      cleanup.add('close the queue-mode API', () => closeService(service))
      const client = await listen(service, cleanup)

      const useDist = await distUpToDate()
      const args = useDist ? [join(ROOT, 'dist/cli/index.js'), 'worker'] : [`--import=${pathToFileURL(TS_LOADER).href}`, join(ROOT, 'src/cli/index.ts'), 'worker']
      workerLaunch = useDist ? 'node dist/cli/index.js worker' : "node --import=<tap's TypeScript loader> src/cli/index.ts worker (dist/ missing or older than src/)"
      const configKeys = new Set(Object.keys(configSchema.shape))
      const baseEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !configKeys.has(k)))
      const workers: WorkerProc[] = []
      cleanup.add('stop the workers', () => stopWorkers(workers))
      const startWorkers = async (batch: { max: number; waitMs: number }) => {
        await stopWorkers(workers)
        log(`  starting ${opts.workers} worker(s), BATCH_MAX=${batch.max} BATCH_WAIT_MS=${batch.waitMs} (${useDist ? 'dist' : 'TypeScript loader'}) ...`)
        const env: NodeJS.ProcessEnv = {
          ...baseEnv,
          ...(useDist ? {} : { TS_NODE_TRANSPILE_ONLY: '1' }),
          REDIS_URL: opts.redisUrl,
          REDIS_PREFIX: prefix,
          QUEUE_NAME: config.QUEUE_NAME,
          MODEL_DIR: modelDir,
          TFJS_BACKEND: opts.backend,
          BATCH_MAX: String(batch.max),
          BATCH_WAIT_MS: String(batch.waitMs),
          LOG_LEVEL: 'debug', // 'worker ready' and the batch sizes
        }
        const started = await Promise.all(Array.from({ length: opts.workers }, () => startWorker(args, env, cleanup)))
        workers.push(...started)
      }

      // latency, batching off
      await startWorkers(BATCH_OFF)
      const workerBackend = workers[0]?.backend ?? '?'
      if (workerBackend !== backend.name) notes.push(`the workers run on ${workerBackend}, this process on ${backend.name}`)
      log('  queue: POST /encode, then POST /edit through BullMQ and Redis ...')
      const id = await client.encode(png)
      await timedEdits(client, id, S, 0, Math.max(3, 2 * opts.workers)) // warm-up
      const before = workers.map((w) => w.editBatches.length)
      addLatency('queue', `HTTP -> BullMQ -> ${opts.workers} worker(s) -> Redis store`, await timedEdits(client, id, S, N, 0))
      const inWorker = workers.flatMap((w, k) => w.editBatches.slice(before[k]).map((b) => b.ms))
      if (inWorker.length > 0) {
        components.push({
          component: 'edit use case in the worker (session get + paint + save), from its batch log',
          where: 'worker, once per edit',
          ...stats(inWorker),
        })
      }

      // the parts, one by one
      const { store, runner } = service.deps
      const sample = async (fn: () => Promise<unknown>) => {
        const out: number[] = []
        for (let i = 0; i < N; i++) {
          const t0 = performance.now()
          await fn()
          out.push(performance.now() - t0)
        }
        return stats(out)
      }
      components.push({
        component: 'session metadata read (getMeta)',
        where: 'API, twice per edit (ownership check, answer)',
        ...(await sample(() => store.getMeta(id))),
      })
      components.push({ component: 'current image read (getOutput)', where: 'API, once per edit', ...(await sample(() => store.getOutput(id))) })
      components.push({ component: 'full session read (get)', where: 'worker, once per edit', ...(await sample(() => store.get(id))) })
      {
        const samples: number[] = []
        for (let i = 0; i < N; i++) {
          const rec = (await store.get(id))!
          const output = rec.state.output.slice()
          output[i % output.length] = (output[i % output.length]! + 1) % 256 // new content: hashed and sent, as after a paint
          const next = {
            ...rec,
            state: { ...rec.state, z: rec.state.z.slice(), output },
            undo: [...rec.undo, { z: rec.state.z, output: rec.state.output }],
            redo: [],
            applied: [...rec.applied, randomUUID()],
          }
          const t0 = performance.now()
          await store.save(next, rec.version)
          samples.push(performance.now() - t0)
        }
        components.push({ component: 'session write with a new output (save)', where: 'worker, once per edit', ...stats(samples) })
      }
      components.push({
        component: 'queue depth check (getJobCounts)',
        where: 'API, before each job',
        ...(await sample(() => runner.depth())),
      })
      components.push({
        component: 'no-op job through the queue runner (depth check, add, worker, failed event)',
        where: 'API <-> worker',
        ...(await sample(async () => {
          const payload = { requestId: `noop_${randomUUID()}`, deadline: Date.now() + 60_000 }
          await runner.run('noop' as JobKind, payload as unknown as Payloads[JobKind]).then(
            () => undefined,
            () => undefined, // the worker answers invalid_request: that is the point
          )
        })),
      })

      // throughput, batching off (these workers) then on (restarted)
      for (const [batching, batch] of [
        ['off', BATCH_OFF],
        ['on', BATCH_ON],
      ] as const) {
        if (batching === 'on') await startWorkers(batch)
        for (const C of CONCURRENCY) {
          const per = editsPerClient(N, C)
          log(`  throughput: batching ${batching}, ${C} client(s) x ${per} edits ...`)
          const sessions = await Promise.all(Array.from({ length: C }, () => client.encode(png)))
          await Promise.all(sessions.map((sid) => client.edit(sid, S))) // warm-up, untimed
          const marks = workers.map((w) => w.editBatches.length)
          const lat: number[] = []
          const t0 = performance.now()
          await Promise.all(
            sessions.map(async (sid) => {
              for (let i = 0; i < per; i++) {
                const t = performance.now()
                await client.edit(sid, S)
                lat.push(performance.now() - t)
              }
            }),
          )
          const seconds = (performance.now() - t0) / 1000
          const sizes = workers.flatMap((w, k) => w.editBatches.slice(marks[k]).map((b) => b.size))
          await Promise.all(sessions.map((sid) => client.remove(sid)))
          const s = stats(lat)
          throughput.push({
            batching,
            batchMax: batch.max,
            batchWaitMs: batch.waitMs,
            clients: C,
            edits: lat.length,
            seconds,
            editsPerSec: lat.length / seconds,
            p50: s.p50,
            p95: s.p95,
            meanBatch: sizes.length ? sizes.reduce((a, b) => a + b, 0) / sizes.length : NaN,
          })
        }
      }
    }

    const cpus = os.cpus()
    const machine =
      `${cpus.length} CPU(s) ${cpus[0]?.model.trim() ?? ''}, load average ${os.loadavg()[0]!.toFixed(1)} at the end, ` +
      `node ${process.version}, backend ${backend.name} (${backend.package})`
    return { machine, model: modelText, settings: { requests: N, workers: opts.workers, photoSize: S, redis: opts.redisUrl, prefix, workerLaunch }, latency, components, throughput, notes }
  } finally {
    await cleanup.run(log)
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', onExit)
  }
}

/** The three markdown tables. */
export function serviceTables(r: ServiceBenchResult): { latency: string; components: string; throughput: string } {
  const latency = markdownTable(
    ['mode', 'path', 'edits', 'p50 ms', 'p95 ms', 'p50 / in-process', 'p95 / in-process'],
    r.latency.map((l) => [l.mode, l.what, l.n, ms(l.p50), ms(l.p95), `${l.ratioP50.toFixed(2)}x`, `${l.ratioP95.toFixed(2)}x`]),
  )
  const components = markdownTable(
    ['part of an edit', 'where', 'p50 ms', 'p95 ms'],
    r.components.map((c) => [c.component, c.where, ms(c.p50), ms(c.p95)]),
  )
  const throughput = markdownTable(
    ['batching', 'clients', 'edits', 'edits/s', 'p50 ms', 'p95 ms', 'mean batch'],
    r.throughput.map((t) => [
      `${t.batching} (max ${t.batchMax}, ${t.batchWaitMs} ms)`,
      t.clients,
      t.edits,
      t.editsPerSec.toFixed(2),
      ms(t.p50),
      ms(t.p95),
      Number.isFinite(t.meanBatch) ? t.meanBatch.toFixed(1) : '-',
    ]),
  )
  return { latency, components, throughput }
}
