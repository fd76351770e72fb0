/**
 * IAN building blocks as pure functions of (params, input, mode).
 *
 * - conv / transposed conv / dense, NHWC, filters [h, w, in, out]
 * - batch norm with training (batch statistics) and inference (moving
 *   statistics) modes; training-mode statistics are reported to a collector
 *   so the trainer can update the moving averages outside the gradient tape
 * - Multiscale Dilated Convolution (paper section 3.4) as ONE convolution with
 *   a sparse composite kernel, and the residual MDBLOCK of the reference code
 * - minibatch discrimination (Salimans et al. 2016)
 * - the orthogonal regulariser (paper eq. 6)
 */
import * as tf from '@tensorflow/tfjs'
import { compositeKernelSize, type MdcConfig } from './config.js'
import { init, type Initialiser, type ParamStore } from './params.js'

/** Collects training-mode batch statistics: name -> list of [mean, variance]. */
export type BatchStats = Map<string, [tf.Tensor, tf.Tensor][]>

export interface Mode {
  training: boolean
  /** If set (training mode), batch-norm layers record their batch statistics here (kept tensors). */
  stats?: BatchStats
}

export const INFERENCE: Mode = { training: false }

/** Where layers read their weights: a ParamStore, or a view of one (see networks.ts). */
export interface ParamSource {
  get(name: string, shape: number[], initialiser: Initialiser, trainable?: boolean): tf.Tensor
}

/** Identity whose gradient is zero: what flows through it is a constant to the gradient. */
export const stopGradient = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.clone(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as <T extends tf.Tensor>(x: T) => T

export interface LayerContext {
  params: ParamSource
  initStd: number
  bnEpsilon: number
}

export function leakyRelu(x: tf.Tensor, alpha = 0.2): tf.Tensor {
  return tf.leakyRelu(x, alpha)
}

export function conv2d(
  ctx: LayerContext,
  name: string,
  x: tf.Tensor4D,
  outChannels: number,
  opts: { kernel: number; stride: number; bias: boolean },
): tf.Tensor4D {
  const inChannels = x.shape[3]
  const w = ctx.params.get(`${name}/kernel`, [opts.kernel, opts.kernel, inChannels, outChannels], init.normal(ctx.initStd))
  let y = tf.conv2d(x, w as tf.Tensor4D, opts.stride, 'same')
  if (opts.bias) y = tf.add(y, ctx.params.get(`${name}/bias`, [outChannels], init.constant(0)))
  return y
}

/** Transposed convolution (2x up-sampling with stride 2, 'same'). Filter [h, w, out, in]. */
export function deconv2d(
  ctx: LayerContext,
  name: string,
  x: tf.Tensor4D,
  outChannels: number,
  opts: { kernel: number; stride: number; bias: boolean },
): tf.Tensor4D {
  const [b, h, w, inChannels] = x.shape
  const filter = ctx.params.get(`${name}/kernel`, [opts.kernel, opts.kernel, outChannels, inChannels], init.normal(ctx.initStd))
  let y = tf.conv2dTranspose(x, filter as tf.Tensor4D, [b, h * opts.stride, w * opts.stride, outChannels], opts.stride, 'same')
  if (opts.bias) y = tf.add(y, ctx.params.get(`${name}/bias`, [outChannels], init.constant(0)))
  return y
}

/**
 * Nearest-neighbour 2x up-sampling [B, H, W, C] -> [B, 2H, 2W, C], built from concat and
 * reshape so that its gradient (slices) runs on every backend (wasm has no
 * ResizeNearestNeighborGrad). Equals tf.image.resizeNearestNeighbor(x, [2H, 2W]).
 */
export function upsampleNearest2x(x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape
    const wide = tf.reshape(tf.concat([x, x], 3), [b, h, 2 * w, c])
    return tf.reshape(tf.concat([wide, wide], 2), [b, 2 * h, 2 * w, c]) as tf.Tensor4D
  })
}

export function dense(ctx: LayerContext, name: string, x: tf.Tensor2D, units: number, opts: { bias: boolean }): tf.Tensor2D {
  const w = ctx.params.get(`${name}/kernel`, [x.shape[1], units], init.normal(ctx.initStd))
  const y: tf.Tensor2D = tf.matMul(x, w as tf.Tensor2D)
  return opts.bias ? tf.add(y, ctx.params.get(`${name}/bias`, [units], init.constant(0)) as tf.Tensor1D) : y
}

/**
 * Batch normalisation over all axes but the last. Training mode normalises
 * with the batch's statistics (and records them in `mode.stats`); inference
 * mode uses the moving averages `bn:<name>/mean` and `bn:<name>/variance`.
 */
export function batchNorm<T extends tf.Tensor>(ctx: LayerContext, name: string, x: T, mode: Mode): T {
  const channels = x.shape[x.rank - 1]!
  const gamma = ctx.params.get(`${name}/gamma`, [channels], init.constant(1))
  const beta = ctx.params.get(`${name}/beta`, [channels], init.constant(0))
  const movingMean = ctx.params.get(`bn:${name}/mean`, [channels], init.constant(0), false)
  const movingVar = ctx.params.get(`bn:${name}/variance`, [channels], init.constant(1), false)
  let mean: tf.Tensor
  let variance: tf.Tensor
  if (mode.training) {
    const axes = [...Array(x.rank - 1).keys()]
    const m = tf.moments(x, axes)
    mean = m.mean
    variance = m.variance
    if (mode.stats) {
      const list = mode.stats.get(name) ?? []
      list.push([tf.keep(mean), tf.keep(variance)])
      mode.stats.set(name, list)
    }
  } else {
    mean = movingMean
    variance = movingVar
  }
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, ctx.bnEpsilon))), gamma), beta) as T
}

/**
 * Applies collected batch statistics to the moving averages:
 * moving <- (1 - alpha) moving + alpha * mean(batch statistics), then disposes them.
 */
export function applyBatchStats(params: ParamStore, stats: BatchStats, alpha: number): void {
  for (const [name, list] of stats) {
    tf.tidy(() => {
      const mean = tf.div(tf.addN(list.map(([m]) => m)), list.length)
      const variance = tf.div(tf.addN(list.map(([, v]) => v)), list.length)
      const mm = params.byName(`bn:${name}/mean`)!
      const mv = params.byName(`bn:${name}/variance`)!
      mm.assign(tf.add(tf.mul(mm, 1 - alpha), tf.mul(mean, alpha)))
      mv.assign(tf.add(tf.mul(mv, 1 - alpha), tf.mul(variance, alpha)))
    })
    for (const [m, v] of list) tf.dispose([m, v])
  }
  stats.clear()
}

export function disposeBatchStats(stats: BatchStats): void {
  for (const list of stats.values()) for (const [m, v] of list) tf.dispose([m, v])
  stats.clear()
}

// ---------------------------------------------------------------------------
// Multiscale Dilated Convolution

/**
 * Placement matrix P_d [K*K, F*F] that puts the taps of an F x F filter,
 * dilated by d, centred in a K x K composite kernel: composite = P_d . W.
 */
export function placementMatrix(filterSize: number, dilation: number, compositeSize: number): tf.Tensor2D {
  const K = compositeSize
  const F = filterSize
  const data = new Float32Array(K * K * F * F)
  const centre = (K - 1) / 2
  const half = (F - 1) / 2
  for (let i = 0; i < F; i++) {
    for (let j = 0; j < F; j++) {
      const r = centre + (i - half) * dilation
      const c = centre + (j - half) * dilation
      data[(r * K + c) * F * F + (i * F + j)] = 1
    }
  }
  return tf.tensor2d(data, [K * K, F * F])
}

/**
 * Builds the composite kernel [K, K, in, out] = sum_s P_{d_s} . (W_s * k[s]),
 * where W_s = W for standard MDC (tied) or one bank per scale for full-rank.
 */
export function mdcCompositeKernel(
  weights: tf.Tensor4D[],
  coefficients: tf.Tensor2D,
  filterSize: number,
  dilations: readonly number[],
): tf.Tensor4D {
  return tf.tidy(() => {
    const K = compositeKernelSize(filterSize, dilations)
    const [, , inC, outC] = weights[0]!.shape
    const parts = dilations.map((d, s) => {
      const w = weights[weights.length === 1 ? 0 : s]!
      const k = tf.slice(coefficients, [s, 0], [1, outC]) // [1, out] broadcasts over [F, F, in, out]
      const scaled = tf.reshape(tf.mul(w, tf.reshape(k, [1, 1, 1, outC])), [filterSize * filterSize, inC * outC])
      return tf.matMul(placementMatrix(filterSize, d, K), scaled)
    })
    const sum = parts.length === 1 ? parts[0]! : tf.addN(parts)
    return tf.reshape(sum, [K, K, inC, outC]) as tf.Tensor4D
  })
}

/** One MDC layer: a single 'same' convolution with the composite kernel. */
export function mdcConv(
  ctx: LayerContext,
  name: string,
  x: tf.Tensor4D,
  outChannels: number,
  mdc: MdcConfig,
  opts: { bias: boolean },
): tf.Tensor4D {
  const inChannels = x.shape[3]
  const F = mdc.filterSize
  const S = mdc.dilations.length
  const banks = mdc.variant === 'standard' ? 1 : S
  const weights = Array.from(
    { length: banks },
    (_, s) =>
      ctx.params.get(mdc.variant === 'standard' ? `${name}/W` : `${name}/W${s}`, [F, F, inChannels, outChannels], init.normal(ctx.initStd)) as tf.Tensor4D,
  )
  // Reference MDCL: coefficients start at 1 / (number of scales).
  const k = ctx.params.get(`${name}/k`, [S, outChannels], init.constant(1 / S)) as tf.Tensor2D
  const kernel = mdcCompositeKernel(weights, k, F, mdc.dilations)
  let y = tf.conv2d(x, kernel, 1, 'same')
  if (opts.bias) y = tf.add(y, ctx.params.get(`${name}/bias`, [outChannels], init.constant(0)))
  return y
}

/**
 * MDBLOCK of the reference code, pre-activation residual:
 *   y = x + MDC(act(BN(MDC(act(BN(x)))))) ; out = act(BN(y)).
 */
export function mdcBlock(ctx: LayerContext, name: string, x: tf.Tensor4D, mdc: MdcConfig, mode: Mode): tf.Tensor4D {
  const c = x.shape[3]
  let h = leakyRelu(batchNorm(ctx, `${name}/bn1`, x, mode)) as tf.Tensor4D
  h = mdcConv(ctx, `${name}/mdc1`, h, c, mdc, { bias: false })
  h = leakyRelu(batchNorm(ctx, `${name}/bn2`, h, mode)) as tf.Tensor4D
  h = mdcConv(ctx, `${name}/mdc2`, h, c, mdc, { bias: false })
  const y = tf.add(x, h) as tf.Tensor4D
  return leakyRelu(batchNorm(ctx, `${name}/bn3`, y, mode)) as tf.Tensor4D
}

// ---------------------------------------------------------------------------
// Minibatch discrimination

/**
 * f [B, A] -> concat(f, o) [B, A + K], with M = f . T reshaped [B, K, C] and
 * o[i, k] = sum_{j != i} exp(-||M[i, k] - M[j, k]||_1) + b[k].
 * A sample's distance to itself (exp(0) = 1) is excluded by subtracting 1.
 */
export function minibatchDiscrimination(
  ctx: LayerContext,
  name: string,
  f: tf.Tensor2D,
  opts: { kernels: number; dims: number },
): tf.Tensor2D {
  const [B, A] = f.shape
  const T = ctx.params.get(`${name}/T`, [A, opts.kernels * opts.dims], init.normal(ctx.initStd))
  const b = ctx.params.get(`${name}/bias`, [opts.kernels], init.constant(0))
  const o = minibatchFeatures(tf.reshape(tf.matMul(f, T as tf.Tensor2D), [B, opts.kernels, opts.dims]) as tf.Tensor3D)
  return tf.concat([f, tf.add(o, b)], 1) as tf.Tensor2D
}

/** M [B, K, C] -> [B, K]: sum over other samples of exp(-L1 distance). */
export function minibatchFeatures(M: tf.Tensor3D): tf.Tensor2D {
  const diff = tf.sub(tf.expandDims(M, 1), tf.expandDims(M, 0)) // [B, B, K, C]
  const dist = tf.sum(tf.abs(diff), 3) // [B, B, K]
  return tf.sub(tf.sum(tf.exp(tf.neg(dist)), 1), 1) as tf.Tensor2D
}

// ---------------------------------------------------------------------------
// Orthogonal regularisation (paper eq. 6)

/**
 * L_ortho = sum over filter banks W of sum(|W W^T - I|), where each bank is
 * reshaped to a matrix with one row per output filter: [out, h * w * in].
 * (The reference multiplies per output filter over (in, w); we use this
 * simpler, common reading.) `outAxis` is 3 for conv filters [h, w, in, out]
 * and 2 for transposed-conv filters [h, w, out, in].
 */
export function orthoPenalty(kernels: { kernel: tf.Tensor; outAxis: number }[]): tf.Scalar {
  return tf.tidy(() => {
    if (kernels.length === 0) return tf.scalar(0)
    const terms = kernels.map(({ kernel, outAxis }) => {
      const rank = kernel.rank
      const perm = [outAxis, ...[...Array(rank).keys()].filter((a) => a !== outAxis)]
      const out = kernel.shape[outAxis]!
      const W = tf.reshape(tf.transpose(kernel, perm), [out, -1]) as tf.Tensor2D
      const gram = tf.matMul(W, W, false, true)
      return tf.sum(tf.abs(tf.sub(gram, tf.eye(out))))
    })
    return tf.addN(terms) as tf.Scalar
  })
}
