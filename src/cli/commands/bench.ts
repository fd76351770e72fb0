/** `npe bench model|editor|service`: benchmarks that print markdown tables. */
import { parseArgs } from 'node:util'
import os from 'node:os'
import { BACKEND_PREFERENCES, type BackendPreference } from '../../model/backend.js'
import { PRESET_NAMES } from '../../model/config.js'
import { benchModel } from '../../bench/model.js'
import { benchEditor } from '../../bench/editor.js'
import { loadCheckpoint } from '../../model/checkpoint-dir.js'
import { createIAN } from '../../model/networks.js'
import { presetConfig } from '../../model/config.js'

const USAGE = `usage: npe bench model [--preset P] [--backends gpu,node,wasm,cpu] [--reps N] [--train-batch B] [--json]
       npe bench editor [--model DIR | --preset P] [--backends ...] [--reps N] [--photo-size S]

  model     G forward (batch 1 and 16), gradient w.r.t. z (batch 1) and one training
            step, per backend, with FLOPs and achieved GFLOP/s.
  editor    p50/p95 of encode, a 1- and a 10-point stroke and sample, batch 1 and 8, and
            the cost of one paint step relative to one generator forward.

flags:
  --preset P         model preset (${PRESET_NAMES.join(', ')}; default small-64)
  --backends LIST    backends to try, in order (default: gpu,node,wasm,cpu; missing ones are skipped)
  --reps N           timed repetitions per operation (default 10; the cpu backend uses N/4)
  --train-batch B    batch of the training step (default 16)
  --json             print JSON rows instead of a table`

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
