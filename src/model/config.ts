/**
 * IAN model configuration: one zod schema, named presets, and the derived
 * numbers (up-sampling count, composite MDC kernel size) the networks use.
 *
 * Shapes: images are NHWC float32 in [-1, 1]; latents are [B, latentSize].
 */
import { z } from 'zod'

export const RESOLUTIONS = [16, 32, 64, 128] as const

const positiveInt = z.number().int().positive()

export const mdcSchema = z
  .object({
    enabled: z.boolean(),
    /** 'standard' ties every scale to one base filter bank W; 'full-rank' unties them. */
    variant: z.enum(['standard', 'full-rank']),
    /** Base filter size F (odd). */
    filterSize: positiveInt.refine((f) => f % 2 === 1, 'filterSize must be odd'),
    /** Dilation factors, e.g. [1, 2] for the paper's "5d2" with filterSize 5. */
    dilations: z.array(positiveInt).min(1).max(8),
  })
  .strict()

export const modelConfigSchema = z
  .object({
    resolution: z.union(RESOLUTIONS.map((r) => z.literal(r)) as unknown as [z.ZodLiteral<16>, z.ZodLiteral<32>, z.ZodLiteral<64>, z.ZodLiteral<128>]),
    latentSize: positiveInt.max(4096),
    generator: z
      .object({
        /**
         * Channel widths, length log2(resolution / 4) + 1: channels[0] is the
         * dense projection at 4x4, channels[i] the width after the i-th 2x
         * up-sampling (transposed conv 5x5, stride 2). If the last entry is 3
         * the last up-sampling is the RGB output (IAN_simple); otherwise an
         * output convolution (an MDC layer when MDC is on) maps it to RGB.
         */
        channels: z.array(positiveInt).min(3),
        kernelSize: positiveInt.default(5),
        /**
         * How each 2x up-sampling is done. 'deconv' (reference, default): a transposed conv
         * kernelSize x kernelSize, stride 2. 'resize': nearest-neighbour 2x, then a
         * kernelSize x kernelSize conv (Odena et al. 2016, "Deconvolution and checkerboard
         * artifacts"): a 5x5 stride-2 transposed conv overlaps its output pixels unevenly, and
         * at small widths its four output phases drift apart into per-pixel colour speckle.
         */
        upsample: z.enum(['deconv', 'resize']).default('deconv'),
      })
      .strict(),
    discriminator: z
      .object({
        /** Conv widths, length log2(resolution / 4): 5x5 stride-2 convs down to 4x4. */
        channels: z.array(positiveInt).min(2),
        kernelSize: positiveInt.default(5),
        /** Width of the encoder head's hidden dense layer (reference: 1000). */
        encoderHidden: positiveInt,
        /**
         * Batch-normalise the log-sigma output as the reference IAN.py does (default). Off: a
         * dense layer with a bias. With the norm on, the batch mean of log sigma is the BN
         * shift alone, which Adam at 2e-4 moves by ~2e-4 a step: q(z|x) stays as wide as the
         * prior (sigma ~ 1) for ~10^4 steps and reconstructions collapse to the mean face.
         */
        logSigmaBatchNorm: z.boolean().default(true),
        /**
         * Let the encoder's objective (eq. 3, through mu and log sigma only) train the shared
         * conv trunk too. Off (reference, paper section 3: "the discriminator is updated solely
         * using the ternary adversarial loss"): the trunk learns from D's loss alone and the
         * encoder head reads whatever features discrimination needs. On: the trunk also gets the
         * gradient of eq. 3 through the encoder head (never through D's judgement of G's
         * outputs or the feature-loss targets, which see the trunk as constants), with its own
         * Adam slots in the G/E optimiser.
         */
        encoderTrainsTrunk: z.boolean().default(false),
      })
      .strict(),
    mdc: mdcSchema,
    minibatch: z
      .object({ enabled: z.boolean(), kernels: positiveInt, dims: positiveInt })
      .strict(),
    /** 'ternary': real / generated / reconstructed (paper eq. 4-5); 'binary': real / fake (VAE/GAN). */
    adversarial: z.enum(['ternary', 'binary']),
    /** Weight of the orthogonal regulariser (paper eq. 6); 0 disables it. */
    orthoWeight: z.number().min(0),
    loss: z
      .object({
        pixel: z.number().min(0),
        feature: z.number().min(0),
        adversarial: z.number().min(0),
        kl: z.number().min(0),
      })
      .strict(),
    optimizer: z
      .object({
        learningRate: z.number().positive(),
        beta1: z.number().min(0).max(1),
        beta2: z.number().min(0).max(1),
        epsilon: z.number().positive(),
      })
      .strict(),
    /** Batch-norm moving-average rate (Lasagne's alpha) and epsilon. */
    batchNorm: z.object({ alpha: z.number().gt(0).lte(1), epsilon: z.number().positive() }).strict(),
    /** Std-dev of the N(0, s) weight initialisation (reference: 0.02). */
    initStd: z.number().positive(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const n = upsamplings(c.resolution)
    if (c.generator.channels.length !== n + 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['generator', 'channels'],
        message: `resolution ${c.resolution} needs ${n + 1} generator widths (4x4 projection + ${n} up-samplings), got ${c.generator.channels.length}`,
      })
    }
    if (c.discriminator.channels.length !== n) {
      ctx.addIssue({
        code: 'custom',
        path: ['discriminator', 'channels'],
        message: `resolution ${c.resolution} needs ${n} discriminator widths (stride-2 convs down to 4x4), got ${c.discriminator.channels.length}`,
      })
    }
    if (new Set(c.mdc.dilations).size !== c.mdc.dilations.length) {
      ctx.addIssue({ code: 'custom', path: ['mdc', 'dilations'], message: 'dilations must be distinct' })
    }
  })

export type ModelConfig = z.infer<typeof modelConfigSchema>
export type MdcConfig = z.infer<typeof mdcSchema>

/** Number of 2x up-samplings from 4x4 to `resolution`. */
export function upsamplings(resolution: number): number {
  return Math.round(Math.log2(resolution / 4))
}

/** Size of the sparse composite MDC kernel: F + (S_max - 1)(F - 1) (paper section 3.4). */
export function compositeKernelSize(filterSize: number, dilations: readonly number[]): number {
  return filterSize + (Math.max(...dilations) - 1) * (filterSize - 1)
}

export function numAdversarialClasses(config: ModelConfig): 2 | 3 {
  return config.adversarial === 'ternary' ? 3 : 2
}

const common = {
  adversarial: 'ternary' as const,
  orthoWeight: 1e-3,
  // The paper's lambda_img = 3 multiplies the reference's L_img = mean(2 |x_hat - x|) (train_IAN.py);
  // our pixelLoss is mean |x_hat - x|, so its weight is 6.
  loss: { pixel: 6, feature: 1, adversarial: 1, kl: 1 },
  optimizer: { learningRate: 2e-4, beta1: 0.5, beta2: 0.999, epsilon: 1e-8 },
  batchNorm: { alpha: 0.1, epsilon: 1e-4 },
  initStd: 0.02,
}

export const PRESETS = {
  /** The reference IAN widths (IAN.py): G 512-512-256-128-128 with 5d2 MDC blocks, D 128-256-512-1024. */
  'paper-64': {
    ...common,
    resolution: 64,
    latentSize: 100,
    generator: { channels: [512, 512, 256, 128, 128], kernelSize: 5 },
    discriminator: { channels: [128, 256, 512, 1024], kernelSize: 5, encoderHidden: 1000 },
    mdc: { enabled: true, variant: 'standard', filterSize: 5, dilations: [1, 2] },
    minibatch: { enabled: true, kernels: 500, dims: 5 },
  },
  /** IAN_simple: no MDC; G 1024 -> 512-256-128 -> RGB by transposed convs. */
  'simple-64': {
    ...common,
    resolution: 64,
    latentSize: 100,
    generator: { channels: [1024, 512, 256, 128, 3], kernelSize: 5 },
    discriminator: { channels: [128, 256, 512, 1024], kernelSize: 5, encoderHidden: 1000 },
    mdc: { enabled: false, variant: 'standard', filterSize: 5, dilations: [1, 2] },
    minibatch: { enabled: true, kernels: 500, dims: 5 },
  },
  /**
   * Sized for CPU training and editing (the bundled default model): the reference layout at
   * 1/4 to 1/16 of the widths, with 3d2 MDC blocks (composite 5x5 kernels). One training step
   * at batch 16 takes ~1.3 s on one core with wasm.
   *
   * Five departures from the reference, all for a budget of a few thousand steps rather than
   * 80 epochs (figures in models/default/REPORT.md):
   * - log sigma is a plain dense output (see logSigmaBatchNorm), and the KL weight is 0.1. With
   *   KL averaged over 100 latent dims and L1 over 12,288 pixel values, weight 1 makes one nat
   *   of information cost as much as 0.0033 of mean L1, so the encoder carried almost nothing
   *   (measured at 2000 steps: KL 0.66 per dim, sigma ~1.2, every reconstruction the mean face).
   *   mu keeps its batch norm, which holds the aggregate posterior near unit scale.
   * - lambda_adv 0.1 (G/E only). At weight 1 the discriminator wins from the first hundred steps
   *   (accuracy ~1) and its gradient, which sees the image through global-pooled texture
   *   statistics, makes G spread per-pixel colour speckle over every output; the classifier
   *   behind the trait error reads that speckle as other attributes.
   * - up-sampling by nearest 2x + 3x3 conv instead of 5x5 stride-2 transposed convs, whose
   *   uneven overlap put a checkerboard peak at the (pi, pi) frequency of the outputs.
   * - the encoder's objective also trains the shared conv trunk (encoderTrainsTrunk). With the
   *   trunk trained by D's loss alone, a D this small learns what tells fakes apart and the
   *   encoder head reads no more: at 1000-2400 steps the reference wiring's held-out pixel L1
   *   stayed at 0.237-0.242 (trait error 33-34%), with the trunk trained by eq. 3 too it was
   *   0.220 at step 1000 (same seed, same schedule).
   *
   * The bundled model is this preset for 4000 steps, then 2000 more from those weights at
   * lambda_adv 0.02 (`npe train --init-from ... --lambda-adv 0.02`, a fresh Adam at lr 1e-4): the
   * lower weight removes most of the speckle while samples stay sharp.
   */
  'small-64': {
    ...common,
    loss: { ...common.loss, kl: 0.1, adversarial: 0.1 },
    resolution: 64,
    latentSize: 100,
    generator: { channels: [128, 64, 32, 16, 8], kernelSize: 3, upsample: 'resize' },
    discriminator: { channels: [16, 32, 64, 128], kernelSize: 5, encoderHidden: 256, logSigmaBatchNorm: false, encoderTrainsTrunk: true },
    mdc: { enabled: true, variant: 'standard', filterSize: 3, dilations: [1, 2] },
    minibatch: { enabled: true, kernels: 64, dims: 5 },
  },
  /** For tests: 16x16, latent 16. */
  'tiny-16': {
    ...common,
    resolution: 16,
    latentSize: 16,
    generator: { channels: [32, 16, 8], kernelSize: 5 },
    discriminator: { channels: [8, 16], kernelSize: 5, encoderHidden: 32 },
    mdc: { enabled: true, variant: 'standard', filterSize: 3, dilations: [1, 2] },
    minibatch: { enabled: true, kernels: 8, dims: 3 },
  },
} satisfies Record<string, z.input<typeof modelConfigSchema>>

export type PresetName = keyof typeof PRESETS
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[]

/** A preset, validated, with optional overrides (deep-merged one level). */
export function presetConfig(name: string, overrides: DeepPartial<ModelConfig> = {}): ModelConfig {
  if (!(name in PRESETS)) {
    throw new Error(`unknown model preset '${name}' (known: ${PRESET_NAMES.join(', ')})`)
  }
  const base = structuredClone(PRESETS[name as PresetName]) as Record<string, unknown>
  for (const [key, value] of Object.entries(overrides)) {
    const current = base[key]
    base[key] =
      value && typeof value === 'object' && !Array.isArray(value) && current && typeof current === 'object'
        ? { ...(current as object), ...(value as object) }
        : value
  }
  return parseModelConfig(base)
}

/** Validates a config (e.g. read from a checkpoint); throws with every problem listed. */
export function parseModelConfig(raw: unknown): ModelConfig {
  const result = modelConfigSchema.safeParse(raw)
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    throw new Error(`invalid model config: ${problems.join('; ')}`)
  }
  return result.data
}

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] }
