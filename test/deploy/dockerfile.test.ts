/**
 * The Dockerfile and .dockerignore, checked statically (no Docker engine here): both final
 * targets, pinned base images (with a digest hook), the shared build stage, the GPU runtime
 * settings, non-root users, health checks and the entrypoint. The health check script itself
 * runs for real against a local HTTP server.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

interface Instruction {
  cmd: string
  args: string
}
interface Stage {
  from: string
  name?: string
  body: Instruction[]
}

/** Instructions with line continuations joined and comments dropped. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (/^\s*#/.test(line) || (current === '' && line.trim() === '')) continue
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' '
      continue
    }
    current += line
    const m = /^\s*(\w+)\s+([\s\S]*)$/.exec(current)
    if (m) out.push({ cmd: m[1]!.toUpperCase(), args: m[2]!.trim() })
    current = ''
  }
  return out
}

const dockerfile = readFileSync(`${root}/Dockerfile`, 'utf8')
const all = instructions(dockerfile)
const firstFrom = all.findIndex((i) => i.cmd === 'FROM')
const globalArgs: Record<string, string> = {}
for (const i of all.slice(0, firstFrom)) {
  if (i.cmd !== 'ARG') continue
  const [k, v = ''] = i.args.split(/=(.*)/s)
  globalArgs[k!] = v
}
const stages: Stage[] = []
for (const i of all.slice(firstFrom)) {
  if (i.cmd === 'FROM') {
    const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(i.args)
    if (!m) throw new Error(`cannot read FROM ${i.args}`)
    stages.push({ from: m[1]!, name: m[2], body: [] })
  } else stages[stages.length - 1]!.body.push(i)
}
const stage = (name: string) => stages.find((s) => s.name === name)

/** Dockerfile variable expansion: ${V}, $V, ${V:-word}, ${V:+word}. */
function expand(s: string, vars: Record<string, string>): string {
  return s.replace(/\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)/g, (_m, a: string | undefined, op: string | undefined, word: string | undefined, b: string | undefined) => {
    const v = vars[(a ?? b)!] ?? ''
    if (op === '-') return v !== '' ? v : expand(word ?? '', vars)
    if (op === '+') return v !== '' ? expand(word ?? '', vars) : ''
    return v
  })
}

/** The external image a stage starts from (following FROM <stage> chains). */
function baseImage(s: Stage, vars = globalArgs): { raw: string; image: string } {
  const ref = expand(s.from, vars)
  const parent = stages.find((p) => p.name === ref && p !== s)
  return parent ? baseImage(parent, vars) : { raw: s.from, image: ref }
}

function env(s: Stage): Record<string, string> {
  const out: Record<string, string> = {}
  for (const i of s.body.filter((i) => i.cmd === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S*)/g)) out[m[1]!] = m[2]!.replace(/^"|"$/g, '')
  }
  return out
}
const runs = (s: Stage | undefined) => (s?.body ?? []).filter((i) => i.cmd === 'RUN').map((i) => i.args).join('\n')
const last = (s: Stage, cmd: string) => s.body.filter((i) => i.cmd === cmd).at(-1)?.args

t.test('two final targets, gpu and cpu', async (t) => {
  t.ok(stage('gpu'), 'FROM ... AS gpu')
  t.ok(stage('cpu'), 'FROM ... AS cpu')
  t.equal(stages.at(-1)?.name, 'gpu', 'gpu is the last stage (the default target)')
})

t.test('base images: versioned tags, never latest, digest pinning wired in', async (t) => {
  const external = stages.filter((s) => !stages.some((p) => p.name === expand(s.from, globalArgs) && p !== s))
  t.ok(external.length >= 2, 'a node and a CUDA base')
  for (const s of external) {
    const image = expand(s.from, globalArgs)
    const m = /^([^@]+?):([^:/@]+)(@sha256:[0-9a-f]{64})?$/.exec(image)
    t.ok(m, `${image}: name:tag`)
    t.not(m?.[2], 'latest', `${image}: not latest`)
    t.match(m?.[2] ?? '', /\d+\.\d+/, `${image}: the tag is a version`)
    const digestArg = /\$\{(\w+_DIGEST):\+@\}\$\{\1\}/.exec(s.from)?.[1]
    t.ok(digestArg && digestArg in globalArgs, `${s.from}: a digest ARG can pin it`)
    const digest = `sha256:${'a'.repeat(64)}`
    t.equal(expand(s.from, { ...globalArgs, [digestArg!]: digest }), `${image}@${digest}`, 'with the digest set: image:tag@sha256:...')
  }
  t.notMatch(dockerfile, /:latest\b/, 'no :latest anywhere')
  const gpuBase = baseImage(stage('gpu')!).image
  t.match(gpuBase, /^nvidia\/cuda:11\.\d+(\.\d+)?-cudnn8-runtime-ubuntu\d+\.\d+$/, `gpu: CUDA 11 + cuDNN 8 runtime (${gpuBase})`)
  const cpuBase = baseImage(stage('cpu')!).image
  t.match(cpuBase, /^node:20\.\d+\.\d+-bookworm-slim$/, `cpu: a pinned Node 20 slim image (${cpuBase})`)
  const nodeVersion = globalArgs.NODE_VERSION ?? ''
  t.match(nodeVersion, /^20\.\d+\.\d+$/, 'NODE_VERSION is an exact Node 20 release')
  const [, minor] = nodeVersion.split('.').map(Number)
  t.ok((minor ?? 0) >= 9, "it satisfies package.json's engines (>= 20.9)")
})

t.test('shared build stage: npm ci, build, prune to production', async (t) => {
  const build = stage('build')
  t.ok(build, 'a build stage')
  const r = runs(build)
  t.match(r, /npm ci\b/)
  t.match(r, /npm run build\b/)
  t.match(r, /npm prune --omit=dev\b/)
  t.match(r, /deploy\/docker\/healthcheck\.mjs/, 'the health check script goes into the image')
  for (const target of ['cpu', 'gpu']) {
    const seen: string[] = []
    // the final stage copies the app from a stage derived from build
    const froms = (x: Stage) => x.body.filter((i) => i.cmd === 'COPY').map((i) => /--from=(\S+)/.exec(i.args)?.[1]).filter(Boolean) as string[]
    const reaches = (x: Stage | undefined): boolean => {
      if (!x || seen.includes(x.name ?? '')) return false
      seen.push(x.name ?? '')
      if (x.name === 'build') return true
      return [...froms(x), x.from].some((n) => reaches(stage(n)))
    }
    t.ok(reaches(stage(target)), `${target} is built from the build stage`)
  }
})

t.test('gpu: tfjs-node-gpu installed at build time, GPU runtime settings', async (t) => {
  const gpu = stage('gpu')!
  const sources = gpu.body.filter((i) => i.cmd === 'COPY').map((i) => /--from=(\S+)/.exec(i.args)?.[1]).filter(Boolean) as string[]
  const installer = sources.map((n) => stage(n)).find((s) => /@tensorflow\/tfjs-node-gpu/.test(runs(s)))
  t.ok(installer, 'the gpu image copies the app from a stage that installs @tensorflow/tfjs-node-gpu')
  t.match(runs(installer), /npm (rebuild|install|ci)[^\n]*@tensorflow\/tfjs-node-gpu/, 'with npm')
  t.match(runs(installer), /TFJS_NODE_CDN_STORAGE/, 'a mirror for the libtensorflow download can be set')
  const e = env(gpu)
  t.equal(e.TF_FORCE_GPU_ALLOW_GROWTH, 'true')
  t.equal(e.CUDA_CACHE_PATH, '/var/cache/cuda')
  const size = Number(e.CUDA_CACHE_MAXSIZE)
  t.ok(size >= 2 ** 30 && size <= 2 ** 32, 'CUDA_CACHE_MAXSIZE between 1 GiB and the 4 GiB maximum')
  t.equal(e.TFJS_BACKEND, 'gpu')
  t.match(runs(gpu), /chown[^\n]*\/var\/cache\/cuda/, 'the cache directory belongs to the service user')
  t.match(runs(stage('node-dist')), /sha256sum -c/, 'the Node.js tarball is checksum-verified')
  t.ok('NODE_VERSION' in globalArgs, 'Node version from ARG NODE_VERSION')
})

t.test('cpu: wasm backend, no GPU packages', async (t) => {
  const cpu = stage('cpu')!
  t.equal(env(cpu).TFJS_BACKEND, 'wasm')
  t.match(runs(stage('app-cpu')), /rm -rf[^\n]*@tensorflow\/tfjs-node-gpu/, 'tfjs-node-gpu is left out of the cpu image')
})

t.test('final stages: non-root numeric user, health check, entrypoint', async (t) => {
  for (const name of ['gpu', 'cpu']) {
    const s = stage(name)!
    const user = last(s, 'USER') ?? ''
    t.match(user, /^\d+(:\d+)?$/, `${name}: numeric USER`)
    t.not(Number(user.split(':')[0]), 0, `${name}: not root`)
    const hc = last(s, 'HEALTHCHECK') ?? ''
    t.match(hc, /CMD \["node", ?"deploy\/docker\/healthcheck\.mjs"\]/, `${name}: node-based HEALTHCHECK`)
    t.same(JSON.parse(last(s, 'ENTRYPOINT') ?? 'null'), ['node', 'dist/cli/index.js'], `${name}: ENTRYPOINT`)
    t.same(JSON.parse(last(s, 'CMD') ?? 'null'), ['api'], `${name}: CMD api (worker by command)`)
    const lastRun = s.body.map((i) => i.cmd).lastIndexOf('RUN')
    t.ok(s.body.map((i) => i.cmd).lastIndexOf('USER') > lastRun, `${name}: USER comes after the last RUN (nothing runs as root after it)`)
  }
  t.ok(existsSync(`${root}/deploy/docker/healthcheck.mjs`), 'the health check script exists')
})

t.test('.dockerignore: leaves out dependencies, runs, data, git and test output', async (t) => {
  const lines = readFileSync(`${root}/.dockerignore`, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  for (const p of ['node_modules', 'runs', 'data', '.git', '.tap', 'coverage', 'dist']) t.ok(lines.includes(p), `ignores ${p}`)
  for (const p of ['src', 'models', 'package.json', 'package-lock.json', 'openapi.yaml', 'deploy/docker', 'deploy']) {
    t.notOk(lines.includes(p), `keeps ${p}`)
  }
})

/** Runs the health check script; resolves with its exit code and output. */
function healthcheck(args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [`${root}/deploy/docker/healthcheck.mjs`, ...args], { env: { PATH: process.env.PATH ?? '', ...env } }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout }),
    )
  })
}

t.test('the health check script (run for real)', async (t) => {
  let status = 200
  const paths: string[] = []
  const server = createServer((req, res) => {
    paths.push(req.url ?? '')
    res.writeHead(status).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = String((server.address() as AddressInfo).port)
  t.equal((await healthcheck(['api'], { PORT: port })).code, 0, 'api: 200 -> healthy')
  t.equal(paths.at(-1), '/healthz', 'api: GET /healthz')
  t.equal((await healthcheck(['worker'], { WORKER_PORT: port })).code, 0, 'worker: 200 -> healthy')
  t.equal(paths.at(-1), '/readyz', 'worker: GET /readyz')
  status = 503
  t.equal((await healthcheck(['worker'], { WORKER_PORT: port })).code, 1, 'worker: 503 -> unhealthy')
  t.equal((await healthcheck(['api'], { PORT: port })).code, 1, 'api: 503 -> unhealthy')
  const none = await healthcheck(['worker'], { WORKER_PORT: '0' })
  t.equal(none.code, 0, 'worker without WORKER_PORT: nothing to probe, not unhealthy')
  t.match(none.out, /no endpoint/)
  server.close()
  t.equal((await healthcheck(['api'], { PORT: port })).code, 1, 'nothing listening -> unhealthy')
})
