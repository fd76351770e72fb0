/**
 * `npe classifier train|eval`: the attribute classifier of the evaluation (src/eval). Thin:
 * parses flags, picks the backend, prints; the work is in src/eval/train-classifier.ts and
 * src/eval/evaluate-classifier.ts.
 */
import { parseArgs } from 'node:util'
import { ATTRIBUTE_SCHEMA, type Split } from '../../data/facesjs.js'
import { BACKEND_PREFERENCES, initBackend } from '../../model/backend.js'
import { markdownTable } from '../../bench/timing.js'
import { disposeClassifier } from '../../eval/classifier.js'
import { loadClassifier } from '../../eval/classifier-dir.js'
import { loadEvalImages } from '../../eval/data.js'
import { evaluateClassifier, type ClassifierEvaluation } from '../../eval/evaluate-classifier.js'
import { trainClassifier, type ClassifierTrainProgress } from '../../eval/train-classifier.js'
import { UsageError, choiceFlag, intFlag, numberFlag } from '../flags.js'
import { formatDuration, progressReporter } from '../progress.js'

const USAGE = `usage: npe classifier train --data facesjs|DIR --out DIR [flags]
       npe classifier eval --model DIR [--data facesjs|DIR] [--split val|test] [--n N] [--json]

The attribute classifier behind 'npe eval' (the paper's CelebA attribute DenseNet, here a small
CNN with one softmax head per attribute: ${ATTRIBUTE_SCHEMA.map((t) => `${t.name} ${t.numClasses}`).join(', ')}).

train: faces rendered on the fly from the facesjs train split (--data facesjs), or the train
       split of a 'npe dataset' directory; then a held-out check on 500 val-split images,
       saved in DIR/classifier.json with the weights (DIR/weights.bin).
  --data facesjs|DIR   training data (required)
  --out DIR            output directory (required; replaced atomically, other files kept)
  --steps N            training steps (default 2000)
  --batch B            batch size (default 32)
  --size S             input resolution, a multiple of 8 (default 64)
  --seed K             initialisation and batch-order seed (default 0)
  --lr X               peak learning rate, cosine decay to 5% (default 1e-3)
  --val-n N            val-split images for the saved held-out check (default 500; 0: skip)
  --backend B          ${BACKEND_PREFERENCES.join(', ')} (default auto)
  --quiet              no progress output

eval: per-attribute accuracy on held-out images, next to the majority-class baseline.
  --model DIR          classifier directory (required)
  --data facesjs|DIR   labelled images (default facesjs)
  --split val|test     split (default test)
  --n N                images (default 1000)
  --batch B            inference batch (default 64)
  --json               print JSON instead of a markdown table
  --backend B          ${BACKEND_PREFERENCES.join(', ')} (default auto)
  --quiet              no progress output
  -h, --help           this help`

const pct = (v: number): string => (100 * v).toFixed(1)

/** The per-attribute accuracy table (markdown). */
export function accuracyTable(e: ClassifierEvaluation): string {
  const rows = Object.entries(e.perAttribute).map(([name, a]) => [name, a.classes, pct(a.accuracy), pct(a.majority), `${a.accuracy >= a.majority ? '+' : ''}${pct(a.accuracy - a.majority)}`])
  rows.push(['**mean**', '', pct(e.meanAccuracy), pct(e.meanMajority), `${e.meanAccuracy >= e.meanMajority ? '+' : ''}${pct(e.meanAccuracy - e.meanMajority)}`])
  return markdownTable(['attribute', 'classes', 'accuracy %', 'majority baseline %', 'gain (points)'], rows)
}

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        data: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string' },
        steps: { type: 'string' },
        batch: { type: 'string' },
        size: { type: 'string' },
        seed: { type: 'string' },
        lr: { type: 'string' },
        'val-n': { type: 'string' },
        split: { type: 'string' },
        n: { type: 'string' },
        json: { type: 'boolean', default: false },
        backend: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    console.error(`npe classifier: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values: v, positionals } = parsed
  if (v.help) {
    console.log(USAGE)
    return 0
  }
  const [what, ...extra] = positionals
  if ((what !== 'train' && what !== 'eval') || extra.length > 0) {
    console.error(`npe classifier: ${what ? `unknown subcommand '${positionals.join(' ')}'` : 'train or eval?'}\n\n${USAGE}`)
    return 2
  }
  try {
    const backend = choiceFlag('backend', v.backend, BACKEND_PREFERENCES, 'auto')
    if (what === 'train') {
      if (!v.data) throw new UsageError('--data is required')
      if (!v.out) throw new UsageError('--out is required')
      const flags = {
        data: v.data,
        out: v.out,
        steps: intFlag('steps', v.steps, 1, 10_000_000, 2000),
        batchSize: intFlag('batch', v.batch, 2, 4096, 32),
        size: intFlag('size', v.size, 8, 1024, 64),
        seed: intFlag('seed', v.seed, 0, 0xffffffff, 0),
        learningRate: numberFlag('lr', v.lr, 0, 1, 1e-3),
        valN: intFlag('val-n', v['val-n'], 0, 1_000_000, 500),
      }
      if (flags.size % 8 !== 0) throw new UsageError(`--size must be a multiple of 8, got ${flags.size}`)
      return await train(flags, backend, argv, v.quiet)
    }
    if (!v.model) throw new UsageError('--model is required')
    const flags = {
      model: v.model,
      data: v.data ?? 'facesjs',
      split: choiceFlag<Split>('split', v.split, ['val', 'test', 'train'], 'test'),
      n: intFlag('n', v.n, 1, 10_000_000, 1000),
      batch: intFlag('batch', v.batch, 1, 4096, 64),
    }
    return await evalCommand(flags, backend, v.json, v.quiet)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`npe classifier: ${err.message}\n\n${USAGE}`)
    return 2
  }
}

async function train(
  flags: { data: string; out: string; steps: number; batchSize: number; size: number; seed: number; learningRate: number; valN: number },
  backend: (typeof BACKEND_PREFERENCES)[number],
  argv: string[],
  quiet: boolean,
): Promise<number> {
  const info = await initBackend(backend)
  const progress = quiet
    ? undefined
    : progressReporter<ClassifierTrainProgress>(process.stderr, {
        line: (p) => {
          const secs = p.elapsedMs / 1000
          const rate = secs > 0 ? p.step / secs : 0
          const eta = rate > 0 ? (p.steps - p.step) / rate : NaN
          return (
            `classifier: step ${p.step}/${p.steps} (${((100 * p.step) / p.steps).toFixed(1)}%)  ${rate.toFixed(2)} steps/s  ` +
            `ETA ${formatDuration(eta)}  loss ${p.loss.toFixed(3)}  lr ${p.learningRate.toExponential(1)}`
          )
        },
        fraction: (p) => p.step / p.steps,
        lines: 20,
      })
  const note = (m: string) => (progress ? progress.note(m) : undefined)
  note(`classifier: backend ${info.name} (${info.package})`)
  try {
    const result = await trainClassifier({
      ...flags,
      metadata: { command: `npe classifier ${argv.join(' ')}`, backend: info.name },
      ...(progress ? { onProgress: progress.update, onNote: note } : {}),
    })
    progress?.end()
    console.log(
      `trained ${flags.steps} steps of ${flags.batchSize} in ${formatDuration(result.trainMs / 1000)} ` +
        `(${((1000 * flags.steps) / result.trainMs).toFixed(2)} steps/s, backend ${info.name}), final loss ${result.finalLoss.toFixed(3)}; saved to ${flags.out}`,
    )
    if (result.evaluation) console.log(`\nheld-out: ${result.evaluation.data}\n\n${accuracyTable(result.evaluation)}`)
    return 0
  } catch (err) {
    progress?.end()
    console.error(`npe classifier train: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
}

async function evalCommand(
  flags: { model: string; data: string; split: Split; n: number; batch: number },
  backend: (typeof BACKEND_PREFERENCES)[number],
  json: boolean,
  quiet: boolean,
): Promise<number> {
  await initBackend(backend)
  let loaded
  try {
    loaded = await loadClassifier(flags.model)
  } catch (err) {
    console.error(`npe classifier eval: ${(err as Error).message}`)
    return 1
  }
  const { classifier, json: meta } = loaded
  const progress = quiet
    ? undefined
    : progressReporter<{ what: string; done: number; total: number }>(process.stderr, {
        line: (p) => `classifier eval: ${p.what} ${p.done}/${p.total}`,
        fraction: (p) => (p.total > 0 ? p.done / p.total : 1),
        lines: 4,
      })
  try {
    const set = await loadEvalImages({
      data: flags.data,
      split: flags.split,
      n: flags.n,
      size: meta.config.resolution,
      onProgress: (done, total) => progress?.update({ what: 'loading', done, total }),
    })
    const evaluation = await evaluateClassifier(classifier, set, {
      batchSize: flags.batch,
      onProgress: (done, total) => progress?.update({ what: 'classifying', done, total }),
    })
    progress?.end()
    if (json) console.log(JSON.stringify({ classifier: flags.model, step: meta.step, ...evaluation }, null, 2))
    else console.log(`classifier ${flags.model} (step ${meta.step}) on ${evaluation.data}\n\n${accuracyTable(evaluation)}`)
    return 0
  } catch (err) {
    progress?.end()
    console.error(`npe classifier eval: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  } finally {
    disposeClassifier(classifier)
  }
}
