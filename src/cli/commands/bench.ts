/** `npe bench model|editor|service`: benchmarks that print markdown tables. */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import os from 'node:os'
import { BACKEND_PREFERENCES, type BackendPreference } from '../../model/backend.js'
import { PRESET_NAMES } from '../../model/config.js'
import { benchModel } from '../../bench/model.js'
import { benchEditor } from '../../bench/editor.js'
import { benchService, serviceTables } from '../../bench/service.js'
import { intFlag, UsageError } from '../flags.js'
import { loadCheckpoint } from '../../model/checkpoint-dir.js'
import { createIAN } from '../../model/networks.js'
import { presetConfig } from '../../model/config.js'

const USAGE = `usage: npe bench model [--preset P] [--backends gpu,node,wasm,cpu] [--reps N] [--train-batch B] [--json]
       npe bench editor [--model DIR | --preset P] [--backends ...] [--reps N] [--photo-size S]
       npe bench service [--model DIR] [--preset P] [--requests N] [--workers W] [--backend B]
                         [--redis URL] [--photo-size S] [--json]

  model     G forward (batch 1 and 16), gradient w.r.t. z (batch 1) and one training
            step, per backend, with FLOPs and achieved GFLOP/s.
  editor    p50/p95 of encode, a 1- and a 10-point stroke and sample, batch 1 and 8, and
            the cost of one paint step relative to one generator forward.
  service   p50/p95 of POST /edit end to end, embedded and through BullMQ + Redis with W
            worker processes, against the same 1-point edit in process (the ratio is the
            service overhead), the parts of that round trip, and edits/s with 1, 4 and 16
            concurrent sessions, worker batching off (BATCH_MAX=1) and on (16, 5 ms).

flags:
  --preset P         model preset (${PRESET_NAMES.join(', ')}; default small-64)
  --backends LIST    backends to try, in order (default: gpu,node,wasm,cpu; missing ones are skipped)
  --reps N           timed repetitions per operation (default 10; the cpu backend uses N/4)
  --train-batch B    batch of the training step (default 16)
  --json             print JSON rows instead of a table

service flags:
  --model DIR        checkpoint (default models/default; when that is missing, an untrained
                     --preset model in a temp dir)
  --requests N       edits per measurement (default 40; throughput: about N per level, >= 4 per client)
  --workers W        worker processes in queue mode (default 1)
  --backend B        TensorFlow.js backend here and in the workers (${BACKEND_PREFERENCES.join('|')}; default auto)
  --redis URL        Redis for queue mode (default $REDIS_URL or redis://127.0.0.1:6379); keys go
                     under a fresh prefix bench-<uuid> and are deleted at the end
  --photo-size S     the test photo is S x S (default 256)`

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        preset: { type: 'string', default: 'small-64' },
        backends: { type: 'string', default: 'gpu,node,wasm,cpu' },
        reps: { type: 'string', default: '10' },
        'train-batch': { type: 'string', default: '16' },
        json: { type: 'boolean', default: false },
        model: { type: 'string' },
        'photo-size': { type: 'string', default: '256' },
        requests: { type: 'string' },
        workers: { type: 'string' },
        backend: { type: 'string' },
        redis: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    console.error(`npe bench: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  const [what] = positionals
  if (what === 'service') return runService(values)
  if (what !== 'model' && what !== 'editor') {
    console.error(`npe bench: ${what ? `unknown benchmark '${what}'` : 'which benchmark?'}\n\n${USAGE}`)
    return 2
  }
  const backends = values.backends.split(',').map((b) => b.trim()) as BackendPreference[]
  const bad = backends.filter((b) => b === 'auto' || !BACKEND_PREFERENCES.includes(b))
  const reps = Number(values.reps)
  const trainBatch = Number(values['train-batch'])
  if (bad.length || !Number.isInteger(reps) || reps < 1 || !Number.isInteger(trainBatch) || trainBatch < 2) {
    console.error(`npe bench: invalid --backends, --reps or --train-batch\n\n${USAGE}`)
    return 2
  }
  if (!PRESET_NAMES.includes(values.preset as (typeof PRESET_NAMES)[number])) {
    console.error(`npe bench: unknown preset '${values.preset}' (known: ${PRESET_NAMES.join(', ')})`)
    return 2
  }
  const log = (line: string) => console.error(line)
  if (what === 'editor') {
    const photoSize = Number(values['photo-size'])
    if (!Number.isInteger(photoSize) || photoSize < 16 || photoSize > 8192) {
      console.error(`npe bench: --photo-size must be an integer in 16..8192\n\n${USAGE}`)
      return 2
    }
    const modelDir = values.model
    const loadModel = async () => (modelDir ? (await loadCheckpoint(modelDir)).model : createIAN(presetConfig(values.preset), 0))
    log(`bench editor: ${modelDir ? `model ${modelDir}` : `untrained ${values.preset}`}, photo ${photoSize}x${photoSize}, ${os.cpus().length} CPU(s), node ${process.version}`)
    const result = await benchEditor({ loadModel, backends: backends as Exclude<BackendPreference, 'auto'>[], reps, photoSize, log })
    for (const s of result.skipped) log(`  skipped ${s}`)
    console.log(result.table)
    for (const r of result.ratios) console.log(r)
    return 0
  }
  log(`bench model: preset ${values.preset}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}, node ${process.version}`)
  const result = await benchModel({ preset: values.preset, backends: backends as Exclude<BackendPreference, 'auto'>[], reps, trainBatch, log })
  for (const s of result.skipped) log(`  skipped ${s}`)
  console.log(values.json ? JSON.stringify(result.rows, null, 2) : result.table)
  return 0
}

async function runService(values: {
  model?: string
  preset: string
  requests?: string
  workers?: string
  backend?: string
  redis?: string
  'photo-size': string
  json: boolean
}): Promise<number> {
  let requests: number, workers: number, photoSize: number
  try {
    requests = intFlag('requests', values.requests, 1, 100_000, 40)
    workers = intFlag('workers', values.workers, 1, 64, 1)
    photoSize = intFlag('photo-size', values['photo-size'], 16, 4096, 256)
  } catch (err) {
    console.error(`npe bench service: ${(err as UsageError).message}\n\n${USAGE}`)
    return 2
  }
  const backend = (values.backend ?? 'auto') as BackendPreference
  if (!BACKEND_PREFERENCES.includes(backend)) {
    console.error(`npe bench service: --backend must be one of ${BACKEND_PREFERENCES.join(', ')}, got '${values.backend}'`)
    return 2
  }
  if (!PRESET_NAMES.includes(values.preset as (typeof PRESET_NAMES)[number])) {
    console.error(`npe bench service: unknown preset '${values.preset}' (known: ${PRESET_NAMES.join(', ')})`)
    return 2
  }
  if (values.model !== undefined && !existsSync(join(values.model, 'checkpoint.json'))) {
    console.error(`npe bench service: no checkpoint at ${values.model} (checkpoint.json); leave out --model to fall back to an untrained --preset model`)
    return 2
  }
  const redisUrl = values.redis ?? (process.env.REDIS_URL || 'redis://127.0.0.1:6379')
  const log = (line: string) => console.error(line)
  const result = await benchService({
    modelDir: values.model ?? 'models/default',
    fallback: values.model === undefined,
    preset: values.preset,
    requests,
    workers,
    backend,
    redisUrl,
    photoSize,
    log,
  })
  if (values.json) {
    console.log(JSON.stringify(result, null, 2))
    return 0
  }
  const t = serviceTables(result)
  console.log(`model: ${result.model}`)
  console.log(`machine: ${result.machine}`)
  console.log(`settings: ${result.settings.requests} edits per measurement, ${result.settings.workers} worker(s) (${result.settings.workerLaunch}), photo ${result.settings.photoSize}x${result.settings.photoSize}, Redis ${result.settings.redis}`)
  console.log(`\n/edit latency, 1-point stroke, sequential (service modes with batching off):\n\n${t.latency}`)
  if (result.components.length) console.log(`\nparts of an edit, measured one by one:\n\n${t.components}`)
  if (result.throughput.length) console.log(`\nqueue-mode throughput, ${result.settings.workers} worker(s), concurrent clients with one session each:\n\n${t.throughput}`)
  for (const n of result.notes) console.log(`\nnote: ${n}`)
  return 0
}
