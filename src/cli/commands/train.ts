/**
 * `npe train --preset P --data facesjs|DIR --out RUN [flags]`: train an IAN (src/training/loop.ts
 * does the work; this file parses flags, picks the backend, wires SIGINT/SIGTERM and prints).
 */
import { parseArgs } from 'node:util'
import { BACKEND_PREFERENCES, initBackend } from '../../model/backend.js'
import { PRESET_NAMES } from '../../model/config.js'
import { LR_SCHEDULES, TRAIN_DEFAULTS, TrainError, train, type TrainProgress, type TrainSettings } from '../../training/loop.js'
import { UsageError, choiceFlag, intFlag, numberFlag, weightFlag } from '../flags.js'
import { formatDuration, progressReporter } from '../progress.js'

const D = TRAIN_DEFAULTS

const USAGE = `usage: npe train --preset P --data facesjs|DIR --out RUN [flags]
       npe train --out RUN --resume [flags]

Train an Introspective Adversarial Network. RUN gets:
  RUN/config.json                 resolved model config and every setting
  RUN/log.jsonl                   one JSON line per log step (step, wall, images/s, lr, losses)
  RUN/samples/step-XXXXXX.png     samples G(z), validation originals | reconstructions, interpolations
  RUN/checkpoint/                 the latest checkpoint (exact resume), also on SIGINT/SIGTERM

The batch order and the per-step noise depend only on (seed, step): a resumed run ends with
the same weights as an uninterrupted one. With --resume, settings not given are the run's own.

flags:
  --preset P             model preset: ${PRESET_NAMES.join(', ')} (required for a new run)
  --data facesjs|DIR     'facesjs': faces rendered on the fly (train split); DIR: a 'npe dataset'
                         directory (its train split) or any folder of PNG/JPEG/WebP images
  --out RUN              run directory (required; must not exist or be empty, unless --resume)
  --resume               continue RUN from RUN/checkpoint
  --init-from DIR        new run only: start from checkpoint DIR's weights (e.g. models/default)
                         with a fresh optimiser at step 0; DIR's model config must be the run's
  --steps N              total steps (default ${D.steps})
  --batch B              batch size, 2..1024 (default ${D.batch})
  --seed K               seed of weights, noise, batch order and sample latents (default ${D.seed})
  --lr X                 base learning rate (default: the preset's, 2e-4)
  --lr-schedule S        'step': lr until 31.25% of the steps, lr/2 until 62.5%, lr/4 until
                         93.75%, then lr/20 (the reference's epochs 25/50/75 of 80); or 'constant'
                         (default ${D.lrSchedule})
  --no-mdc               no multiscale dilated convolution blocks
  --no-ortho             no orthogonal regularisation
  --binary               binary (real/fake) adversarial loss instead of ternary
  --lambda-pixel X       loss weights (default: the preset's; small-64: pixel 6 on mean |x_hat - x|,
  --lambda-feature X       feature 1, adversarial 0.1 on the G/E term, KL 0.1); with --init-from
  --lambda-adv X           they may differ from the checkpoint's, e.g. to fine-tune at a lower
  --lambda-kl X            lambda_adv (the architecture must be the same)
  --checkpoint-every K   steps between checkpoints (default ${D.checkpointEvery}); one is always written at the end
  --sample-every K       steps between sample grids (default ${D.sampleEvery})
  --log-every K          steps between log.jsonl lines (default ${D.logEvery})
  --archive-every K      also keep an inference-only copy of the model every K steps in RUN/checkpoints/ (default 0: never)
  --backend B            ${BACKEND_PREFERENCES.join(', ')} (default auto: the first that loads)
  --quiet                no progress line
  -h, --help             this help

Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves a checkpoint and exits with 130 / 143;
a second signal exits at once.`

/** The progress line: step/N, rates, ETA and the main losses. */
export function progressLine(p: TrainProgress): string {
  const pct = ((100 * p.step) / Math.max(1, p.total)).toFixed(1)
  const l = p.losses
  const f = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3))
  return (
    `train: ${p.step}/${p.total} (${pct}%)  ${p.stepsPerSec.toFixed(2)} steps/s  ${p.imagesPerSec.toFixed(1)} img/s  ` +
    `ETA ${formatDuration(p.etaSeconds)}  pixel ${f(l.pixel)} feature ${f(l.feature)} kl ${f(l.kl)} gAdv ${f(l.gAdv)} dAdv ${f(l.dAdv)}`
  )
}

const EXIT_CODES: Record<string, number> = { SIGINT: 130, SIGTERM: 143 }

export async function run(argv: string[]): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        preset: { type: 'string' },
        data: { type: 'string' },
        out: { type: 'string' },
        resume: { type: 'boolean' },
        'init-from': { type: 'string' },
        steps: { type: 'string' },
        batch: { type: 'string' },
        seed: { type: 'string' },
        lr: { type: 'string' },
        'lr-schedule': { type: 'string' },
        'no-mdc': { type: 'boolean' },
        'no-ortho': { type: 'boolean' },
        binary: { type: 'boolean' },
        'lambda-pixel': { type: 'string' },
        'lambda-feature': { type: 'string' },
        'lambda-adv': { type: 'string' },
        'lambda-kl': { type: 'string' },
        'checkpoint-every': { type: 'string' },
        'sample-every': { type: 'string' },
        'log-every': { type: 'string' },
        'archive-every': { type: 'string' },
        backend: { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (err) {
    console.error(`npe train: ${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`)
    return 2
  }
  const { values: v } = parsed
  if (v.help) {
    console.log(USAGE)
    return 0
  }

  let settings: Partial<TrainSettings>
  let backend: (typeof BACKEND_PREFERENCES)[number]
  const resume = v.resume === true
  try {
    if (!v.out) throw new UsageError('--out is required')
    if (v.preset !== undefined) choiceFlag('preset', v.preset, PRESET_NAMES)
    if (!resume && v.preset === undefined) throw new UsageError('--preset is required for a new run (or pass --resume)')
    if (!resume && v.data === undefined) throw new UsageError('--data is required for a new run (or pass --resume)')
    if (resume && v['init-from'] !== undefined) throw new UsageError('--init-from starts a new run; it cannot be combined with --resume')
    if (v['init-from'] === '') throw new UsageError('--init-from must be a checkpoint directory')
    if (v.data === '') throw new UsageError(`--data must be 'facesjs' or a directory`)
    const optInt = (name: string, value: string | undefined, min: number, max: number) =>
      value === undefined ? undefined : intFlag(name, value, min, max)
    const optLambda = (name: string, value: string | undefined) => (value === undefined ? undefined : weightFlag(name, value, 1000))
    settings = {
      preset: v.preset,
      data: v.data,
      steps: optInt('steps', v.steps, 1, 1e9),
      batch: optInt('batch', v.batch, 2, 1024),
      seed: optInt('seed', v.seed, 0, 0xffffffff),
      lr: v.lr === undefined ? undefined : numberFlag('lr', v.lr, 0, 1),
      lrSchedule: v['lr-schedule'] === undefined ? undefined : choiceFlag('lr-schedule', v['lr-schedule'], LR_SCHEDULES),
      mdc: v['no-mdc'] ? false : undefined,
      ortho: v['no-ortho'] ? false : undefined,
      binary: v.binary ? true : undefined,
      lambdaPixel: optLambda('lambda-pixel', v['lambda-pixel']),
      lambdaFeature: optLambda('lambda-feature', v['lambda-feature']),
      lambdaAdv: optLambda('lambda-adv', v['lambda-adv']),
      lambdaKl: optLambda('lambda-kl', v['lambda-kl']),
      checkpointEvery: optInt('checkpoint-every', v['checkpoint-every'], 1, 1e9),
      sampleEvery: optInt('sample-every', v['sample-every'], 1, 1e9),
      logEvery: optInt('log-every', v['log-every'], 1, 1e9),
      archiveEvery: optInt('archive-every', v['archive-every'], 0, 1e9),
    }
    backend = choiceFlag('backend', v.backend, BACKEND_PREFERENCES, 'auto')
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`npe train: ${err.message}\n\n${USAGE}`)
    return 2
  }
  const out = v.out!

  let info
  try {
    info = await initBackend(backend)
  } catch (err) {
    console.error(`npe train: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  }

  const progress = progressReporter<TrainProgress>(process.stderr, {
    line: progressLine,
    fraction: (p) => p.step / Math.max(1, p.total),
    lines: 50,
  })
  const loading = progressReporter<{ done: number; total: number }>(process.stderr, {
    line: (p) => `loading images: ${p.done}/${p.total}`,
    fraction: (p) => p.done / Math.max(1, p.total),
    lines: 10,
  })
  const note = (message: string): void => {
    loading.end()
    if (v.quiet) console.error(message)
    else progress.note(message)
  }
  const controller = new AbortController()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      process.stderr.write(`\nnpe train: ${signal} again, exiting without a checkpoint\n`)
      process.exit(EXIT_CODES[signal] ?? 1)
    }
    note(`${signal}: finishing the current step, then saving a checkpoint (${signal} again to quit at once)`)
    controller.abort(signal)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const result = await train({
      out,
      resume,
      ...(v['init-from'] !== undefined ? { initFrom: v['init-from'] } : {}),
      settings,
      backend: info.name,
      signal: controller.signal,
      log: note,
      ...(v.quiet ? {} : { onProgress: progress.update, onDataLoad: (done: number, total: number) => loading.update({ done, total }) }),
    })
    progress.end()
    const l = result.losses
    console.log(
      `${result.stopped ? `stopped (${result.stopped})` : 'done'}: ${out} at step ${result.step}/${result.settings.steps}; ` +
        `this session ${result.step - result.startStep} steps in ${formatDuration(result.sessionSeconds)} ` +
        `(${result.imagesPerSec.toFixed(1)} img/s on ${info.name})` +
        (l ? `; last losses pixel ${l.pixel.toFixed(4)} feature ${l.feature.toFixed(4)} kl ${l.kl.toFixed(4)} gAdv ${l.gAdv.toFixed(4)} dAdv ${l.dAdv.toFixed(4)}` : ''),
    )
    return result.stopped ? (EXIT_CODES[result.stopped] ?? 1) : 0
  } catch (err) {
    progress.end()
    if (err instanceof TrainError) {
      console.error(`npe train: ${err.message}`)
      return err.code === 'missing_setting' ? 2 : 1
    }
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
