/**
 * deploy/k8s: renders every kustomization with `kubectl kustomize` (no cluster needed), validates
 * every object against the Kubernetes OpenAPI schemas (kubernetes-models, which validates with
 * @kubernetes-models/validate; KEDA's CRDs are checked by hand) and asserts the invariants the
 * service depends on: GPU placement, probes, pinned images, PDBs, grace periods vs the job
 * deadline, the KEDA list name vs BullMQ's key, the Redis NetworkPolicy, non-root read-only
 * containers, and a ConfigMap that holds only known, valid settings.
 *
 * Needs `kubectl` (1.27+, with kustomize) on PATH; without it the test fails and says so.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { QueueKeys } from 'bullmq'
import { parseAllDocuments } from 'yaml'
import { configSchema, loadConfig } from '../../src/config.js'

type Obj = Record<string, any>

const root = fileURLToPath(new URL('../..', import.meta.url))
const k8sDir = join(root, 'deploy/k8s')
const CONFIG_KEYS = Object.keys(configSchema.shape)

// ---------------------------------------------------------------------------------------------
// rendering

/** Why kubectl cannot render these kustomizations (components, replacements: kustomize v5), if it cannot. */
function kubectlProblem(): string | undefined {
  const r = spawnSync('kubectl', ['version', '--client', '-o', 'json'], { encoding: 'utf8' })
  if (r.error) return `kubectl is not on PATH (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`
  if (r.status !== 0) return `'kubectl version --client -o json' failed: ${r.stderr.trim()}`
  let v: { clientVersion?: { gitVersion?: string; minor?: string }; kustomizeVersion?: string }
  try {
    v = JSON.parse(r.stdout)
  } catch {
    return `cannot read 'kubectl version --client -o json': ${r.stdout.slice(0, 200)}`
  }
  const kustomizeMajor = Number(/^v?(\d+)/.exec(v.kustomizeVersion ?? '')?.[1] ?? 0)
  if (kustomizeMajor < 5) {
    return `kubectl ${v.clientVersion?.gitVersion ?? '?'} embeds kustomize ${v.kustomizeVersion ?? '(unknown)'}, too old for these manifests (components, replacements: kustomize v5, kubectl 1.27+; Debian bookworm's kubernetes-client is 1.20)`
  }
  return undefined
}

function findKustomizations(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...findKustomizations(p))
    else if (name === 'kustomization.yaml') out.push(dir)
  }
  return out.sort()
}

function kindOf(dir: string): string {
  const doc = parseAllDocuments(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as Obj
  return doc.kind ?? 'Kustomization'
}

function render(dir: string): Obj[] {
  const r = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
  if (r.error || r.status !== 0) throw new Error(`kubectl kustomize ${relative(root, dir)} failed: ${r.error?.message ?? r.stderr}`)
  const docs = parseAllDocuments(r.stdout)
  for (const d of docs) if (d.errors.length) throw new Error(`${relative(root, dir)}: ${d.errors[0]!.message}`)
  return docs.map((d) => d.toJS() as Obj).filter((o) => o && typeof o === 'object')
}

// ---------------------------------------------------------------------------------------------
// schema validation

const modelCache = new Map<string, any>()

/** The kubernetes-models class of apiVersion/kind, or undefined when it has none (CRDs). */
async function modelClass(apiVersion: string, kind: string): Promise<any> {
  const key = `${apiVersion}/${kind}`
  if (!modelCache.has(key)) {
    let cls: any
    try {
      const mod = await import(`kubernetes-models/${apiVersion}/${kind}`)
      cls = mod[kind]
    } catch {
      cls = undefined
    }
    modelCache.set(key, cls)
  }
  return modelCache.get(key)
}

const isStringMap = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v) && Object.values(v as Obj).every((x) => typeof x === 'string')

/** KEDA's CRDs (keda.sh/v1alpha1): the fields the operator requires, and their types. */
function validateKeda(o: Obj): string[] {
  const errors: string[] = []
  const spec = o.spec ?? {}
  if (!o.metadata?.name) errors.push('metadata.name is required')
  if (o.kind === 'ScaledObject') {
    if (typeof spec.scaleTargetRef?.name !== 'string') errors.push('spec.scaleTargetRef.name is required')
    if (!Array.isArray(spec.triggers) || spec.triggers.length === 0) errors.push('spec.triggers needs at least one trigger')
    for (const [i, tr] of (spec.triggers ?? []).entries()) {
      if (typeof tr.type !== 'string') errors.push(`spec.triggers[${i}].type is required`)
      // the CRD types trigger metadata as map[string]string: numbers must be quoted
      if (!isStringMap(tr.metadata)) errors.push(`spec.triggers[${i}].metadata must be a map of strings`)
      if (tr.authenticationRef !== undefined && typeof tr.authenticationRef.name !== 'string') errors.push(`spec.triggers[${i}].authenticationRef.name is required`)
    }
    for (const f of ['minReplicaCount', 'maxReplicaCount', 'pollingInterval', 'cooldownPeriod']) {
      if (spec[f] !== undefined && !Number.isInteger(spec[f])) errors.push(`spec.${f} must be an integer`)
    }
    if (Number.isInteger(spec.minReplicaCount) && Number.isInteger(spec.maxReplicaCount) && spec.minReplicaCount > spec.maxReplicaCount) {
      errors.push('minReplicaCount > maxReplicaCount')
    }
  } else if (o.kind === 'TriggerAuthentication') {
    const refs = spec.secretTargetRef
    if (!Array.isArray(refs) || refs.length === 0) errors.push('spec.secretTargetRef (the only kind used here) needs entries')
    for (const [i, r] of (refs ?? []).entries()) {
      for (const f of ['parameter', 'name', 'key']) if (typeof r[f] !== 'string') errors.push(`spec.secretTargetRef[${i}].${f} is required`)
    }
  } else {
    errors.push(`no check for keda.sh kind ${o.kind}`)
  }
  return errors
}

async function validate(o: Obj): Promise<string[]> {
  if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') return ['apiVersion and kind are required']
  if (o.apiVersion.startsWith('keda.sh/')) return validateKeda(o)
  const cls = await modelClass(o.apiVersion, o.kind)
  if (!cls) return [`no schema for ${o.apiVersion} ${o.kind}`]
  try {
    new cls(o).validate()
    return []
  } catch (err) {
    return [(err as Error).message]
  }
}

// ---------------------------------------------------------------------------------------------
// helpers over rendered objects

const byKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind)
const one = (objs: Obj[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata?.name === name)
const workloads = (objs: Obj[]) => objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(o.kind))
const podSpec = (w: Obj): Obj => w.spec.template.spec
const podLabels = (w: Obj): Obj => w.spec.template.metadata?.labels ?? {}
const containersOf = (w: Obj): Obj[] => [...(podSpec(w).initContainers ?? []), ...podSpec(w).containers]
const component = (w: Obj) => podLabels(w)['app.kubernetes.io/component']
const matches = (selector: Obj | undefined, labels: Obj) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v)
const deploymentOf = (objs: Obj[], comp: string) => byKind(objs, 'Deployment').find((d) => component(d) === comp)

function configOf(objs: Obj[]): Obj {
  const cms = byKind(objs, 'ConfigMap').filter((c) => c.metadata.name.startsWith('npe-config'))
  if (cms.length !== 1) throw new Error(`expected one npe-config ConfigMap, found ${cms.length}`)
  return cms[0]!
}

/** [name, tag] of an image reference; the tag is undefined when it has none. */
function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const [ref, digest] = image.split('@') as [string, string | undefined]
  const slash = ref.lastIndexOf('/')
  const colon = ref.lastIndexOf(':')
  return colon > slash ? { name: ref.slice(0, colon), tag: ref.slice(colon + 1), digest } : { name: ref, digest }
}

// ---------------------------------------------------------------------------------------------

const problem = kubectlProblem()
if (problem) {
  t.fail(`${problem}. These tests render deploy/k8s with 'kubectl kustomize' and need kubectl 1.27+ (kustomize v5) on PATH.`)
} else {
  const all = findKustomizations(k8sDir)
  const renderable = all.filter((d) => kindOf(d) === 'Kustomization')
  const overlays = renderable.filter((d) => relative(k8sDir, d).startsWith('overlays/'))
  const rendered = new Map<string, Obj[]>()
  for (const d of renderable) rendered.set(relative(k8sDir, d), render(d))

  t.test('the kustomizations: a base, overlays, components', async (t) => {
    const names = all.map((d) => relative(k8sDir, d))
    for (const expected of ['base', 'overlays/gpu', 'overlays/cpu', 'components/keda']) t.ok(names.includes(expected), expected)
    t.ok(overlays.length >= 2, 'at least the gpu and cpu overlays')
    for (const d of all.filter((d) => kindOf(d) === 'Component')) {
      const used = overlays.some((o) => readFileSync(join(o, 'kustomization.yaml'), 'utf8').includes(`components/${relative(join(k8sDir, 'components'), d)}`))
      t.ok(used, `${relative(k8sDir, d)} is used by an overlay (so it is rendered and checked here)`)
    }
  })

  t.test('the validator rejects bad objects (sanity check of the schema validation)', async (t) => {
    const bad = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x' },
      spec: { replicas: 'two', selector: { matchLabels: { a: 'b' } }, template: { spec: { containers: [{ image: 'x:1' }] } } },
    }
    const errors = await validate(bad)
    t.match(errors.join('\n'), /replicas/)
    t.match(errors.join('\n'), /name/)
    t.same(await validate({ apiVersion: 'example.com/v1', kind: 'Widget' }), ['no schema for example.com/v1 Widget'])
    t.ok(validateKeda({ apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'x' }, spec: { scaleTargetRef: { name: 'w' }, triggers: [{ type: 'redis', metadata: { listLength: 16 } }] } }).length > 0, 'unquoted KEDA metadata is refused')
  })

  for (const [name, objs] of rendered) {
    t.test(`${name}: every object is schema-valid`, async (t) => {
      t.ok(objs.length > 0, 'renders objects')
      for (const o of objs) {
        const errors = await validate(o)
        t.same(errors, [], `${o.kind}/${o.metadata?.name}`)
      }
      const namespaced = objs.filter((o) => o.kind !== 'Namespace')
      const namespaces = new Set(namespaced.map((o) => o.metadata.namespace))
      t.equal(namespaces.size, 1, `one namespace for everything (${[...namespaces].join(', ')})`)
      const ns = byKind(objs, 'Namespace')[0]
      t.ok(ns, 'the Namespace object is rendered')
      t.equal(ns?.metadata.name, [...namespaces][0], 'and is the namespace of the objects')
      t.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted', 'Pod Security restricted is enforced')
      t.equal(byKind(objs, 'Secret').length, 0, 'no Secret is rendered (keys are created out of band, never committed)')
    })
  }

  t.test('base: the app images are placeholders every overlay replaces', async (t) => {
    const base = rendered.get('base')!
    const images = workloads(base).flatMap(containersOf).map((c) => c.image)
    t.ok(images.includes('npe-api') && images.includes('npe-worker'), 'base uses npe-api / npe-worker')
    for (const o of overlays) {
      const rel = relative(k8sDir, o)
      const left = workloads(rendered.get(rel)!).flatMap(containersOf).filter((c) => ['npe-api', 'npe-worker'].includes(splitImage(c.image).name))
      t.same(left.map((c) => c.name), [], `${rel} maps both placeholders to released images`)
    }
  })

  for (const dir of overlays) {
    const name = relative(k8sDir, dir)
    const objs = rendered.get(name)!
    const gpu = name.includes('gpu')

    t.test(`${name}: invariants`, async (t) => {
      const config = configOf(objs)
      const data: Obj = config.data ?? {}
      const api = deploymentOf(objs, 'api')
      const worker = deploymentOf(objs, 'worker')
      if (!api || !worker) throw new Error('an api and a worker Deployment are required')
      const deadlineS = Number(data.JOB_DEADLINE_MS ?? configSchema.shape.JOB_DEADLINE_MS.parse(undefined)) / 1000
      const effectiveRedisUrl = (c: Obj) => (c.env ?? []).find((e: Obj) => e.name === 'REDIS_URL')

      t.test('ConfigMap: only known settings, valid, no secrets', async (t) => {
        const unknown = Object.keys(data).filter((k) => !CONFIG_KEYS.includes(k))
        t.same(unknown, [], 'every key is a variable of src/config.ts')
        t.notOk('API_KEYS' in data, 'API_KEYS is not in the ConfigMap (it is a Secret)')
        const absent = CONFIG_KEYS.filter((k) => !(k in data) && k !== 'API_KEYS' && !(k === 'REDIS_URL' && !byKind(objs, 'StatefulSet').some((s) => component(s) === 'redis')))
        t.same(absent, [], 'every setting of src/config.ts is in the ConfigMap (add new ones to deploy/k8s/base/config.env)')
        t.doesNotThrow(() => loadConfig(data), 'the values pass the config schema')
        for (const w of [api, worker]) {
          for (const c of podSpec(w).containers) {
            const refs = (c.envFrom ?? []).map((e: Obj) => e.configMapRef?.name)
            t.ok(refs.includes(config.metadata.name), `${w.metadata.name}/${c.name} reads the (generated) ConfigMap`)
            for (const e of c.env ?? []) {
              const known = CONFIG_KEYS.includes(e.name) || /^(TF_|CUDA_|NVIDIA_)/.test(e.name)
              t.ok(known, `${w.metadata.name}/${c.name} env ${e.name} is a setting (or a TF/CUDA variable)`)
            }
          }
        }
        const apiKeys = (podSpec(api).containers[0].env ?? []).find((e: Obj) => e.name === 'API_KEYS')
        t.ok(apiKeys?.valueFrom?.secretKeyRef?.name, 'the API reads API_KEYS from a Secret')
      })

      t.test('images: pinned tags, never latest', async (t) => {
        for (const w of workloads(objs)) {
          for (const c of containersOf(w)) {
            const { name: img, tag } = splitImage(c.image)
            t.ok(tag, `${w.metadata.name}/${c.name}: ${c.image} has a tag`)
            t.not(tag, 'latest', `${w.metadata.name}/${c.name}: not latest`)
            t.match(tag ?? '', /\d/, `${w.metadata.name}/${c.name}: the tag names a version`)
            t.not(c.imagePullPolicy, 'Always', `${w.metadata.name}/${c.name}: a pinned tag needs no Always pull`)
            if (component(w) !== 'redis') t.match(img, /^ghcr\.io\/[^/]+\/neural-photo-editor$/, `${w.metadata.name}/${c.name}: the release image`)
          }
        }
        const workerTag = splitImage(podSpec(worker).containers[0].image).tag
        const apiTag = splitImage(podSpec(api).containers[0].image).tag
        t.match(workerTag, gpu ? /-gpu$/ : /-cpu$/, 'the worker runs the image of its backend')
        t.match(apiTag, /-cpu$/, 'the API runs the cpu image (it needs no GPU)')
      })

      t.test('GPU placement', async (t) => {
        const gpuLimit = (c: Obj) => c.resources?.limits?.['nvidia.com/gpu']
        for (const c of podSpec(api).containers) {
          t.equal(gpuLimit(c), undefined, `api/${c.name}: no GPU limit`)
          t.equal(c.resources?.requests?.['nvidia.com/gpu'], undefined, `api/${c.name}: no GPU request`)
        }
        t.notOk(JSON.stringify(podSpec(api)).includes('nvidia.com/gpu'), 'the API pods neither select nor tolerate GPU nodes')
        for (const w of workloads(objs).filter((w) => w !== worker)) {
          t.notOk(JSON.stringify(podSpec(w).containers).includes('nvidia.com/gpu'), `${w.metadata.name}: no GPU`)
        }
        const wc = podSpec(worker).containers
        if (gpu) {
          t.equal(data.TFJS_BACKEND, 'gpu', 'TFJS_BACKEND=gpu')
          for (const c of wc) {
            t.equal(Number(gpuLimit(c)), 1, `worker/${c.name}: nvidia.com/gpu: 1 in limits`)
            t.equal(c.resources?.requests?.['nvidia.com/gpu'], undefined, `worker/${c.name}: not in requests (limits only)`)
            const mount = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/var/cache/cuda')
            t.ok(mount, `worker/${c.name}: a volume for the CUDA compile cache at /var/cache/cuda`)
            const vol = (podSpec(worker).volumes ?? []).find((v: Obj) => v.name === mount?.name)
            t.ok(vol?.emptyDir || vol?.persistentVolumeClaim || vol?.ephemeral, 'the cache volume is an emptyDir, PVC or ephemeral volume')
            const env = Object.fromEntries((c.env ?? []).map((e: Obj) => [e.name, e.value]))
            t.equal(env.TF_FORCE_GPU_ALLOW_GROWTH, 'true')
            t.equal(env.CUDA_CACHE_PATH, '/var/cache/cuda')
          }
          t.equal(podSpec(worker).nodeSelector?.['nvidia.com/gpu.present'], 'true', 'GPU node selector')
          const tol = (podSpec(worker).tolerations ?? []).find((x: Obj) => x.key === 'nvidia.com/gpu')
          t.match(tol, { operator: 'Exists', effect: 'NoSchedule' }, 'tolerates the nvidia.com/gpu taint')
        } else {
          t.equal(data.TFJS_BACKEND, 'wasm', 'TFJS_BACKEND=wasm')
          t.notOk(JSON.stringify(objs).includes('nvidia.com/gpu'), 'nothing asks for a GPU')
        }
      })

      t.test('probes, resources, grace periods', async (t) => {
        const a = podSpec(api).containers[0]
        const port = (p: Obj) => p?.httpGet?.port
        t.equal(a.livenessProbe?.httpGet?.path, '/healthz', 'API liveness: /healthz')
        t.equal(a.readinessProbe?.httpGet?.path, '/readyz', 'API readiness: /readyz')
        t.ok(a.startupProbe?.httpGet?.path, 'API startupProbe')
        const httpPort = (a.ports ?? []).find((p: Obj) => p.name === port(a.livenessProbe))
        t.equal(String(httpPort?.containerPort), String(data.PORT), 'the probed port is PORT')
        const wc = podSpec(worker).containers[0]
        t.equal(wc.readinessProbe?.httpGet?.path, '/readyz', 'worker readiness: /readyz (ready once the model is loaded)')
        t.equal(wc.startupProbe?.httpGet?.path, '/readyz', 'worker startupProbe: /readyz')
        const probePort = (wc.ports ?? []).find((p: Obj) => p.name === port(wc.readinessProbe))
        t.ok(Number(data.WORKER_PORT) > 0, 'WORKER_PORT is set (else the worker has no probe endpoint)')
        t.equal(String(probePort?.containerPort), String(data.WORKER_PORT), 'the probed port is WORKER_PORT')
        for (const w of workloads(objs)) {
          for (const c of containersOf(w)) {
            for (const r of ['cpu', 'memory']) {
              t.ok(c.resources?.requests?.[r], `${w.metadata.name}/${c.name}: requests.${r}`)
              t.ok(c.resources?.limits?.[r], `${w.metadata.name}/${c.name}: limits.${r}`)
            }
          }
        }
        t.ok(podSpec(worker).terminationGracePeriodSeconds > deadlineS, `worker grace ${podSpec(worker).terminationGracePeriodSeconds} s > JOB_DEADLINE_MS ${deadlineS} s`)
        t.ok(podSpec(api).terminationGracePeriodSeconds > deadlineS, `API grace ${podSpec(api).terminationGracePeriodSeconds} s > JOB_DEADLINE_MS ${deadlineS} s`)
        t.notOk('replicas' in worker.spec, 'the worker Deployment leaves replicas to its autoscaler')
      })

      t.test('PodDisruptionBudgets for the API and the workers', async (t) => {
        const pdbs = byKind(objs, 'PodDisruptionBudget')
        for (const w of [api, worker]) {
          const pdb = pdbs.find((p) => matches(p.spec.selector?.matchLabels, podLabels(w)))
          t.ok(pdb, `a PDB selects ${w.metadata.name}`)
          if (pdb && w === worker) t.ok(pdb.spec.maxUnavailable !== undefined, 'the worker PDB uses maxUnavailable (it still allows a drain at one replica)')
        }
      })

      t.test('security: non-root, read-only root filesystem, no privileges', async (t) => {
        for (const w of workloads(objs)) {
          const ps = podSpec(w)
          t.equal(ps.automountServiceAccountToken, false, `${w.metadata.name}: no service account token`)
          t.notOk(ps.hostNetwork || ps.hostPID || ps.hostIPC, `${w.metadata.name}: no host namespaces`)
          t.notOk((ps.volumes ?? []).some((v: Obj) => v.hostPath), `${w.metadata.name}: no hostPath volumes`)
          for (const c of containersOf(w)) {
            const sc = c.securityContext ?? {}
            const psc = ps.securityContext ?? {}
            const id = `${w.metadata.name}/${c.name}`
            t.equal(sc.runAsNonRoot ?? psc.runAsNonRoot, true, `${id}: runAsNonRoot`)
            const uid = sc.runAsUser ?? psc.runAsUser
            t.ok(uid === undefined || uid > 0, `${id}: a non-zero UID`)
            t.equal(sc.readOnlyRootFilesystem, true, `${id}: readOnlyRootFilesystem`)
            t.equal(sc.allowPrivilegeEscalation, false, `${id}: allowPrivilegeEscalation false`)
            t.notOk(sc.privileged, `${id}: not privileged`)
            t.ok((sc.capabilities?.drop ?? []).includes('ALL'), `${id}: drops ALL capabilities`)
            t.notOk(sc.capabilities?.add?.length, `${id}: adds none`)
            t.equal((sc.seccompProfile ?? psc.seccompProfile)?.type, 'RuntimeDefault', `${id}: seccomp RuntimeDefault`)
            t.ok((c.volumeMounts ?? []).some((m: Obj) => m.mountPath === '/tmp'), `${id}: a writable /tmp`)
          }
        }
      })

      t.test('Redis: in-cluster (noeviction, PVC, NetworkPolicy) or external (REDIS_URL from a Secret)', async (t) => {
        const redis = byKind(objs, 'StatefulSet').find((s) => component(s) === 'redis')
        const scaled = byKind(objs, 'ScaledObject')
        if (!redis) {
          t.notOk('REDIS_URL' in data, 'external Redis: no in-cluster REDIS_URL left in the ConfigMap')
          for (const w of [api, worker]) {
            const e = effectiveRedisUrl(podSpec(w).containers[0])
            t.ok(e?.valueFrom?.secretKeyRef?.name, `${w.metadata.name}: REDIS_URL from a Secret`)
          }
          t.equal(byKind(objs, 'NetworkPolicy').length, 0, 'no NetworkPolicy for a Redis that is not here')
          return
        }
        const rc = podSpec(redis).containers[0]
        const args = [...(rc.command ?? []), ...(rc.args ?? [])].join(' ')
        t.match(args, /--maxmemory-policy noeviction/, 'noeviction (BullMQ)')
        t.match(args, /--appendonly yes/, 'AOF persistence')
        t.ok((redis.spec.volumeClaimTemplates ?? []).some((v: Obj) => (rc.volumeMounts ?? []).some((m: Obj) => m.name === v.metadata.name && m.mountPath === '/data')), 'a PVC at /data')
        // REDIS_URL names a Service that selects the Redis pods
        const url = new URL(data.REDIS_URL)
        const svc = one(objs, 'Service', url.hostname)
        t.ok(svc, `REDIS_URL names the Service ${url.hostname}`)
        t.ok(matches(svc?.spec.selector, podLabels(redis)), 'which selects the Redis pods')
        t.ok((svc?.spec.ports ?? []).some((p: Obj) => String(p.port) === (url.port || '6379')), 'on the port of REDIS_URL')
        // NetworkPolicy: selects Redis, only api and worker (and the KEDA operator when KEDA scales) on 6379
        const nps = byKind(objs, 'NetworkPolicy').filter((n) => matches(n.spec.podSelector?.matchLabels, podLabels(redis)))
        t.equal(nps.length, 1, 'one NetworkPolicy selects the Redis pods')
        const np = nps[0]!
        t.ok((np.spec.policyTypes ?? []).includes('Ingress'), 'it restricts ingress')
        const peers: Obj[] = []
        for (const rule of np.spec.ingress ?? []) {
          t.ok(Array.isArray(rule.from) && rule.from.length > 0, 'every rule names its peers (no open rule)')
          t.same((rule.ports ?? []).map((p: Obj) => `${p.protocol ?? 'TCP'}/${p.port}`), ['TCP/6379'], 'only 6379')
          peers.push(...(rule.from ?? []))
        }
        const appPeers = peers.filter((p) => !p.namespaceSelector && !p.ipBlock)
        const otherPeers = peers.filter((p) => p.namespaceSelector || p.ipBlock)
        for (const w of [api, worker]) t.ok(appPeers.some((p) => matches(p.podSelector?.matchLabels, podLabels(w))), `${w.metadata.name} may connect`)
        for (const p of appPeers) {
          t.ok([api, worker].some((w) => matches(p.podSelector?.matchLabels, podLabels(w))), `peer ${JSON.stringify(p.podSelector)} is the api or the worker`)
        }
        for (const p of otherPeers) {
          t.notOk(p.ipBlock, 'no ipBlock peers')
          t.ok(scaled.length > 0, 'a peer from another namespace only where KEDA scales the workers')
          t.equal(p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'], 'keda', 'that peer is in the keda namespace')
          t.equal(p.podSelector?.matchLabels?.app, 'keda-operator', 'and is the KEDA operator')
        }
        t.notOk(objs.some((o) => o.kind === 'Service' && o.metadata.labels?.['app.kubernetes.io/component'] === 'redis' && o.spec.type && o.spec.type !== 'ClusterIP'), 'Redis is not exposed outside the cluster')
      })

      t.test('worker autoscaling: KEDA on the BullMQ wait list (or an HPA fallback)', async (t) => {
        const scaled = byKind(objs, 'ScaledObject').filter((s) => s.spec.scaleTargetRef.name === worker.metadata.name)
        const hpas = byKind(objs, 'HorizontalPodAutoscaler').filter((h) => h.spec.scaleTargetRef.name === worker.metadata.name)
        t.equal(scaled.length + hpas.length, 1, 'exactly one autoscaler owns the worker count')
        for (const h of byKind(objs, 'HorizontalPodAutoscaler')) {
          t.ok(one(objs, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name), `HPA ${h.metadata.name} targets an object that exists`)
        }
        if (hpas.length) {
          t.ok(hpas[0]!.spec.minReplicas >= 1, 'the fallback HPA keeps a worker')
          return
        }
        const so = scaled[0]!
        const trigger = so.spec.triggers.find((x: Obj) => x.type === 'redis')
        t.ok(trigger, 'a redis trigger')
        const prefix = data.REDIS_PREFIX ?? 'npe'
        const queue = data.QUEUE_NAME ?? 'npe'
        const waitKey = new QueueKeys(prefix).toKey(queue, 'wait')
        t.equal(waitKey, `${prefix}:${queue}:wait`, "BullMQ's wait list is <REDIS_PREFIX>:<QUEUE_NAME>:wait")
        t.equal(trigger.metadata.listName, waitKey, `listName is the wait list of the ConfigMap's queue (${waitKey})`)
        t.ok(Number(trigger.metadata.listLength) > 0, 'a listLength target')
        t.ok(so.spec.minReplicaCount >= 1 && so.spec.maxReplicaCount >= so.spec.minReplicaCount, 'min >= 1 <= max replicas')
        if (trigger.authenticationRef) {
          t.ok(one(objs, 'TriggerAuthentication', trigger.authenticationRef.name), 'the TriggerAuthentication exists')
        } else {
          // the operator runs in another namespace: the address must be the Service's FQDN
          const url = new URL(data.REDIS_URL)
          const svc = one(objs, 'Service', url.hostname)
          t.equal(trigger.metadata.address, `${url.hostname}.${svc?.metadata.namespace}.svc.cluster.local:${url.port || '6379'}`, 'address: the Redis Service FQDN in this namespace')
          t.equal(trigger.metadata.databaseIndex ?? '0', url.pathname.replace('/', '') || '0', 'the database of REDIS_URL')
        }
      })

      t.test('API exposure: Service, Ingress, HPA', async (t) => {
        const svc = byKind(objs, 'Service').find((s) => matches(s.spec.selector, podLabels(api)))
        t.ok(svc, 'a Service selects the API pods')
        const ing = byKind(objs, 'Ingress')[0]
        const backend = ing?.spec.rules?.[0]?.http?.paths?.[0]?.backend?.service
        t.equal(backend?.name, svc?.metadata.name, 'the Ingress routes to that Service')
        t.ok((svc?.spec.ports ?? []).some((p: Obj) => p.name === backend?.port?.name || p.port === backend?.port?.number), 'on one of its ports')
        const hpa = byKind(objs, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === api.metadata.name)
        t.ok(hpa?.spec.metrics?.some((m: Obj) => m.type === 'Resource' && m.resource?.name === 'cpu'), 'the API scales on CPU')
        t.ok(hpa && hpa.spec.minReplicas >= 2, 'at least two API replicas')
        t.ok(api.spec.replicas >= 2, 'the API Deployment starts with two replicas')
      })
    })
  }
}
