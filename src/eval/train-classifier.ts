/**
 * Training the attribute classifier (`npe classifier train`): Adam with a cosine learning-rate
 * decay on labelled batches of the train split, then a held-out evaluation on the val split,
 * saved with the classifier. A run is a pure function of (data, size, batch, steps, seed) on
 * a deterministic backend: re-running with the same flags gives the same classifier.
 */
import * as tf from '@tensorflow/tfjs'
import { ATTRIBUTE_SCHEMA } from '../data/facesjs.js'
import {
  classifierLearningRate,
  classifierTrainStep,
  createClassifier,
  createClassifierTrainer,
  defaultClassifierConfig,
  disposeClassifier,
  disposeClassifierTrainer,
  labelTensor,
  targetsOf,
  type ClassifierConfig,
} from './classifier.js'
import { saveClassifier, type ClassifierJson } from './classifier-dir.js'
import { loadEvalImages, openLabelledSource } from './data.js'
import { evaluateClassifier, imageBatch, type ClassifierEvaluation } from './evaluate-classifier.js'

export interface ClassifierTrainProgress {
  step: number
  steps: number
  /** Exponential moving average of the training loss (sum of cross-entropies). */
  loss: number
  learningRate: number
  elapsedMs: number
}

export interface TrainClassifierOptions {
  /** 'facesjs' or a `npe dataset` directory. */
  data: string
  out: string
  steps: number
  batchSize: number
  /** Classifier input resolution. */
  size: number
  /** Initialisation and batch-order seed. */
  seed: number
  /** Peak learning rate (default: the config's, 1e-3). */
  learningRate?: number
  /** Val-split images for the held-out evaluation saved with the classifier (default 500; 0: none). */
  valN?: number
  config?: ClassifierConfig
  /** Extra metadata for classifier.json (e.g. the command line, the backend). */
  metadata?: Record<string, unknown>
  onProgress?: (p: ClassifierTrainProgress) => void
  onNote?: (message: string) => void
}

export interface TrainClassifierResult {
  json: ClassifierJson
  evaluation?: ClassifierEvaluation
  /** Training time (steps only), and the whole run. */
  trainMs: number
  wallMs: number
  finalLoss: number
}

export async function trainClassifier(opts: TrainClassifierOptions): Promise<TrainClassifierResult> {
  const t0 = Date.now()
  const config = opts.config ?? defaultClassifierConfig(opts.size)
  if (config.resolution !== opts.size) throw new Error(`config resolution ${config.resolution} differs from size ${opts.size}`)
  const lr = opts.learningRate ?? config.optimizer.learningRate
  const source = await openLabelledSource(opts.data, { size: opts.size, batchSize: opts.batchSize, seed: opts.seed })
  opts.onNote?.(`classifier: training on ${source.description}, ${opts.steps} steps of ${opts.batchSize}`)
  const classifier = createClassifier(config, targetsOf(ATTRIBUTE_SCHEMA), opts.seed)
  const trainer = createClassifierTrainer(classifier)
  let ema = NaN
  const tTrain = Date.now()
  try {
    for (let step = 0; step < opts.steps; step++) {
      const batch = await source.batch(step, { prefetch: step + 1 < opts.steps })
      const B = batch.labels.length
      const x = imageBatch(batch.images, opts.size, 0, B)
      const y = labelTensor(classifier, batch.labels)
      const learningRate = classifierLearningRate(step, opts.steps, lr)
      let loss: number
      try {
        loss = classifierTrainStep(trainer, x, y, { learningRate }).loss
      } finally {
        tf.dispose([x, y])
      }
      if (!Number.isFinite(loss)) throw new Error(`classifier training diverged at step ${step + 1} (loss ${loss})`)
      ema = Number.isNaN(ema) ? loss : 0.98 * ema + 0.02 * loss
      opts.onProgress?.({ step: step + 1, steps: opts.steps, loss: ema, learningRate, elapsedMs: Date.now() - tTrain })
    }
    const trainMs = Date.now() - tTrain
    let evaluation: ClassifierEvaluation | undefined
    const valN = opts.valN ?? 500
    if (valN > 0) {
      opts.onNote?.(`classifier: held-out evaluation on ${valN} val-split images`)
      const val = await loadEvalImages({ data: opts.data, split: 'val', n: valN, size: opts.size })
      evaluation = await evaluateClassifier(classifier, val)
    }
    const json = await saveClassifier(opts.out, classifier, {
      step: trainer.step,
      metrics: evaluation ? { val: evaluation } : {},
      metadata: {
        data: source.description,
        steps: opts.steps,
        batchSize: opts.batchSize,
        learningRate: { peak: lr, schedule: 'cosine to 5%' },
        trainSeconds: trainMs / 1000,
        finalLoss: ema,
        ...opts.metadata,
      },
    })
    return { json, evaluation, trainMs, wallMs: Date.now() - t0, finalLoss: ema }
  } finally {
    await source.close()
    disposeClassifierTrainer(trainer)
    disposeClassifier(classifier)
  }
}
