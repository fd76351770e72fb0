/**
 * docker-compose.yml, checked statically (no Docker engine needed): the services and their
 * profiles, the GPU device reservation, health checks, Redis for BullMQ, pinned images, and
 * environments that hold only known settings.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'
import { configSchema } from '../../src/config.js'

type Obj = Record<string, any>

const root = fileURLToPath(new URL('../..', import.meta.url))
const compose = parse(readFileSync(`${root}/docker-compose.yml`, 'utf8')) as Obj
const services: Obj = compose.services ?? {}
const CONFIG_KEYS = Object.keys(configSchema.shape)

/** A compose environment (map or KEY=VALUE list) as a map. */
function envOf(s: Obj): Record<string, string> {
  const env = s.environment ?? {}
  if (Array.isArray(env)) return Object.fromEntries(env.map((e: string) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)]))
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')]))
}

const joined = (v: unknown) => (Array.isArray(v) ? v.join(' ') : String(v ?? ''))

t.test('services and profiles', async (t) => {
  t.same(Object.keys(services).sort(), ['api', 'redis', 'worker', 'worker-cpu'])
  t.notOk(services.redis.profiles, 'redis always runs')
  t.notOk(services.api.profiles, 'the API always runs')
  t.same(services.worker.profiles, ['gpu'], 'the GPU worker only with --profile gpu')
  t.same(services['worker-cpu'].profiles, ['cpu'], 'the CPU worker only with --profile cpu')
})

t.test('redis: pinned 7.x, noeviction, AOF on a volume, health check', async (t) => {
  const r = services.redis
  t.match(r.image, /^redis:7\.\d+\.\d+(-[a-z0-9.]+)?$/, 'redis:7.x.y')
  const cmd = joined(r.command)
  t.match(cmd, /--maxmemory-policy noeviction/, 'noeviction (BullMQ loses jobs otherwise)')
  t.match(cmd, /--appendonly yes/, 'AOF')
  const volume = (r.volumes ?? []).find((v: string) => String(v).endsWith(':/data'))
  t.ok(volume, 'a volume at /data')
  t.ok(compose.volumes && String(volume).split(':')[0]! in compose.volumes, 'a named volume, declared')
  t.match(joined(r.healthcheck?.test), /redis-cli ping/, 'health check: redis-cli ping')
})

t.test('api: cpu image, port 8080, Redis, waits for a healthy Redis', async (t) => {
  const a = services.api
  t.equal(a.build?.target, 'cpu')
  t.same(a.command, ['api'])
  t.ok((a.ports ?? []).some((p: string) => String(p).endsWith(':8080') || String(p) === '8080'), 'publishes 8080')
  t.equal(envOf(a).REDIS_URL, 'redis://redis:6379', 'queue mode against the redis service')
  t.equal(a.depends_on?.redis?.condition, 'service_healthy')
  t.ok(a.healthcheck?.test, 'health check')
  t.match(joined(a.healthcheck?.test), /healthcheck\.mjs/, 'the image\'s node-based check (no curl in the image)')
})

t.test('worker (gpu profile): gpu image, worker command, one NVIDIA GPU, CUDA cache volume', async (t) => {
  const w = services.worker
  t.equal(w.build?.target, 'gpu')
  t.same(w.command, ['worker'])
  t.equal(envOf(w).TFJS_BACKEND, 'gpu')
  const devices = w.deploy?.resources?.reservations?.devices ?? []
  t.equal(devices.length, 1, 'one device reservation')
  t.equal(devices[0]?.driver, 'nvidia')
  t.equal(devices[0]?.count, 1)
  t.ok((devices[0]?.capabilities ?? []).includes('gpu'), 'capabilities [gpu]')
  const cache = (w.volumes ?? []).find((v: string) => String(v).endsWith(':/var/cache/cuda'))
  t.ok(cache, 'a volume at /var/cache/cuda (CUDA_CACHE_PATH of the gpu image)')
  t.ok(String(cache).split(':')[0]! in (compose.volumes ?? {}), 'a named volume: the PTX JIT cache survives restarts')
  t.equal(w.depends_on?.redis?.condition, 'service_healthy')
})

t.test('worker-cpu (cpu profile): cpu image, wasm, no GPU', async (t) => {
  const w = services['worker-cpu']
  t.equal(w.build?.target, 'cpu')
  t.same(w.command, ['worker'])
  t.equal(envOf(w).TFJS_BACKEND, 'wasm')
  t.notOk(w.deploy?.resources?.reservations?.devices, 'no device reservation')
  t.equal(w.depends_on?.redis?.condition, 'service_healthy')
})

t.test('every service: health check, pinned image, known settings', async (t) => {
  for (const [name, s] of Object.entries(services) as [string, Obj][]) {
    t.ok(s.healthcheck?.test, `${name}: health check`)
    t.ok(s.image, `${name}: an image name`)
    const [, tag] = String(s.image).split(/:(?=[^/]*$)/)
    t.ok(tag, `${name}: ${s.image} has a tag`)
    t.not(tag, 'latest', `${name}: not latest`)
    t.match(tag ?? '', /\d/, `${name}: the tag names a version`)
    if (name === 'redis') continue
    t.match(s.image, /^neural-photo-editor:\d+\.\d+\.\d+-(cpu|gpu)$/, `${name}: built and tagged like the release images`)
    t.equal(s.image.endsWith('-gpu'), s.build?.target === 'gpu', `${name}: the tag matches the build target`)
    for (const k of Object.keys(envOf(s))) t.ok(CONFIG_KEYS.includes(k), `${name}: ${k} is a variable of src/config.ts`)
    t.equal(s.read_only, true, `${name}: read-only root filesystem`)
    t.ok((s.cap_drop ?? []).includes('ALL'), `${name}: drops all capabilities`)
  }
  for (const name of ['worker', 'worker-cpu']) {
    const s = services[name]
    t.ok(Number(envOf(s).WORKER_PORT) > 0, `${name}: WORKER_PORT set (its health check probes /readyz there)`)
    t.match(joined(s.healthcheck?.test), /healthcheck\.mjs worker/, `${name}: the worker health check`)
    const grace = /^(\d+)s$/.exec(String(s.stop_grace_period ?? ''))
    t.ok(grace && Number(grace[1]) > 30, `${name}: stop_grace_period > JOB_DEADLINE_MS (30 s)`)
  }
})
