/**
 * The training use case behind `npe train`: creates (or resumes) an IAN and its trainer, feeds
 * it batches from a BatchSource, and keeps a run directory:
 *
 *   RUN/config.json         the resolved model config and every setting (+ one entry per resume)
 *   RUN/log.jsonl           one JSON line per log step: step, wall seconds, images/s, lr, losses
 *   RUN/samples/step-XXXXXX.png   sample grids (see samples.ts)
 *   RUN/checkpoint/         the latest training checkpoint (atomic; exact resume)
 *
 * A resumed run continues from the checkpoint's step with the same Adam state, per-step noise
 * and batch order, so it ends with the weights an uninterrupted run would have. Stopping (the
 * `signal`, wired to SIGINT/SIGTERM by the CLI) finishes the current step and saves.
 */
import * as tf from '@tensorflow/tfjs'
import { appendFile, mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { encodePng, rgbToFloat } from '../data/image.js'
import { loadCheckpoint, saveCheckpoint } from '../model/checkpoint-dir.js'
import { presetConfig, type DeepPartial, type ModelConfig } from '../model/config.js'
import { createIAN, disposeIAN, type IAN } from '../model/networks.js'
import { createTrainer, disposeTrainer, trainStep, type StepLosses, type Trainer } from '../model/train.js'
import { openSource, type BatchSource } from './data.js'
import { sampleGrid } from './samples.js'

export const LR_SCHEDULES = ['step', 'constant'] as const
export type LrSchedule = (typeof LR_SCHEDULES)[number]

/** Everything that defines a run (saved in RUN/config.json; a resume reuses it). */
export interface TrainSettings {
  /** Model preset (src/model/config.ts). */
  preset: string
  /** 'facesjs' (rendered on the fly) or a directory of images / a `npe dataset` directory. */
  data: string
  /** Total steps of the run (a resume continues up to this). */
  steps: number
  batch: number
  /** Seed of the weights, the per-step noise, the batch order and the sample latents. */
  seed: number
  /** Base learning rate; null: the preset's (2e-4). */
  lr: number | null
  /** 'step': base until 31.25% of the steps, /2 until 62.5%, /4 until 93.75%, then /20. */
  lrSchedule: LrSchedule
  /** Off: no MDC blocks (IAN_simple-style generator). */
  mdc: boolean
  /** Off: no orthogonal regularisation. */
  ortho: boolean
  /** Binary (VAE/GAN) instead of ternary adversarial loss. */
  binary: boolean
  /**
   * Loss weights (lambda_img, lambda_feature, lambda_adv of the G/E term, KL weight); null: the
   * preset's. They change no weight shape, so a run may start from (--init-from) a checkpoint
   * trained with other ones, e.g. to fine-tune the bundled model at a lower lambda_adv.
   */
  lambdaPixel: number | null
  lambdaFeature: number | null
  lambdaAdv: number | null
  lambdaKl: number | null
  checkpointEvery: number
  /** Every K steps also keep an inference-only copy in RUN/checkpoints/step-XXXXXX (0: never). */
  archiveEvery: number
  sampleEvery: number
  logEvery: number
}

export const TRAIN_DEFAULTS: Omit<TrainSettings, 'preset' | 'data'> = {
  steps: 10_000,
  batch: 16,
  seed: 0,
  lr: null,
  lrSchedule: 'step',
  mdc: true,
  ortho: true,
  binary: false,
  lambdaPixel: null,
  lambdaFeature: null,
  lambdaAdv: null,
  lambdaKl: null,
  checkpointEvery: 250,
  archiveEvery: 0,
  sampleEvery: 250,
  logEvery: 10,
}

export type TrainErrorCode = 'run_exists' | 'no_checkpoint' | 'not_resumable' | 'config_mismatch' | 'missing_setting' | 'bad_data' | 'diverged'

/** A refused or failed run, with a message meant for the user and a stable code. */
export class TrainError extends Error {
  override name = 'TrainError'
  constructor(
    readonly code: TrainErrorCode,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts)
  }
}

export interface TrainProgress {
  /** Completed steps. */
  step: number
  /** Target steps. */
  total: number
  /** Step this session started from (0, or the resumed checkpoint's). */
  startStep: number
  batch: number
  /** Seconds since this session's first step started. */
  elapsedSeconds: number
  stepsPerSec: number
  imagesPerSec: number
  etaSeconds: number
  lr: number
  losses: StepLosses
}

export interface TrainOptions {
  /** The run directory. */
  out: string
  /** Continue RUN from RUN/checkpoint (required if RUN exists; refused if it has no checkpoint). */
  resume: boolean
  /** Settings given explicitly; the rest come from the run being resumed, then TRAIN_DEFAULTS. */
  settings: Partial<TrainSettings>
  /**
   * New runs only: start from this checkpoint's weights (and batch-norm statistics) instead of a
   * fresh initialisation, with a fresh optimiser at step 0. Its model config must be the run's.
   */
  initFrom?: string
  /** Name of the active TensorFlow.js backend (recorded in config.json and checkpoints). */
  backend: string
  /** Aborting stops after the current step, with a checkpoint; its reason (e.g. 'SIGINT') is reported. */
  signal?: AbortSignal
  onProgress?: (p: TrainProgress) => void
  /** Folder datasets: loading progress. */
  onDataLoad?: (done: number, total: number) => void
  /** Status messages (run created / resumed, checkpoints, samples). */
  log?: (message: string) => void
}

export interface TrainResult {
  out: string
  settings: TrainSettings
  config: ModelConfig
  /** Completed steps at the end. */
  step: number
  startStep: number
  /** Why the run stopped early (the abort reason), or null when it reached `steps`. */
  stopped: string | null
  /** Wall seconds of this session's steps, and of every session of the run. */
  sessionSeconds: number
  wallSeconds: number
  imagesPerSec: number
  losses: StepLosses | null
}

export interface LogRecord extends StepLosses {
  step: number
  /** Training wall seconds of the whole run (across resumes) at this step. */
  wall: number
  /** Images per second over the interval since the previous log line (data wait included). */
  imagesPerSec: number
  lr: number
  /** Mean milliseconds per step of the training step itself, and waiting for the batch. */
  stepMs: number
  dataMs: number
}

export interface RunConfigFile {
  format: 'npe-train-run'
  version: 1
  createdAt: string
  settings: TrainSettings
  model: ModelConfig
  backend: string
  data: { kind: string; description: string; trainImages: number | null }
  resumes: { at: string; fromStep: number; backend: string; given: Partial<TrainSettings> }[]
  /** The checkpoint a new run started from (--init-from), if any. */
  initFrom?: { dir: string; step: number; weightsSha256: string }
}

/** Learning rate of the step with 0-based index `step` of `total` (the reference's epochs 25/50/75 of 80). */
export function learningRateAt(step: number, total: number, base: number, schedule: LrSchedule = 'step'): number {
  if (schedule === 'constant') return base
  const f = step / total
  return f < 0.3125 ? base : f < 0.625 ? base / 2 : f < 0.9375 ? base / 4 : base / 20
}

/** The settings that make the model config (and the command-line flags that set them). */
const MODEL_SETTINGS = ['preset', 'mdc', 'ortho', 'binary', 'lambdaPixel', 'lambdaFeature', 'lambdaAdv', 'lambdaKl'] as const
type ModelSettings = Pick<TrainSettings, (typeof MODEL_SETTINGS)[number]>

const LAMBDA_FLAGS = [
  ['lambdaPixel', 'pixel', '--lambda-pixel'],
  ['lambdaFeature', 'feature', '--lambda-feature'],
  ['lambdaAdv', 'adversarial', '--lambda-adv'],
  ['lambdaKl', 'kl', '--lambda-kl'],
] as const

/** The model config of a run's settings (preset + --no-mdc / --no-ortho / --binary / --lambda-*). */
export function modelConfigFor(s: Partial<ModelSettings> & Pick<TrainSettings, 'preset' | 'mdc' | 'ortho' | 'binary'>): ModelConfig {
  const overrides: DeepPartial<ModelConfig> = {}
  if (!s.mdc) overrides.mdc = { enabled: false }
  if (!s.ortho) overrides.orthoWeight = 0
  if (s.binary) overrides.adversarial = 'binary'
  const loss: DeepPartial<ModelConfig['loss']> = {}
  for (const [key, part] of LAMBDA_FLAGS) {
    const value = s[key]
    if (value !== undefined && value !== null) loss[part] = value
  }
  if (Object.keys(loss).length > 0) overrides.loss = loss
  return presetConfig(s.preset, overrides)
}

/**
 * The part of a model config that fixes the weights' shapes and meaning: all of it but the loss
 * and orthogonal-penalty weights and the optimiser's settings, which --init-from may change.
 */
export function architectureOf(config: ModelConfig): Omit<ModelConfig, 'loss' | 'orthoWeight' | 'optimizer'> {
  const { loss: _loss, orthoWeight: _ortho, optimizer: _optimizer, ...rest } = config
  return rest
}

export function runPaths(out: string) {
  return {
    config: join(out, 'config.json'),
    log: join(out, 'log.jsonl'),
    samples: join(out, 'samples'),
    checkpoint: join(out, 'checkpoint'),
  }
}

/** The model flags of `settings` as written on the command line, for messages. */
function modelFlags(s: ModelSettings): string {
  const lambdas = LAMBDA_FLAGS.map(([key, , flag]) => (s[key] === null ? '' : ` ${flag} ${s[key]}`)).join('')
  return `preset '${s.preset}'${s.mdc ? '' : ' --no-mdc'}${s.ortho ? '' : ' --no-ortho'}${s.binary ? ' --binary' : ''}${lambdas}`
}

export function archivePath(out: string, step: number): string {
  return join(out, 'checkpoints', `step-${String(step).padStart(6, '0')}`)
}

export function samplePath(out: string, step: number): string {
  return join(runPaths(out).samples, `step-${String(step).padStart(6, '0')}.png`)
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, text)
  await rename(tmp, path)
}

function resolveSettings(given: Partial<TrainSettings>, saved: Partial<TrainSettings>): TrainSettings {
  const defined = (o: Partial<TrainSettings>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<TrainSettings>
  const merged: Partial<TrainSettings> = { ...TRAIN_DEFAULTS, ...defined(saved), ...defined(given) }
  const { preset, data, ...rest } = merged
  if (preset === undefined) throw new TrainError('missing_setting', '--preset is required for a new run')
  if (data === undefined) throw new TrainError('missing_setting', '--data is required for a new run')
  return { preset, data, ...(rest as Omit<TrainSettings, 'preset' | 'data'>) }
}

/** Keeps the log lines up to `step` (a run stopped without a checkpoint may have logged past it). */
async function truncateLog(path: string, step: number): Promise<void> {
  const text = await readFile(path, 'utf8').catch(() => undefined)
  if (text === undefined) return
  const lines = text.split('\n').filter((l) => l.trim() !== '')
  const keep = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { step?: number }).step! <= step
    } catch {
      return false
    }
  })
  if (keep.length !== lines.length) await writeAtomic(path, keep.map((l) => `${l}\n`).join(''))
}

function firstNonFinite(losses: StepLosses): string | undefined {
  return Object.entries(losses).find(([, v]) => !Number.isFinite(v))?.[0]
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { out } = opts
  const log = opts.log ?? (() => undefined)
  const paths = runPaths(out)

  // ---- the run directory: new, or resumed -------------------------------------------------
  let saved: Partial<TrainSettings> = {}
  let runConfig: RunConfigFile | undefined
  if (opts.resume) {
    if (!(await exists(join(paths.checkpoint, 'checkpoint.json')))) {
      throw new TrainError(
        'no_checkpoint',
        `cannot resume: ${out} has no checkpoint (${join(paths.checkpoint, 'checkpoint.json')} not found); start a new run without --resume`,
      )
    }
    runConfig = (await readFile(paths.config, 'utf8').then(JSON.parse, () => undefined)) as RunConfigFile | undefined
    // Without config.json (deleted, or a checkpoint copied elsewhere), the checkpoint's metadata has the settings.
    const checkpointJson = (await readFile(join(paths.checkpoint, 'checkpoint.json'), 'utf8').then(JSON.parse, () => undefined)) as
      | { metadata?: { settings?: Partial<TrainSettings> } }
      | undefined
    saved = runConfig?.settings ?? checkpointJson?.metadata?.settings ?? {}
  } else {
    const st = await stat(out).catch(() => undefined)
    if (st && (!st.isDirectory() || (await readdir(out)).length > 0)) {
      throw new TrainError('run_exists', `${out} already exists; pass --resume to continue that run, or choose another --out`)
    }
  }
  const settings = resolveSettings(opts.settings, saved)
  // A resume keeps the checkpoint's own model config (even if the preset changed since) unless
  // model flags are given; then they must describe that same config.
  const modelFlagsGiven = MODEL_SETTINGS.some((k) => opts.settings[k] !== undefined)
  let config = opts.resume && !modelFlagsGiven ? undefined : modelConfigFor(settings)
  const changed = opts.resume
    ? (Object.keys(opts.settings) as (keyof TrainSettings)[]).filter((k) => opts.settings[k] !== undefined && k in saved && saved[k] !== opts.settings[k])
    : []

  let model: IAN | undefined
  let trainer: Trainer | undefined
  let source: BatchSource | undefined
  let wallBefore = 0
  let initFrom: RunConfigFile['initFrom']
  if (opts.initFrom !== undefined && opts.resume) {
    throw new TrainError('not_resumable', '--init-from starts a new run; it cannot be combined with --resume')
  }
  try {
    if (opts.resume) {
      const loaded = await loadCheckpoint(paths.checkpoint, { withTrainer: true })
      model = loaded.model
      if (!loaded.trainer) {
        throw new TrainError('not_resumable', `cannot resume: ${paths.checkpoint} has no optimiser state (an inference-only checkpoint)`)
      }
      trainer = loaded.trainer
      if (config === undefined) config = loaded.model.config
      else if (!isDeepStrictEqual(loaded.model.config, config)) {
        throw new TrainError(
          'config_mismatch',
          `cannot resume: the checkpoint in ${out} was trained with another model config than ${modelFlags(settings)} gives; ` +
            `drop the model flags to use the run's own`,
        )
      }
      const w = loaded.json.metadata['wallSeconds']
      wallBefore = typeof w === 'number' ? w : 0
    } else if (opts.initFrom !== undefined) {
      // before the data source opens: a wrong checkpoint fails before a folder is loaded
      const loaded = await loadCheckpoint(opts.initFrom)
      model = loaded.model
      if (config === undefined) throw new Error('unreachable: no model config')
      // the loss weights may differ (a fine-tune); the architecture may not
      if (!isDeepStrictEqual(architectureOf(loaded.model.config), architectureOf(config))) {
        throw new TrainError('config_mismatch', `--init-from ${opts.initFrom}: that checkpoint has another architecture than ${modelFlags(settings)} gives`)
      }
      // the run trains with its own loss weights, whatever the checkpoint was trained with
      model = { config, params: loaded.model.params }
      initFrom = { dir: opts.initFrom, step: loaded.json.step, weightsSha256: loaded.json.weights.sha256 }
    }

    if (config === undefined) throw new Error('unreachable: no model config')
    try {
      source = await openSource(settings.data, {
        resolution: config.resolution,
        batchSize: settings.batch,
        seed: settings.seed,
        ...(opts.onDataLoad ? { onLoad: opts.onDataLoad } : {}),
      })
    } catch (err) {
      throw new TrainError('bad_data', err instanceof Error ? err.message : String(err), { cause: err })
    }

    if (!model) model = createIAN(config, settings.seed)
    if (!trainer) trainer = createTrainer(model, settings.seed)

    // ---- config.json, log ---------------------------------------------------------------------
    await mkdir(paths.samples, { recursive: true })
    const now = new Date().toISOString()
    if (opts.resume) {
      await truncateLog(paths.log, trainer.step)
      const given = Object.fromEntries(Object.entries(opts.settings).filter(([, v]) => v !== undefined)) as Partial<TrainSettings>
      runConfig = {
        ...(runConfig ?? {
          format: 'npe-train-run',
          version: 1,
          createdAt: now,
          model: config,
          backend: opts.backend,
          data: { kind: source.kind, description: source.description, trainImages: null },
          resumes: [],
        }),
        settings,
        model: config,
      }
      runConfig.resumes = [...(runConfig.resumes ?? []), { at: now, fromStep: trainer.step, backend: opts.backend, given }]
    } else {
      runConfig = {
        format: 'npe-train-run',
        version: 1,
        createdAt: now,
        settings,
        model: config,
        backend: opts.backend,
        data: {
          kind: source.kind,
          description: source.description,
          trainImages: Number.isFinite(source.trainCount) ? source.trainCount : null,
        },
        resumes: [],
        ...(initFrom ? { initFrom } : {}),
      }
    }
    await writeAtomic(paths.config, JSON.stringify(runConfig, null, 2) + '\n')

    return await runSteps({ opts, settings, config, model, trainer, source, wallBefore, changed, log })
  } finally {
    await source?.close()
    if (trainer) disposeTrainer(trainer)
    if (model) disposeIAN(model)
  }
}

async function runSteps(ctx: {
  opts: TrainOptions
  settings: TrainSettings
  config: ModelConfig
  model: IAN
  trainer: Trainer
  source: BatchSource
  wallBefore: number
  changed: (keyof TrainSettings)[]
  log: (message: string) => void
}): Promise<TrainResult> {
  const { opts, settings, config, model, trainer, source, wallBefore, log } = ctx
  const { out, signal } = opts
  const paths = runPaths(out)
  const N = settings.steps
  const B = settings.batch
  const R = config.resolution
  const baseLr = settings.lr ?? config.optimizer.learningRate
  const startStep = trainer.step
  const count = (prefix: string) => model.params.countParameters(prefix).toLocaleString('en-US')

  log(
    `${startStep === 0 ? 'new run' : `resuming at step ${startStep}`} ${out}: ${settings.preset} ${R}x${R} ` +
      `(G ${count('G/')}, E ${count('E/')}, D ${count('D/')} parameters), batch ${B}, steps ${startStep} -> ${N}, backend ${opts.backend}`,
  )
  log(`data: ${source.description}`)
  if (ctx.changed.length > 0) {
    log(`note: resuming with changed ${ctx.changed.map((k) => `--${k}`).join(', ')}: the run no longer matches an uninterrupted one`)
  }

  let savedStep = startStep > 0 ? startStep : -1
  let lastLosses: StepLosses | null = null
  let lastLr = learningRateAt(startStep, N, baseLr, settings.lrSchedule)
  const t0 = performance.now()
  let sessionSeconds = 0
  let interval = { step: startStep, t: t0, stepMs: 0, dataMs: 0 }

  const imagesPerSec = () => (sessionSeconds > 0 ? ((trainer.step - startStep) * B) / sessionSeconds : 0)
  const metadata = () => ({
    preset: settings.preset,
    data: settings.data,
    dataKind: source.kind,
    batch: B,
    seed: settings.seed,
    steps: N,
    wallSeconds: wallBefore + sessionSeconds,
    backend: opts.backend,
    imagesPerSec: imagesPerSec(),
    lr: lastLr,
    losses: lastLosses,
    settings,
  })
  const checkpoint = async (why: string): Promise<void> => {
    await saveCheckpoint(paths.checkpoint, model, { trainer, metadata: metadata() })
    savedStep = trainer.step
    log(`checkpoint at step ${trainer.step} (${why}) -> ${paths.checkpoint}`)
  }
  const samples = async (): Promise<void> => {
    const grid = sampleGrid(model, source.validation, settings.seed)
    await writeFile(samplePath(out, trainer.step), await encodePng(grid.rgb, grid.width, grid.height))
  }

  if (startStep >= N) log(`the run is already at step ${startStep} of ${N}; nothing to do`)
  while (trainer.step < N && !signal?.aborted) {
    const s = trainer.step
    const tData = performance.now()
    const rgb = await source.batch(s, { prefetch: s + 1 < N })
    const tStep = performance.now()
    const lr = learningRateAt(s, N, baseLr, settings.lrSchedule)
    const x = tf.tensor4d(rgbToFloat(rgb), [B, R, R, 3])
    let losses: StepLosses
    try {
      losses = trainStep(trainer, x, { learningRate: lr })
    } finally {
      x.dispose()
    }
    const tEnd = performance.now()
    interval.dataMs += tStep - tData
    interval.stepMs += tEnd - tStep
    sessionSeconds = (tEnd - t0) / 1000
    lastLosses = losses
    lastLr = lr
    const step = trainer.step

    const bad = firstNonFinite(losses)
    if (step % settings.logEvery === 0 || step === N || bad) {
      const n = step - interval.step
      const secs = (tEnd - interval.t) / 1000
      const record: LogRecord = {
        step,
        wall: wallBefore + sessionSeconds,
        imagesPerSec: secs > 0 ? (n * B) / secs : 0,
        lr,
        ...losses,
        stepMs: interval.stepMs / n,
        dataMs: interval.dataMs / n,
      }
      await appendFile(paths.log, JSON.stringify(record) + '\n')
      interval = { step, t: tEnd, stepMs: 0, dataMs: 0 }
    }
    if (bad) {
      throw new TrainError(
        'diverged',
        `step ${step}: the ${bad} loss is ${losses[bad as keyof StepLosses]}; stopped without saving` +
          (savedStep >= 0 ? ` (the checkpoint of step ${savedStep} is kept)` : ''),
      )
    }
    if (step % settings.sampleEvery === 0 || step === N) await samples()
    if (step % settings.checkpointEvery === 0 && step < N) await checkpoint('periodic')
    if (settings.archiveEvery > 0 && step % settings.archiveEvery === 0) {
      await saveCheckpoint(archivePath(out, step), model, { step, metadata: metadata() })
      log(`kept a copy of step ${step} -> ${archivePath(out, step)}`)
    }

    const stepsPerSec = (step - startStep) / Math.max(sessionSeconds, 1e-9)
    opts.onProgress?.({
      step,
      total: N,
      startStep,
      batch: B,
      elapsedSeconds: sessionSeconds,
      stepsPerSec,
      imagesPerSec: stepsPerSec * B,
      etaSeconds: (N - step) / stepsPerSec,
      lr,
      losses,
    })
    // Let signals, timers and the prefetch's I/O callbacks run (the step itself is synchronous).
    await new Promise<void>((resolve) => setImmediate(resolve))
  }

  const stopped = trainer.step < N && signal?.aborted ? String(signal.reason ?? 'aborted') : null
  if (savedStep !== trainer.step) await checkpoint(stopped ? `stopped: ${stopped}` : 'final')
  return {
    out,
    settings,
    config,
    step: trainer.step,
    startStep,
    stopped,
    sessionSeconds,
    wallSeconds: wallBefore + sessionSeconds,
    imagesPerSec: imagesPerSec(),
    losses: lastLosses,
  }
}
