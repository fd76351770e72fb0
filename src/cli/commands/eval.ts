/**
 * `npe eval --model M [--model M2 ...]`: the paper's Table 2 measures for IAN checkpoints, one
 * row per model (src/eval/evaluate.ts does the work; this file parses flags and prints).
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { tileImages } from '../../data/grid.js'
import { encodePng } from '../../data/image.js'
import type { Split } from '../../data/facesjs.js'
import { markdownTable } from '../../bench/timing.js'
import { BACKEND_PREFERENCES, initBackend } from '../../model/backend.js'
import { loadCheckpoint } from '../../model/checkpoint-dir.js'
import { disposeIAN } from '../../model/networks.js'
import type { ModelConfig } from '../../model/config.js'
import { disposeClassifier } from '../../eval/classifier.js'
import { loadClassifier } from '../../eval/classifier-dir.js'
import { loadEvalImages, type LabelledImages } from '../../eval/data.js'
import { evaluate, type EvalProgress, type EvalResult } from '../../eval/evaluate.js'
import type { InceptionScores } from '../../eval/metrics.js'
import { UsageError, choiceFlag, intFlag } from '../flags.js'
import { formatDuration, progressReporter } from '../progress.js'

const USAGE = `usage: npe eval --model DIR [--model DIR2 ...] [--data facesjs|DIR] [--split test] [--n 1000] [flags]

The paper's Table 2 measures (section 5.2) for each IAN checkpoint, one row per model, with the
attribute classifier (npe classifier train) in place of the paper's CelebA DenseNet:
  pixel MSE / RMSE / L1   G(E(X)) vs X on held-out images, [-1, 1] units, mean over images;
                          RMSE is our reading of the paper's "pixel L2" (0.192 IAN, 0.295 VAE/GAN)
  feature L2              ||h(X) - h(G(E(X)))||_2 in the classifier's last hidden layer
  trait error             % of (image, attribute) pairs whose predicted class changes in G(E(X))
  HF ratio / checker      G(E(X))'s Laplacian energy and (pi, pi) power over X's: 1 as sharp as
                          the data, < 1 blurred, >> 1 speckled / checkerboarded
  inception               exp(E KL(p(y|x) || p(y))) of --samples samples G(z), z ~ N(0, I):
                          product over the attribute heads (mean +- std over --splits groups)
                          and the per-head geometric mean; the real images' scores for reference

flags:
  --model DIR          IAN checkpoint directory (required; repeat to compare models)
  --data facesjs|DIR   held-out images: facesjs faces, a 'npe dataset' directory, or any image
                       folder (split ignored) (default facesjs)
  --split S            test, val or train (default test)
  --n N                held-out images (default 1000)
  --samples N          samples for the inception scores (default 10000; 0 skips them)
  --splits K           groups for the inception scores' mean and std (default 10)
  --classifier DIR     attribute classifier (default models/classifier)
  --seed K             seed of the sampled latents (default 0)
  --batch B            inference batch (default 64)
  --grid FILE          also write a PNG: row 1 the first --grid-n held-out images, then one row
                       of their reconstructions G(E(X)) per --model, in order
  --grid-n K           images in that picture (default 16)
  --json               print the results as JSON
  --backend B          ${BACKEND_PREFERENCES.join(', ')} (default auto)
  --quiet              no progress output
  -h, --help           this help`

interface ModelRow {
  model: string
  step: number
  config: ModelConfig
  result: EvalResult
}

const f = (v: number, digits = 3): string => (Number.isFinite(v) ? v.toFixed(digits) : String(v))
const pct = (v: number): string => (Number.isFinite(v) ? (100 * v).toFixed(1) : String(v))
const is = (s: InceptionScores | undefined): string => (s ? `${f(s.product.mean, 1)} ± ${f(s.product.std, 1)}` : '-')
const geo = (s: InceptionScores | undefined): string => (s ? f(s.geometricMean.mean, 3) : '-')
const mark = (b: boolean): string => (b ? '✓' : '✗')

/** The markdown report: the summary table (one row per model + the real images), then per attribute. */
export function evalTables(rows: ModelRow[], split: string): string {
  const real = rows[0]?.result.realInception
  const summary = markdownTable(
    ['model', 'step', 'MDC', 'ortho', 'ternary', 'pixel MSE', 'pixel RMSE', 'pixel L1', 'feature L2', 'feature L2 rel.', 'trait err %', 'HF ratio', 'checker ratio', 'inception (product)', 'inception (geo. mean)'],
    [
      ...rows.map((r) => [
        r.model,
        r.step,
        mark(r.config.mdc.enabled),
        mark(r.config.orthoWeight > 0),
        mark(r.config.adversarial === 'ternary'),
        f(r.result.pixel.mse, 4),
        f(r.result.pixel.rmse, 4),
        f(r.result.pixel.mae, 4),
        f(r.result.feature.l2),
        f(r.result.feature.relative),
        pct(r.result.trait.overall),
        f(r.result.spectrum.highFrequencyRatio, 2),
        f(r.result.spectrum.checkerboardRatio, 2),
        is(r.result.inception),
        geo(r.result.inception),
      ]),
      [`real ${split} images (reference)`, '', '', '', '', '', '', '', '', '', '', '1.00', '1.00', is(real), geo(real)],
    ],
  )
  const names = Object.keys(rows[0]?.result.trait.perAttribute ?? {})
  const trait = markdownTable(
    ['trait error % per attribute', ...rows.map((r) => r.model)],
    names.map((n) => [n, ...rows.map((r) => pct(r.result.trait.perAttribute[n]!))]),
  )
  const heads = markdownTable(
    ['inception score per head', ...rows.map((r) => r.model), `real ${split} images`],
    names.map((n) => [
      n,
      ...rows.map((r) => (r.result.inception ? f(r.result.inception.perHead[n]!.mean) : '-')),
      real ? f(real.perHead[n]!.mean) : '-',
    ]),
  )
  const r0 = rows[0]?.result
  const footer = r0
    ? `${r0.images} held-out images; ${r0.samples} samples (seed ${r0.seed})` +
      (r0.inception ? `, inception scores over ${r0.inception.splits} groups of ${r0.inception.count / r0.inception.splits}; product at most ${r0.inception.maxProduct}` : '')
    : ''
  return `${summary}\n\n${trait}\n\n${heads}\n\n${footer}`
}

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        model: { type: 'string', multiple: true },
        data: { type: 'string' },
        split: { type: 'string' },
        n: { type: 'string' },
        samples: { type: 'string' },
        splits: { type: 'string' },
        classifier: { type: 'string' },
        seed: { type: 'string' },
        batch: { type: 'string' },
        grid: { type: 'string' },
        'grid-n': { type: 'string' },
        json: { type: 'boolean', default: false },
        backend: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    console.error(`npe eval: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { values: v } = parsed
  if (v.help) {
    console.log(USAGE)
    return 0
  }
  let flags
  try {
    if (!v.model || v.model.length === 0) throw new UsageError('--model is required')
    flags = {
      models: v.model,
      data: v.data ?? 'facesjs',
      split: choiceFlag<Split>('split', v.split, ['test', 'val', 'train'], 'test'),
      n: intFlag('n', v.n, 1, 10_000_000, 1000),
      samples: intFlag('samples', v.samples, 0, 100_000_000, 10_000),
      splits: intFlag('splits', v.splits, 1, 1000, 10),
      classifier: v.classifier ?? 'models/classifier',
      seed: intFlag('seed', v.seed, 0, 0xffffffff, 0),
      batch: intFlag('batch', v.batch, 1, 4096, 64),
      grid: v.grid,
      gridN: intFlag('grid-n', v['grid-n'], 1, 256, 16),
      backend: choiceFlag('backend', v.backend, BACKEND_PREFERENCES, 'auto'),
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`npe eval: ${err.message}\n\n${USAGE}`)
    return 2
  }

  const log = (m: string) => (v.quiet ? undefined : console.error(m))
  let info
  let loadedClassifier
  try {
    info = await initBackend(flags.backend)
    loadedClassifier = await loadClassifier(flags.classifier)
  } catch (err) {
    console.error(`npe eval: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }
  const { classifier } = loadedClassifier
  log(`eval: backend ${info.name}; classifier ${flags.classifier} (step ${loadedClassifier.json.step}, ${classifier.config.resolution}x${classifier.config.resolution})`)
  const sets = new Map<number, LabelledImages>()
  const rows: ModelRow[] = []
  try {
    for (const dir of flags.models) {
      const { model, json } = await loadCheckpoint(dir)
      try {
        const R = model.config.resolution
        if (flags.grid && rows.length > 0 && rows[0]!.config.resolution !== R) {
          throw new Error(`--grid needs models of one resolution: ${dir} is ${R}x${R}, ${rows[0]!.model} is ${rows[0]!.config.resolution}x${rows[0]!.config.resolution}`)
        }
        let set = sets.get(R)
        if (!set) {
          const loading = v.quiet
            ? undefined
            : progressReporter<{ done: number; total: number }>(process.stderr, {
                line: (p) => `eval: loading held-out images ${p.done}/${p.total}`,
                fraction: (p) => p.done / Math.max(1, p.total),
                lines: 4,
              })
          set = await loadEvalImages({ data: flags.data, split: flags.split, n: flags.n, size: R, onProgress: (done, total) => loading?.update({ done, total }) })
          loading?.end()
          sets.set(R, set)
          log(`eval: ${set.description}`)
        }
        const total = set.count + flags.samples
        const t0 = Date.now()
        const progress = v.quiet
          ? undefined
          : progressReporter<EvalProgress>(process.stderr, {
              line: (p) => {
                const done = (p.phase === 'samples' ? set!.count : 0) + p.done
                const secs = (Date.now() - t0) / 1000
                const eta = done > 0 ? (secs * (total - done)) / done : NaN
                return `eval ${dir}: ${p.phase} ${p.done}/${p.total}  ${(done / Math.max(secs, 1e-3)).toFixed(1)} img/s  ETA ${formatDuration(eta)}  tensors ${p.tensors}`
              },
              fraction: (p) => ((p.phase === 'samples' ? set!.count : 0) + p.done) / total,
              lines: 10,
            })
        const result = await evaluate({
          model,
          classifier,
          images: set.images,
          count: set.count,
          samples: flags.samples,
          seed: flags.seed,
          batchSize: flags.batch,
          splits: flags.splits,
          keepReconstructions: flags.grid ? flags.gridN : 0,
          ...(progress ? { onProgress: progress.update } : {}),
        })
        progress?.end()
        rows.push({ model: dir, step: json.step, config: model.config, result })
      } finally {
        disposeIAN(model)
      }
    }
    if (flags.grid) {
      const R = rows[0]!.config.resolution
      const set = sets.get(R)!
      const n = Math.min(flags.gridN, set.count)
      const D = R * R * 3
      const firstN = (bytes: Uint8Array) => Array.from({ length: n }, (_, i) => bytes.subarray(i * D, (i + 1) * D))
      const tiles = [set.images, ...rows.map((r) => r.result.reconstructions!)].flatMap(firstN)
      const grid = tileImages(tiles, R, n, 2)
      await writeFile(flags.grid, await encodePng(grid.rgb, grid.width, grid.height))
      log(`eval: wrote ${flags.grid} (${grid.width}x${grid.height}: ${n} held-out images, then a row of reconstructions per model)`)
    }
  } catch (err) {
    console.error(`npe eval: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  } finally {
    disposeClassifier(classifier)
  }
  if (v.json) {
    const data = [...sets.values()].map((s) => s.description)
    console.log(
      JSON.stringify(
        {
          data,
          classifier: { dir: flags.classifier, step: loadedClassifier.json.step },
          backend: info.name,
          models: rows.map(({ model, step, config, result: { reconstructions: _pixels, ...result } }) => ({
            model,
            step,
            mdc: config.mdc.enabled,
            ortho: config.orthoWeight,
            adversarial: config.adversarial,
            ...result,
          })),
        },
        null,
        2,
      ),
    )
  } else {
    console.log(evalTables(rows, flags.split))
  }
  return 0
}
