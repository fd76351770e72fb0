/**
 * `npe eval`: the paper's Table 2 measures (section 5.2) for one IAN checkpoint, on held-out
 * images, with our attribute classifier in place of the paper's CelebA DenseNet. See metrics.ts
 * for the definitions.
 *
 * Per batch of held-out images X (inference mode throughout):
 *   X^ = G(E(X)) with z = mu  -> pixel MSE / RMSE / MAE, high-frequency and checkerboard ratios
 *   classifier on X and X^    -> feature L2 (hidden layer), trait reconstruction error, and the
 *                                class probabilities of the real images (the reference score)
 * Per batch of samples z ~ N(0, I) (sample j's latent is drawn from Rng(deriveSeed(seed, j)), so
 * every model with the same latent size sees the same z, whatever the batch size):
 *   classifier on G(z)        -> per-head probabilities for the inception scores
 * Tensors are released batch by batch (tf.memory().numTensors is the same after every batch).
 */
import * as tf from '@tensorflow/tfjs'
import { floatToRgb } from '../data/pixels.js'
import { Rng, deriveSeed } from '../data/rng.js'
import { generator, type IAN } from '../model/networks.js'
import { reconstruct } from '../model/train.js'
import { classifierForward, type AttributeClassifier } from './classifier.js'
import { imageBatch } from './evaluate-classifier.js'
import {
  checkerboardPower,
  featureDistances,
  highFrequencyEnergy,
  inceptionScores,
  mean,
  pixelErrors,
  rowNorms,
  traitError,
  type InceptionScores,
  type TraitError,
} from './metrics.js'

export interface EvalProgress {
  phase: 'reconstructions' | 'samples'
  /** Images (or samples) done in this phase, and the phase's total. */
  done: number
  total: number
  /** tf.memory().numTensors after the batch. */
  tensors: number
}

export interface EvaluateOptions {
  model: IAN
  classifier: AttributeClassifier
  /** Held-out images, uint8 RGB [count, R, R, 3] at the model resolution R. */
  images: Uint8Array
  count: number
  /** Generated samples for the inception scores (0: skip them). */
  samples: number
  /** Seed of the sampled latents. */
  seed: number
  batchSize: number
  /** Groups for the inception scores' mean and std (default 10). */
  splits?: number
  /** Keep the first N reconstructions as uint8 RGB (for a picture of them; default 0). */
  keepReconstructions?: number
  onProgress?: (p: EvalProgress) => void
}

export interface EvalResult {
  images: number
  samples: number
  seed: number
  /** Pixel errors of G(E(X)) against X, in [-1, 1] units, averaged over images. */
  pixel: {
    /** Mean squared difference ("pixel L2"). */
    mse: number
    /** Root mean squared difference per image: the paper-comparable "pixel-wise L2 distance". */
    rmse: number
    /** Mean absolute difference ("pixel L1"). */
    mae: number
  }
  feature: {
    /** Mean Euclidean distance between h(X) and h(G(E(X))) in the classifier's hidden layer. */
    l2: number
    /** l2 divided by the mean norm of h(X): scale-free. */
    relative: number
  }
  trait: TraitError
  /** Artefact measures of G(E(X)) against X (metrics.ts): sums over images, reconstructions / originals. */
  spectrum: {
    /** High-frequency (Laplacian) energy ratio: 1 as sharp as the data, < 1 blurred, >> 1 speckled. */
    highFrequencyRatio: number
    /** Power at the (pi, pi) frequency, ratio: a transposed-conv checkerboard lifts it. */
    checkerboardRatio: number
  }
  /** The first keepReconstructions reconstructions, uint8 RGB [n, R, R, 3] (absent when 0 were asked for). */
  reconstructions?: Uint8Array
  /** Inception scores of the samples G(z) (absent when samples = 0). */
  inception?: InceptionScores
  /** The same scores for the real held-out images: what a perfect generator would approach. */
  realInception: InceptionScores
  wallSeconds: number
}

async function read(tensors: tf.Tensor[]): Promise<Float32Array[]> {
  try {
    return (await Promise.all(tensors.map((t) => t.data()))) as Float32Array[]
  } finally {
    tf.dispose(tensors)
  }
}

export async function evaluate(opts: EvaluateOptions): Promise<EvalResult> {
  const t0 = Date.now()
  const { model, classifier, images, count, samples, seed } = opts
  const R = model.config.resolution
  const L = model.config.latentSize
  const B = Math.max(1, Math.floor(opts.batchSize))
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`evaluate: need at least one image, got ${count}`)
  if (images.length !== count * R * R * 3) {
    throw new RangeError(`evaluate: ${images.length} bytes are not ${count} images of ${R}x${R}x3 (the model resolution)`)
  }
  if (!Number.isInteger(samples) || samples < 0) throw new RangeError(`evaluate: samples must be a non-negative integer, got ${samples}`)
  const names = classifier.targets.map((t) => t.name)
  const classes = classifier.targets.map((t) => t.classes.length)
  const splits = opts.splits ?? 10
  const keep = Math.min(count, Math.max(0, Math.floor(opts.keepReconstructions ?? 0)))
  const kept = keep > 0 ? new Uint8Array(keep * R * R * 3) : undefined

  // ---- reconstructions of the held-out images ----
  const mse: number[] = []
  const rmse: number[] = []
  const mae: number[] = []
  const featDist: number[] = []
  const featNorm: number[] = []
  const energy = { hfX: 0, hfR: 0, cbX: 0, cbR: 0 }
  const total = (a: Float64Array) => a.reduce((s, v) => s + v, 0)
  const predX: number[][] = names.map(() => [])
  const predR: number[][] = names.map(() => [])
  const realProbs = classes.map((C) => new Float32Array(count * C))
  for (let start = 0; start < count; start += B) {
    const b = Math.min(B, count - start)
    const out = tf.tidy(() => {
      const x = imageBatch(images, R, start, b)
      const xr = reconstruct(model, x)
      const real = classifierForward(classifier, x)
      const rec = classifierForward(classifier, xr)
      return [
        x,
        xr,
        real.hidden,
        rec.hidden,
        ...real.logits.map((l) => tf.argMax(l, 1)),
        ...rec.logits.map((l) => tf.argMax(l, 1)),
        ...real.logits.map((l) => tf.softmax(l)),
      ]
    })
    const [x, xr, hx, hr, ...rest] = await read(out)
    if (kept && start < keep) {
      const D = R * R * 3
      const n = Math.min(keep, start + b) - start
      floatToRgb(xr!.subarray(0, n * D), kept.subarray(start * D, (start + n) * D))
    }
    const px = pixelErrors(x!, xr!, b)
    mse.push(...px.mse)
    rmse.push(...px.rmse)
    mae.push(...px.mae)
    featDist.push(...featureDistances(hx!, hr!, b))
    featNorm.push(...rowNorms(hx!, b))
    energy.hfX += total(highFrequencyEnergy(x!, b, R))
    energy.hfR += total(highFrequencyEnergy(xr!, b, R))
    energy.cbX += total(checkerboardPower(x!, b, R))
    energy.cbR += total(checkerboardPower(xr!, b, R))
    const K = names.length
    for (let k = 0; k < K; k++) {
      predX[k]!.push(...rest[k]!)
      predR[k]!.push(...rest[K + k]!)
      realProbs[k]!.set(rest[2 * K + k]!, start * classes[k]!)
    }
    opts.onProgress?.({ phase: 'reconstructions', done: start + b, total: count, tensors: tf.memory().numTensors })
  }

  // ---- samples G(z), z ~ N(0, I) ----
  let inception: InceptionScores | undefined
  if (samples > 0) {
    const sampleProbs = classes.map((C) => new Float32Array(samples * C))
    for (let start = 0; start < samples; start += B) {
      const b = Math.min(B, samples - start)
      const zs = new Float32Array(b * L)
      for (let j = 0; j < b; j++) new Rng(deriveSeed(seed, start + j)).normals(L, zs.subarray(j * L, (j + 1) * L))
      const probs = tf.tidy(() => {
        const z = tf.tensor2d(zs, [b, L])
        return classifierForward(classifier, generator(model, z)).logits.map((l) => tf.softmax(l))
      })
      const p = await read(probs)
      p.forEach((arr, k) => sampleProbs[k]!.set(arr, start * classes[k]!))
      opts.onProgress?.({ phase: 'samples', done: start + b, total: samples, tensors: tf.memory().numTensors })
    }
    inception = inceptionScores(names, sampleProbs, samples, splits)
  }

  const featureL2 = mean(featDist)
  return {
    images: count,
    samples,
    seed,
    pixel: { mse: mean(mse), rmse: mean(rmse), mae: mean(mae) },
    feature: { l2: featureL2, relative: featureL2 / mean(featNorm) },
    trait: traitError(names, predX, predR),
    spectrum: { highFrequencyRatio: energy.hfR / energy.hfX, checkerboardRatio: energy.cbR / energy.cbX },
    ...(kept ? { reconstructions: kept } : {}),
    ...(inception ? { inception } : {}),
    realInception: inceptionScores(names, realProbs, count, splits),
    wallSeconds: (Date.now() - t0) / 1000,
  }
}
