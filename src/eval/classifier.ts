/**
 * The attribute classifier of the evaluation: it plays the role of the paper's CelebA attribute
 * DenseNet (section 5.2), which gives the feature-wise L2 distance, the trait reconstruction
 * error and the "inception" score of Table 2. Ours is a small CNN on our own portrait
 * attributes (ATTRIBUTE_SCHEMA of src/data/facesjs.ts):
 *
 *   x [B, R, R, 3] in [-1, 1]
 *     -> { conv KxK stride 2 -> BN -> lrelu 0.2 } per entry of `channels` (R -> R / 2^n)
 *     -> flatten -> dense H -> BN -> lrelu      = h(x) [B, H], "the last hidden layer"
 *     -> one dense softmax head per target       = logits_k [B, C_k]
 *   loss = sum over targets of the mean cross-entropy of the target.
 *
 * Inputs of another size are resized (bilinear) to R first, so a classifier trained at 64x64
 * can score the outputs of a 16x16 model. Pure tensor code: no I/O (see classifier-dir.ts).
 * Parameters live in a ParamStore under `C/` and are a pure function of (config, seed).
 */
import * as tf from '@tensorflow/tfjs'
import { z } from 'zod'
import type { AttributeTarget } from '../data/facesjs.js'
import { applyBatchStats, batchNorm, conv2d, dense, disposeBatchStats, INFERENCE, leakyRelu, type BatchStats, type LayerContext, type Mode } from '../model/layers.js'
import { ParamStore } from '../model/params.js'
import { Adam } from '../model/train.js'

const positiveInt = z.number().int().positive()

export const classifierConfigSchema = z
  .object({
    /** Input side R; inputs of other sizes are resized to it. */
    resolution: positiveInt.max(1024),
    /** Widths of the stride-2 convolutions; R must be divisible by 2^channels.length. */
    channels: z.array(positiveInt).min(1).max(8),
    kernelSize: positiveInt.refine((k) => k % 2 === 1, 'kernelSize must be odd'),
    /** Width H of the hidden dense layer (the features of the feature-wise L2 metric). */
    hidden: positiveInt,
    initStd: z.number().positive(),
    batchNorm: z.object({ alpha: z.number().gt(0).max(1), epsilon: z.number().positive() }).strict(),
    optimizer: z
      .object({ learningRate: z.number().positive(), beta1: z.number().min(0).lt(1), beta2: z.number().min(0).lt(1), epsilon: z.number().positive() })
      .strict(),
  })
  .strict()
  .refine((c) => c.resolution % 2 ** c.channels.length === 0, 'resolution must be divisible by 2^channels.length')

export type ClassifierConfig = z.infer<typeof classifierConfigSchema>

/** Validates a config (e.g. read from classifier.json); throws with every problem listed. */
export function parseClassifierConfig(raw: unknown): ClassifierConfig {
  const result = classifierConfigSchema.safeParse(raw)
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    throw new Error(`invalid classifier config: ${problems.join('; ')}`)
  }
  return result.data
}

/**
 * The default classifier for a resolution: stride-2 3x3 convs down to 4x4 with widths
 * 32-64-128-128(-128), hidden 128. At 64x64: ~0.5M parameters (2 MB of float32).
 */
export function defaultClassifierConfig(resolution = 64, overrides: Partial<ClassifierConfig> = {}): ClassifierConfig {
  const n = Math.max(1, Math.round(Math.log2(resolution / 4)))
  const widths = [32, 64, 128, 128, 128, 128, 128, 128]
  return parseClassifierConfig({
    resolution,
    channels: widths.slice(0, n),
    kernelSize: 3,
    hidden: 128,
    initStd: 0.05,
    batchNorm: { alpha: 0.1, epsilon: 1e-3 },
    optimizer: { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-7 },
    ...overrides,
  })
}

/** One softmax head: a target's name and class names (class index = position). */
export interface ClassifierTarget {
  name: string
  classes: readonly string[]
}

export function targetsOf(schema: readonly AttributeTarget[]): ClassifierTarget[] {
  return schema.map((t) => ({ name: t.name, classes: [...t.classes] }))
}

export interface AttributeClassifier {
  readonly config: ClassifierConfig
  readonly targets: readonly ClassifierTarget[]
  readonly params: ParamStore
}

export interface ClassifierOutput {
  /** The last hidden layer h(x) [B, H] (after BN and lrelu). */
  hidden: tf.Tensor2D
  /** Logits per target, in target order: [B, C_k]. */
  logits: tf.Tensor2D[]
}

function context(c: AttributeClassifier): LayerContext {
  return { params: c.params, initStd: c.config.initStd, bnEpsilon: c.config.batchNorm.epsilon }
}

const headName = (t: ClassifierTarget): string => `C/head/${t.name}`

/** Forward pass. Not tidied: call inside tf.tidy (or dispose the outputs). */
export function classifierForward(c: AttributeClassifier, x: tf.Tensor4D, mode: Mode = INFERENCE): ClassifierOutput {
  const { config } = c
  const ctx = context(c)
  const R = config.resolution
  let h: tf.Tensor4D = x.shape[1] === R && x.shape[2] === R ? x : tf.image.resizeBilinear(x, [R, R])
  config.channels.forEach((ch, i) => {
    const name = `C/conv${i + 1}`
    h = conv2d(ctx, name, h, ch, { kernel: config.kernelSize, stride: 2, bias: false })
    h = leakyRelu(batchNorm(ctx, `${name}/bn`, h, mode)) as tf.Tensor4D
  })
  const flat = tf.reshape(h, [x.shape[0], -1]) as tf.Tensor2D
  const hidden = leakyRelu(batchNorm(ctx, 'C/fc/bn', dense(ctx, 'C/fc', flat, config.hidden, { bias: false }), mode)) as tf.Tensor2D
  const logits = c.targets.map((t) => dense(ctx, headName(t), hidden, t.classes.length, { bias: true }))
  return { hidden, logits }
}

/** Creates every parameter (seeded) with one dummy forward pass. */
export function createClassifier(config: ClassifierConfig, targets: readonly ClassifierTarget[], seed = 0): AttributeClassifier {
  if (targets.length === 0) throw new Error('a classifier needs at least one target')
  for (const t of targets) {
    if (t.classes.length < 2) throw new Error(`target ${t.name} needs at least 2 classes`)
    if (!/^[A-Za-z0-9_-]+$/.test(t.name)) throw new Error(`target name '${t.name}' must be alphanumeric`)
  }
  if (new Set(targets.map((t) => t.name)).size !== targets.length) throw new Error('target names must be unique')
  const c: AttributeClassifier = { config, targets: targets.map((t) => ({ name: t.name, classes: [...t.classes] })), params: new ParamStore(seed) }
  tf.tidy(() => {
    classifierForward(c, tf.zeros([2, config.resolution, config.resolution, 3]))
  })
  return c
}

export function disposeClassifier(c: AttributeClassifier): void {
  c.params.dispose()
}

/**
 * Sum over targets of the mean softmax cross-entropy. `labels` [B, T] int32 holds the class
 * index of each image for each target (target order). Not tidied.
 */
export function classifierLoss(c: AttributeClassifier, x: tf.Tensor4D, labels: tf.Tensor2D, mode: Mode = INFERENCE): { total: tf.Scalar; perTarget: tf.Tensor1D } {
  const { logits } = classifierForward(c, x, mode)
  const columns = tf.unstack(labels, 1)
  const parts = logits.map((l, k) => {
    const onehot = tf.oneHot(tf.cast(columns[k]!, 'int32') as tf.Tensor1D, c.targets[k]!.classes.length)
    return tf.neg(tf.mean(tf.sum(tf.mul(onehot, tf.logSoftmax(l)), 1))) as tf.Scalar
  })
  const perTarget = tf.stack(parts) as tf.Tensor1D
  return { total: tf.sum(perTarget) as tf.Scalar, perTarget }
}

/** Labels of a batch as an int32 tensor [B, T] from per-image class-index vectors. */
export function labelTensor(c: AttributeClassifier, labels: readonly (readonly number[])[]): tf.Tensor2D {
  const T = c.targets.length
  const data = new Int32Array(labels.length * T)
  labels.forEach((row, i) => {
    if (row.length !== T) throw new RangeError(`label vector ${i} has ${row.length} entries, the classifier has ${T} targets`)
    row.forEach((v, k) => {
      const C = c.targets[k]!.classes.length
      if (!Number.isInteger(v) || v < 0 || v >= C) throw new RangeError(`label ${v} of target ${c.targets[k]!.name} is not in 0..${C - 1}`)
      data[i * T + k] = v
    })
  })
  return tf.tensor2d(data, [labels.length, T], 'int32')
}

// ---------------------------------------------------------------------------------------------
// Training

export interface ClassifierTrainer {
  classifier: AttributeClassifier
  adam: Adam
  /** Completed steps. */
  step: number
}

export function createClassifierTrainer(c: AttributeClassifier): ClassifierTrainer {
  const o = c.config.optimizer
  return { classifier: c, adam: new Adam('adam-c', o.learningRate, o.beta1, o.beta2, o.epsilon), step: 0 }
}

export function disposeClassifierTrainer(t: ClassifierTrainer): void {
  t.adam.dispose()
}

export interface ClassifierStepResult {
  /** Sum of the per-target cross-entropies (training mode, before the update). */
  loss: number
  perTarget: number[]
}

/**
 * One Adam step on the batch x [B, R, R, 3] in [-1, 1] with labels [B, T]. Batch-norm moving
 * statistics are then updated from the batch. Leaves no tensors behind.
 */
export function classifierTrainStep(
  t: ClassifierTrainer,
  x: tf.Tensor4D,
  labels: tf.Tensor2D,
  opts: { learningRate?: number } = {},
): ClassifierStepResult {
  const c = t.classifier
  if (opts.learningRate !== undefined) t.adam.learningRate = opts.learningRate
  const named = c.params.entries().filter(([n, v]) => v.trainable && n.startsWith('C/'))
  const stats: BatchStats = new Map()
  let parts: tf.Tensor1D | undefined
  try {
    const { value, grads } = tf.variableGrads(() => {
      const out = classifierLoss(c, x, labels, { training: true, stats })
      parts = tf.keep(out.perTarget)
      return out.total
    }, named.map(([, v]) => v))
    t.adam.apply(named, grads)
    tf.dispose([value, ...Object.values(grads)])
    applyBatchStats(c.params, stats, c.config.batchNorm.alpha)
    const perTarget = Array.from(parts!.dataSync())
    t.step += 1
    return { loss: perTarget.reduce((a, b) => a + b, 0), perTarget }
  } finally {
    if (parts) parts.dispose()
    disposeBatchStats(stats)
  }
}

// ---------------------------------------------------------------------------------------------
// Inference

/** Softmax probabilities per target [B, C_k] (inference mode). Caller disposes. */
export function classifierProbabilities(c: AttributeClassifier, x: tf.Tensor4D): tf.Tensor2D[] {
  return tf.tidy(() => classifierForward(c, x).logits.map((l) => tf.softmax(l)))
}

/** Hidden features h(x) [B, H] (inference mode). Caller disposes. */
export function hiddenFeatures(c: AttributeClassifier, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => classifierForward(c, x).hidden)
}

/** Predicted class index per target: one Int32Array of length B per target (target order). */
export async function predictClasses(c: AttributeClassifier, x: tf.Tensor4D): Promise<Int32Array[]> {
  const argmax = tf.tidy(() => classifierForward(c, x).logits.map((l) => tf.argMax(l, 1)))
  try {
    return await Promise.all(argmax.map(async (a) => Int32Array.from(await a.data())))
  } finally {
    tf.dispose(argmax)
  }
}

/** Cosine learning-rate decay from `base` to `base * floor` over `total` steps. */
export function classifierLearningRate(step: number, total: number, base: number, floor = 0.05): number {
  if (total <= 1) return base
  const p = Math.min(1, Math.max(0, step / (total - 1)))
  return base * (floor + (1 - floor) * 0.5 * (1 + Math.cos(Math.PI * p)))
}
