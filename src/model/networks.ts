/**
 * The Introspective Adversarial Network: generator G, and the discriminator D
 * whose conv trunk also feeds the encoder head E (paper section 3).
 *
 *   G: z [B, L] -> dense 4x4xC0 (lrelu) -> { deconv 5x5/2 (or nearest 2x + conv) -> BN -> (MDBLOCK | lrelu) }*
 *      -> output conv (MDC when enabled) -> tanh -> [B, R, R, 3]
 *   D: x [B, R, R, 3] -> { conv 5x5/2 -> (BN from the 2nd on) -> lrelu }* (features)
 *      -> global mean pool -> minibatch discrimination -> dense (3 | 2) logits
 *   E: flatten(last conv) -> dense H -> BN -> relu -> dense L -> BN for mu, and for log-sigma
 *      the same (reference) or a dense L with bias (logSigmaBatchNorm off)
 */
import * as tf from '@tensorflow/tfjs'
import { numAdversarialClasses, upsamplings, type ModelConfig } from './config.js'
import {
  batchNorm,
  conv2d,
  deconv2d,
  dense,
  INFERENCE,
  leakyRelu,
  mdcBlock,
  mdcConv,
  minibatchDiscrimination,
  type LayerContext,
  type Mode,
  type ParamSource,
  stopGradient,
  upsampleNearest2x,
} from './layers.js'
import { ParamStore } from './params.js'

export interface IAN {
  readonly config: ModelConfig
  readonly params: ParamStore
}

export interface DiscriminatorOutput {
  /** Adversarial logits [B, 3] (real, generated, reconstructed) or [B, 2] (real, fake). */
  logits: tf.Tensor2D
  /** Activations of every conv layer (for the feature-wise loss). */
  features: tf.Tensor4D[]
  /** Encoder head: q(z|x) = N(mu, exp(logSigma)^2), each [B, L]. */
  mu: tf.Tensor2D
  logSigma: tf.Tensor2D
}

export const ADV_CLASS = { real: 0, generated: 1, reconstructed: 2 } as const

/**
 * The layers' view of the model. With `constantPrefix`, the weights whose names start with it
 * are read through stopGradient: a gradient still flows through them to their inputs, but none
 * reaches them.
 */
function context(model: IAN, constantPrefix?: string): LayerContext {
  const store = model.params
  const params: ParamSource = constantPrefix
    ? { get: (name, shape, initialiser, trainable) => {
          const v = store.get(name, shape, initialiser, trainable)
          return name.startsWith(constantPrefix) ? stopGradient(v) : v
        } }
    : store
  return { params, initStd: model.config.initStd, bnEpsilon: model.config.batchNorm.epsilon }
}

export function generator(model: IAN, z: tf.Tensor2D, mode: Mode = INFERENCE): tf.Tensor4D {
  return tf.tidy(() => {
    const { config } = model
    const ctx = context(model)
    const ch = config.generator.channels
    const n = upsamplings(config.resolution)
    const k = config.generator.kernelSize
    const B = z.shape[0]
    let h = leakyRelu(dense(ctx, 'G/fc', z, 4 * 4 * ch[0]!, { bias: true }))
    let x = tf.reshape(h, [B, 4, 4, ch[0]!]) as tf.Tensor4D
    for (let i = 1; i <= n; i++) {
      const last = i === n
      const rgbOut = last && ch[i] === 3
      x =
        config.generator.upsample === 'resize'
          ? conv2d(ctx, `G/up${i}/conv`, upsampleNearest2x(x), ch[i]!, { kernel: k, stride: 1, bias: rgbOut })
          : deconv2d(ctx, `G/up${i}/deconv`, x, ch[i]!, { kernel: k, stride: 2, bias: rgbOut })
      if (rgbOut) return tf.tanh(x) as tf.Tensor4D
      x = batchNorm(ctx, `G/up${i}/bn`, x, mode)
      x =
        config.mdc.enabled && !last
          ? mdcBlock(ctx, `G/up${i}/mdblock`, x, config.mdc, mode)
          : (leakyRelu(x) as tf.Tensor4D)
    }
    const out = config.mdc.enabled
      ? mdcConv(ctx, 'G/out/mdc', x, 3, config.mdc, { bias: true })
      : conv2d(ctx, 'G/out/conv', x, 3, { kernel: k, stride: 1, bias: true })
    return tf.tanh(out) as tf.Tensor4D
  })
}

export interface DiscriminatorOptions {
  /** Compute the encoder head (mu, logSigma). Default true. */
  encoder?: boolean
  /** Compute the adversarial head (logits). Default true. */
  adversarial?: boolean
  /** Read D's weights (trunk and adversarial head) as constants: gradients reach x, not them. */
  constantWeights?: boolean
}

export function discriminator(model: IAN, x: tf.Tensor4D, mode: Mode = INFERENCE, opts: DiscriminatorOptions = {}): DiscriminatorOutput {
  const { config } = model
  const ctx = context(model, opts.constantWeights ? 'D/' : undefined)
  const ch = config.discriminator.channels
  const k = config.discriminator.kernelSize
  const features: tf.Tensor4D[] = []
  let h = x
  ch.forEach((c, i) => {
    const name = `D/conv${i + 1}`
    h = conv2d(ctx, name, h, c, { kernel: k, stride: 2, bias: i === 0 })
    if (i > 0) h = batchNorm(ctx, `${name}/bn`, h, mode)
    h = leakyRelu(h) as tf.Tensor4D
    features.push(h)
  })
  const B = x.shape[0]
  let logits = tf.zeros([B, numAdversarialClasses(config)]) as tf.Tensor2D
  if (opts.adversarial !== false) {
    let f = tf.mean(h, [1, 2]) as tf.Tensor2D // global pool [B, C]
    if (config.minibatch.enabled) f = minibatchDiscrimination(ctx, 'D/minibatch', f, config.minibatch)
    logits = dense(ctx, 'D/head', f, numAdversarialClasses(config), { bias: false })
  }
  let mu = tf.zeros([B, config.latentSize]) as tf.Tensor2D
  let logSigma = mu
  if (opts.encoder !== false) {
    const flat = tf.reshape(h, [B, -1]) as tf.Tensor2D
    const hidden = tf.relu(batchNorm(ctx, 'E/fc/bn', dense(ctx, 'E/fc', flat, config.discriminator.encoderHidden, { bias: false }), mode))
    mu = batchNorm(ctx, 'E/mu/bn', dense(ctx, 'E/mu', hidden, config.latentSize, { bias: false }), mode)
    logSigma = config.discriminator.logSigmaBatchNorm
      ? batchNorm(ctx, 'E/logsigma/bn', dense(ctx, 'E/logsigma', hidden, config.latentSize, { bias: false }), mode)
      : dense(ctx, 'E/logsigma', hidden, config.latentSize, { bias: true })
  }
  return { logits, features, mu, logSigma }
}

/** z = mu of q(z|x), inference mode (what the editor uses). */
export function encode(model: IAN, x: tf.Tensor4D): tf.Tensor2D {
  return tf.tidy(() => discriminator(model, x, INFERENCE, { adversarial: false }).mu)
}

/** Creates every parameter of the model (seeded) by one dummy forward pass. */
export function createIAN(config: ModelConfig, seed = 0): IAN {
  const model: IAN = { config, params: new ParamStore(seed) }
  materialise(model)
  return model
}

/** Runs each network once on a batch of 2 so that all parameters exist. */
export function materialise(model: IAN): void {
  tf.tidy(() => {
    const R = model.config.resolution
    const x = generator(model, tf.zeros([2, model.config.latentSize]))
    const out = discriminator(model, tf.zeros([2, R, R, 3]))
    void x
    void out
  })
}

/** Conv-type kernels for the orthogonal penalty, with the axis of their output filters. */
export function orthoKernels(model: IAN, prefix: 'G/' | 'D/'): { kernel: tf.Variable; outAxis: number }[] {
  return model.params
    .entries()
    .filter(([name, v]) => name.startsWith(prefix) && v.rank === 4 && v.trainable)
    .map(([name, kernel]) => ({ kernel, outAxis: name.endsWith('/deconv/kernel') ? 2 : 3 }))
}

export function disposeIAN(model: IAN): void {
  model.params.dispose()
}
