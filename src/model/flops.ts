/**
 * Analytic FLOP counts (2 x multiply-accumulates) of the IAN networks, as
 * executed: MDC layers count their dense composite K x K kernel, because
 * that is the convolution that actually runs.
 *
 * Backward passes are estimated the usual way: the gradient w.r.t. a layer's
 * input costs one forward, the gradient w.r.t. its weights another.
 */
import { compositeKernelSize, upsamplings, type ModelConfig } from './config.js'

export interface NetworkFlops {
  /** Generator forward, per image. */
  generator: number
  /** Discriminator trunk + adversarial head forward, per image (minibatch term at batch 1). */
  discriminator: number
  /** Encoder head on top of the trunk, per image. */
  encoderHead: number
}

export function networkFlops(config: ModelConfig): NetworkFlops {
  const L = config.latentSize
  const g = config.generator.channels
  const n = upsamplings(config.resolution)
  const k = config.generator.kernelSize
  const K = compositeKernelSize(config.mdc.filterSize, config.mdc.dilations)
  let macs = L * 16 * g[0]!
  let size = 4
  for (let i = 1; i <= n; i++) {
    const cout = g[i]!
    // transposed conv: every input pixel scatters k*k*cout; resize: a k x k conv at the output size
    macs += (config.generator.upsample === 'resize' ? 4 : 1) * size * size * g[i - 1]! * cout * k * k
    size *= 2
    if (config.mdc.enabled && i < n) macs += 2 * size * size * cout * cout * K * K // MDBLOCK: two MDC convs
  }
  if (g[n] !== 3) macs += size * size * g[n]! * 3 * (config.mdc.enabled ? K * K : k * k)
  const generator = 2 * macs

  const d = config.discriminator.channels
  const kd = config.discriminator.kernelSize
  let dm = 0
  let cin = 3
  size = config.resolution
  for (const c of d) {
    size /= 2
    dm += size * size * c * cin * kd * kd
    cin = c
  }
  const last = d[d.length - 1]!
  const classes = config.adversarial === 'ternary' ? 3 : 2
  let head = last * classes
  if (config.minibatch.enabled) head = last * config.minibatch.kernels * config.minibatch.dims + (last + config.minibatch.kernels) * classes
  const discriminator = 2 * (dm + head)
  const H = config.discriminator.encoderHidden
  const encoderHead = 2 * (16 * last * H + 2 * H * L)
  return { generator, discriminator, encoderHead }
}

/** FLOPs of the operations the benchmarks time, for a batch of B. */
export function benchmarkFlops(config: ModelConfig, B: number) {
  const f = networkFlops(config)
  const D = f.discriminator + f.encoderHead
  return {
    generatorForward: B * f.generator,
    /** G forward + the input-gradient half of its backward (no weight gradients). */
    latentGradient: B * 2 * f.generator,
    /**
     * G/E pass: D(x) forward, two G forward+backward (3x), D on x_r and x_s
     * forward + input gradients (2x); D pass: three D forward+backward (3x).
     */
    trainStep: B * (D + 2 * 3 * f.generator + 2 * 2 * D + 3 * 3 * f.discriminator),
  }
}
