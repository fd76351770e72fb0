/**
 * One IAN training step (paper section 3; reference train_IAN.py).
 *
 * Per step, with x a batch of real images, eps and z_p ~ N(0, I):
 *   G/E pass:  mu, ls = E(x); z = mu + exp(ls) eps; x_r = G(z); x_s = G(z_p)
 *              L_EG = adv * L_G_adv(D(x_s), D(x_r)) + pixel * |x - x_r|_1
 *                   + feature * L_feature(D(x), D(x_r)) + kl * KL + ortho_w * ortho(G)
 *              gradients w.r.t. the generator and the encoder head only.
 *   D pass:    L_D = L_D_adv(D(x), D(x_s), D(x_r)) + ortho_w * ortho(D)   (no lambda: eq. 4)
 *              with x_s, x_r from the G/E pass held constant; gradients w.r.t. D only.
 * Both networks are then updated with Adam in the same step ("simultaneously").
 * Batch-norm moving statistics are updated after the step from the real batch
 * (D trunk, encoder head) and from both generator calls (G).
 */
import * as tf from '@tensorflow/tfjs'
import { numAdversarialClasses } from './config.js'
import { applyBatchStats, disposeBatchStats, orthoPenalty, stopGradient, type BatchStats } from './layers.js'
import {
  discriminatorAdversarialLoss,
  featureLoss,
  generatorAdversarialLoss,
  klLoss,
  pixelLoss,
} from './losses.js'
import { discriminator, generator, orthoKernels, type IAN } from './networks.js'
import { paramSeed } from './params.js'

/** Adam with named slots, so that its state can be checkpointed and resumed exactly. */
export class Adam {
  readonly slots = new Map<string, { m: tf.Variable; v: tf.Variable }>()
  iterations = 0

  constructor(
    readonly name: string,
    public learningRate: number,
    readonly beta1: number,
    readonly beta2: number,
    readonly epsilon: number,
  ) {}

  apply(named: [string, tf.Variable][], grads: tf.NamedTensorMap): void {
    this.iterations += 1
    const t = this.iterations
    const lrT = (this.learningRate * Math.sqrt(1 - this.beta2 ** t)) / (1 - this.beta1 ** t)
    for (const [name, variable] of named) {
      const g = grads[variable.name]
      if (!g) continue
      const slot = this.slot(name, variable)
      tf.tidy(() => {
        const m = tf.add(tf.mul(slot.m, this.beta1), tf.mul(g, 1 - this.beta1))
        const v = tf.add(tf.mul(slot.v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2))
        slot.m.assign(m)
        slot.v.assign(v)
        variable.assign(tf.sub(variable, tf.div(tf.mul(m, lrT), tf.add(tf.sqrt(v), this.epsilon))))
      })
    }
  }

  private slot(name: string, variable: tf.Variable): { m: tf.Variable; v: tf.Variable } {
    let s = this.slots.get(name)
    if (!s) {
      const zeros = tf.zerosLike(variable)
      s = { m: tf.variable(zeros, false), v: tf.variable(zeros, false) }
      zeros.dispose() // each variable holds its own reference to the data
      this.slots.set(name, s)
    }
    return s
  }

  /** Slot tensors by checkpoint name: `<optimizer>/<param>/m|v`. */
  namedSlots(): [string, tf.Variable][] {
    const out: [string, tf.Variable][] = []
    for (const [name, s] of [...this.slots].sort(([a], [b]) => a.localeCompare(b))) {
      out.push([`${this.name}/${name}/m`, s.m], [`${this.name}/${name}/v`, s.v])
    }
    return out
  }

  restoreSlot(param: string, m: tf.Tensor, v: tf.Tensor): void {
    const old = this.slots.get(param)
    if (old) tf.dispose([old.m, old.v])
    this.slots.set(param, { m: tf.variable(m, false), v: tf.variable(v, false) })
  }

  dispose(): void {
    for (const s of this.slots.values()) tf.dispose([s.m, s.v])
    this.slots.clear()
  }
}

export interface Trainer {
  model: IAN
  /** Optimiser of the generator and the encoder head. */
  optGE: Adam
  /** Optimiser of the discriminator (trunk + adversarial head). */
  optD: Adam
  /** Completed steps. */
  step: number
  /** Seed of the per-step noise (eps, z_p). */
  seed: number
}

export interface StepLosses {
  /** Total generator/encoder objective (eq. 3 + ortho). */
  ge: number
  /** Total discriminator objective (eq. 4 + ortho). */
  d: number
  gAdv: number
  dAdv: number
  pixel: number
  feature: number
  kl: number
  orthoG: number
  orthoD: number
  /** D's accuracy on real, generated and reconstructed images (diagnostic). */
  dAccuracy: number
}

export function createTrainer(model: IAN, seed = 0): Trainer {
  const o = model.config.optimizer
  return {
    model,
    optGE: new Adam('adam-ge', o.learningRate, o.beta1, o.beta2, o.epsilon),
    optD: new Adam('adam-d', o.learningRate, o.beta1, o.beta2, o.epsilon),
    step: 0,
    seed,
  }
}

export function disposeTrainer(trainer: Trainer): void {
  trainer.optGE.dispose()
  trainer.optD.dispose()
}

/** Deterministic per-step noise seed. */
export function stepSeed(seed: number, step: number, stream: string): number {
  return paramSeed(seed, `${stream}:${step}`)
}

function accuracy(logits: tf.Tensor2D, label: number): tf.Scalar {
  return tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), label), 'float32')) as tf.Scalar
}

/**
 * One simultaneous update of G/E and D on the batch x [B, R, R, 3] in [-1, 1].
 * Returns every loss part. Leaves no tensors behind.
 */
export function trainStep(trainer: Trainer, x: tf.Tensor4D, opts: { learningRate?: number } = {}): StepLosses {
  const { model } = trainer
  const { config, params } = model
  const B = x.shape[0]
  const L = config.latentSize
  const w = config.loss
  if (opts.learningRate !== undefined) {
    trainer.optGE.learningRate = opts.learningRate
    trainer.optD.learningRate = opts.learningRate
  }
  // With encoderTrainsTrunk, eq. 3 also trains D's conv trunk, through the encoder head only.
  const trunk = config.discriminator.encoderTrainsTrunk
  const geNamed = params
    .entries()
    .filter(([n, v]) => v.trainable && (n.startsWith('G/') || n.startsWith('E/') || (trunk && n.startsWith('D/conv'))))
  const dNamed = params.entries().filter(([n, v]) => v.trainable && n.startsWith('D/'))
  const statsGE: BatchStats = new Map()
  const statsD: BatchStats = new Map()
  const training = { training: true }
  const eps = tf.randomNormal([B, L], 0, 1, 'float32', stepSeed(trainer.seed, trainer.step, 'eps')) as tf.Tensor2D
  const zPrior = tf.randomNormal([B, L], 0, 1, 'float32', stepSeed(trainer.seed, trainer.step, 'prior')) as tf.Tensor2D
  let kept: tf.Tensor[] = []
  try {
    // ---- G/E pass -----------------------------------------------------------
    let xr!: tf.Tensor4D
    let xs!: tf.Tensor4D
    let geParts!: tf.Tensor1D
    const ge = tf.variableGrads(() => {
      const real = discriminator(model, x, { training: true, stats: statsGE }, { adversarial: false }) // mu, log sigma, features
      const z = tf.add(real.mu, tf.mul(tf.exp(real.logSigma), eps)) as tf.Tensor2D
      xr = generator(model, z, { training: true, stats: statsGE })
      xs = generator(model, zPrior, { training: true, stats: statsGE })
      // D's judgement of G's outputs and the feature targets see the trunk as constants.
      const rec = discriminator(model, xr, training, { encoder: false, constantWeights: trunk })
      const gen = discriminator(model, xs, training, { encoder: false, constantWeights: trunk })
      const adv = generatorAdversarialLoss(gen.logits, rec.logits)
      const pixel = pixelLoss(x, xr)
      const feature = featureLoss(trunk ? real.features.map((f) => stopGradient(f)) : real.features, rec.features)
      const kl = klLoss(real.mu, real.logSigma)
      const ortho = config.orthoWeight > 0 ? orthoPenalty(orthoKernels(model, 'G/')) : tf.scalar(0)
      const total = tf.addN([
        tf.mul(adv, w.adversarial),
        tf.mul(pixel, w.pixel),
        tf.mul(feature, w.feature),
        tf.mul(kl, w.kl),
        tf.mul(ortho, config.orthoWeight),
      ]) as tf.Scalar
      geParts = tf.keep(tf.stack([total, adv, pixel, feature, kl, ortho]) as tf.Tensor1D)
      tf.keep(xr)
      tf.keep(xs)
      return total
    }, geNamed.map(([, v]) => v))
    kept.push(xr, xs, geParts)
    const xrC = xr
    const xsC = xs

    // ---- D pass (G's outputs are constants here) ----------------------------
    let dParts!: tf.Tensor1D
    const d = tf.variableGrads(() => {
      const real = discriminator(model, x, { training: true, stats: statsD }, { encoder: false })
      const gen = discriminator(model, xsC, training, { encoder: false })
      const rec = discriminator(model, xrC, training, { encoder: false })
      const adv = discriminatorAdversarialLoss(config.adversarial, real.logits, gen.logits, rec.logits)
      const ortho = config.orthoWeight > 0 ? orthoPenalty(orthoKernels(model, 'D/')) : tf.scalar(0)
      // lambda_adv weighs the generator's term of eq. 3 only: D minimises eq. 4 as it is.
      const total = tf.add(adv, tf.mul(ortho, config.orthoWeight)) as tf.Scalar
      const recLabel = numAdversarialClasses(config) === 3 ? 2 : 1
      const acc = tf.div(tf.addN([accuracy(real.logits, 0), accuracy(gen.logits, 1), accuracy(rec.logits, recLabel)]), 3)
      dParts = tf.keep(tf.stack([total, adv, ortho, acc]) as tf.Tensor1D)
      return total
    }, dNamed.map(([, v]) => v))
    kept.push(dParts)

    trainer.optGE.apply(geNamed, ge.grads)
    trainer.optD.apply(dNamed, d.grads)
    tf.dispose([ge.value, d.value, ...Object.values(ge.grads), ...Object.values(d.grads)])

    // Moving statistics: D trunk from the D pass (real batch), E head and G from the G/E pass.
    for (const name of [...statsGE.keys()]) {
      if (name.startsWith('D/')) {
        for (const [m, v] of statsGE.get(name)!) tf.dispose([m, v])
        statsGE.delete(name)
      }
    }
    applyBatchStats(params, statsGE, config.batchNorm.alpha)
    applyBatchStats(params, statsD, config.batchNorm.alpha)

    const [geTotal, gAdv, pixel, feature, kl, orthoG] = geParts.dataSync()
    const [dTotal, dAdv, orthoD, dAccuracy] = dParts.dataSync()
    trainer.step += 1
    return {
      ge: geTotal!,
      d: dTotal!,
      gAdv: gAdv!,
      dAdv: dAdv!,
      pixel: pixel!,
      feature: feature!,
      kl: kl!,
      orthoG: orthoG!,
      orthoD: orthoD!,
      dAccuracy: dAccuracy!,
    }
  } finally {
    tf.dispose([eps, zPrior, ...kept])
    kept = []
    disposeBatchStats(statsGE)
    disposeBatchStats(statsD)
  }
}

/** Reconstruction of x in inference mode: G(mu(x)). */
export function reconstruct(model: IAN, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => generator(model, discriminator(model, x, { training: false }, { adversarial: false }).mu))
}

