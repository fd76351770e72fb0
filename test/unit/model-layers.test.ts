import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { compositeKernelSize, parseModelConfig, presetConfig } from '../../src/model/config.js'
import { createIAN, discriminator, disposeIAN, generator, orthoKernels } from '../../src/model/networks.js'
import { networkFlops } from '../../src/model/flops.js'
import { batchNorm, conv2d, mdcCompositeKernel, mdcConv, minibatchFeatures, orthoPenalty, placementMatrix, upsampleNearest2x, type LayerContext } from '../../src/model/layers.js'
import { ParamStore } from '../../src/model/params.js'
import {
  crossEntropy,
  discriminatorAdversarialLoss,
  featureLoss,
  generatorAdversarialLoss,
  klLoss,
  pixelLoss,
} from '../../src/model/losses.js'
import { maxAbs, maxAbsDiff, useBackend } from '../helpers/tf.js'

await useBackend('cpu')

const scalar = (s: tf.Tensor) => s.dataSync()[0]!

t.test('placement matrix puts dilated taps around the centre', async (t) => {
  const P = placementMatrix(3, 2, 5)
  t.same(P.shape, [25, 9])
  const w = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8, 9]], [1, 9]).transpose()
  // composite 5x5: taps at rows/cols 0, 2, 4
  t.same(Array.from(tf.matMul(P, w).dataSync()), [1, 0, 2, 0, 3, 0, 0, 0, 0, 0, 4, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8, 0, 9])
  t.equal(compositeKernelSize(5, [1, 2]), 9, 'paper 5d2: F + (S-1)(F-1)')
  t.equal(compositeKernelSize(3, [1, 2, 3]), 7)
  tf.dispose([P, w])
})

for (const variant of ['standard', 'full-rank'] as const) {
  for (const [F, dilations] of [
    [3, [1, 2]],
    [3, [1, 2, 3]],
    [5, [1, 2]],
  ] as [number, number[]][]) {
    t.test(`MDC ${variant} ${F}d${Math.max(...dilations)} composite conv = sum of k-weighted dilated convs`, async (t) => {
      const x = tf.randomNormal([2, 9, 7, 4], 0, 1, 'float32', 1) as tf.Tensor4D
      const banks = variant === 'standard' ? 1 : dilations.length
      const W = Array.from({ length: banks }, (_, s) => tf.randomNormal([F, F, 4, 5], 0, 1, 'float32', 10 + s) as tf.Tensor4D)
      const k = tf.randomUniform([dilations.length, 5], 0.2, 1.5, 'float32', 7) as tf.Tensor2D
      const kernel = mdcCompositeKernel(W, k, F, dilations)
      t.same(kernel.shape, [compositeKernelSize(F, dilations), compositeKernelSize(F, dilations), 4, 5])
      const composite = tf.conv2d(x, kernel, 1, 'same')
      const reference = tf.addN(
        dilations.map((d, s) => {
          const ks = tf.reshape(tf.slice(k, [s, 0], [1, 5]), [1, 1, 1, 5])
          return tf.conv2d(x, tf.mul(W[banks === 1 ? 0 : s]!, ks) as tf.Tensor4D, 1, 'same', 'NHWC', [d, d])
        }),
      )
      t.same(composite.shape, [2, 9, 7, 5])
      t.ok(maxAbs(reference) > 1, 'non-trivial output')
      t.ok(maxAbsDiff(composite, reference) < 1e-4, `max diff ${maxAbsDiff(composite, reference)}`)
      // The layer builds the same thing from its parameters.
      const params = new ParamStore(3)
      const ctx: LayerContext = { params, initStd: 0.5, bnEpsilon: 1e-4 }
      const mdc = { enabled: true, variant, filterSize: F, dilations }
      const y = mdcConv(ctx, 'm', x, 5, mdc, { bias: false })
      const names = params.names()
      t.same(names, variant === 'standard' ? ['m/W', 'm/k'] : [...dilations.map((_, s) => `m/W${s}`), 'm/k'])
      t.same(Array.from(params.byName('m/k')!.dataSync()), new Array(dilations.length * 5).fill(1 / dilations.length).map(Math.fround))
      const ref2 = tf.conv2d(x, mdcCompositeKernel(names.filter((n) => n !== 'm/k').map((n) => params.byName(n)! as tf.Tensor4D), params.byName('m/k')! as tf.Tensor2D, F, dilations), 1, 'same')
      t.ok(maxAbsDiff(y, ref2) < 1e-5)
      params.dispose()
      tf.dispose([x, ...W, k, kernel, composite, reference, y, ref2])
    })
  }
}

t.test('orthogonal penalty', async (t) => {
  const identity = tf.reshape(tf.eye(3), [1, 1, 3, 3])
  t.equal(scalar(orthoPenalty([{ kernel: identity, outAxis: 3 }])), 0, 'identity is orthogonal')
  const c = Math.cos(0.3)
  const s = Math.sin(0.3)
  const rotation = tf.tensor4d([c, -s, s, c], [1, 1, 2, 2])
  t.ok(Math.abs(scalar(orthoPenalty([{ kernel: rotation, outAxis: 3 }]))) < 1e-6, 'a rotation is orthogonal')
  // W (out x in) = [[1, 2], [0, 1]]: W W^T - I = [[4, 2], [2, 0]] -> sum |.| = 8.
  // conv layout [h, w, in, out]: k[in][out] = W[out][in]
  const conv = tf.tensor4d([1, 0, 2, 1], [1, 1, 2, 2])
  // transposed-conv layout [h, w, out, in]: k[out][in] = W[out][in]
  const deconv = tf.tensor4d([1, 2, 0, 1], [1, 1, 2, 2])
  t.equal(scalar(orthoPenalty([{ kernel: conv, outAxis: 3 }])), 8)
  t.equal(scalar(orthoPenalty([{ kernel: deconv, outAxis: 2 }])), 8)
  t.equal(scalar(orthoPenalty([{ kernel: conv, outAxis: 3 }, { kernel: identity, outAxis: 3 }, { kernel: deconv, outAxis: 2 }])), 16, 'sums over banks')
  // spatial taps are part of each filter's row: 2x1 kernel, one input, one output filter (3, 4): |25 - 1| = 24
  t.equal(scalar(orthoPenalty([{ kernel: tf.tensor4d([3, 4], [2, 1, 1, 1]), outAxis: 3 }])), 24)
  t.equal(scalar(orthoPenalty([])), 0)
})

t.test('ternary and binary adversarial losses', async (t) => {
  const real = tf.tensor2d([[2, 0, 0]])
  const gen = tf.tensor2d([[0, 1, 0]])
  const rec = tf.tensor2d([[0, 0, 3]])
  const e = Math.E
  const ternary = -Math.log(e ** 2 / (e ** 2 + 2)) - Math.log(e / (e + 2)) - Math.log(e ** 3 / (e ** 3 + 2))
  t.ok(Math.abs(scalar(discriminatorAdversarialLoss('ternary', real, gen, rec)) - ternary) < 1e-5)
  const gTernary = -Math.log(1 / (1 + e + 1)) - Math.log(1 / (2 + e ** 3))
  t.ok(Math.abs(scalar(generatorAdversarialLoss(gen, rec)) - gTernary) < 1e-5)
  // binary: 2 classes, generated and reconstructed are both "fake" (class 1)
  const bReal = tf.tensor2d([[1, 0]])
  const bGen = tf.tensor2d([[0, 2]])
  const bRec = tf.tensor2d([[0, 0]])
  const binary = -Math.log(e / (e + 1)) - Math.log(e ** 2 / (e ** 2 + 1)) + Math.log(2)
  t.ok(Math.abs(scalar(discriminatorAdversarialLoss('binary', bReal, bGen, bRec)) - binary) < 1e-5)
  const gBinary = -Math.log(1 / (1 + e ** 2)) + Math.log(2)
  t.ok(Math.abs(scalar(generatorAdversarialLoss(bGen, bRec)) - gBinary) < 1e-5)
  // batch mean
  const two = tf.tensor2d([[0, 0, 0], [Math.log(2), 0, 0]])
  t.ok(Math.abs(scalar(crossEntropy(two, 0)) - (Math.log(3) + Math.log(2))/ 2) < 1e-6)
})

t.test('pixel, feature and KL losses', async (t) => {
  t.ok(Math.abs(scalar(pixelLoss(tf.tensor([1, -1, 0.5, 0]), tf.tensor([0, 1, 0.5, -0.5]))) - (1 + 2 + 0 + 0.5) / 4) < 1e-7)
  const f1 = [tf.tensor([1, 2]), tf.tensor([0, 0, 0, 0])]
  const f2 = [tf.tensor([1, 4]), tf.tensor([1, 1, 1, 1])]
  t.ok(Math.abs(scalar(featureLoss(f1, f2)) - (2 + 1) / 2) < 1e-7, 'mean over layers of per-layer MSE')
  t.equal(scalar(klLoss(tf.zeros([2, 3]), tf.zeros([2, 3]))), 0, 'prior has zero KL')
  t.ok(Math.abs(scalar(klLoss(tf.ones([1, 2]), tf.zeros([1, 2]))) - 0.5) < 1e-7)
  const ls = Math.log(2)
  // -0.5 (1 + 2 ln 2 - 0 - 4) = 1.5 - ln 2
  t.ok(Math.abs(scalar(klLoss(tf.zeros([1, 1]), tf.fill([1, 1], ls))) - (1.5 - ls)) < 1e-6)
})

t.test('minibatch discrimination', async (t) => {
  // M [2, 1, 2]: samples (0, 0) and (1, 2): L1 distance 3
  const M = tf.tensor3d([[[0, 0]], [[1, 2]]])
  const o = minibatchFeatures(M)
  t.same(o.shape, [2, 1])
  t.ok(maxAbsDiff(o, [Math.exp(-3), Math.exp(-3)]) < 1e-7, 'a sample\'s own distance is excluded')
  const same = minibatchFeatures(tf.tensor3d([[[1, 1]], [[1, 1]], [[1, 1]]]))
  t.ok(maxAbsDiff(same, [2, 2, 2]) < 1e-6, 'identical samples: 2 others each, not 3')
  t.same(Array.from(minibatchFeatures(tf.tensor3d([[[5, 5]]])).dataSync()), [0], 'batch of one has no neighbours')
  const { minibatchDiscrimination } = await import('../../src/model/layers.js')
  const params = new ParamStore(1)
  const out = minibatchDiscrimination({ params, initStd: 0.02, bnEpsilon: 1e-4 }, 'mb', tf.randomNormal([4, 6]) as tf.Tensor2D, { kernels: 5, dims: 3 })
  t.same(out.shape, [4, 11], 'features concatenated with K kernels')
  t.same(params.byName('mb/T')!.shape, [6, 15])
  params.dispose()
})

t.test('batch norm: training uses batch statistics, inference the moving ones', async (t) => {
  const params = new ParamStore(1)
  const ctx: LayerContext = { params, initStd: 0.02, bnEpsilon: 0 }
  const x = tf.tensor2d([[1, 10], [3, 30]])
  const stats = new Map()
  const y = batchNorm(ctx, 'bn', x, { training: true, stats })
  t.ok(maxAbsDiff(y, [-1, -1, 1, 1]) < 1e-5)
  t.ok(maxAbsDiff(stats.get('bn')[0][0], [2, 20]) < 1e-6, 'recorded batch mean')
  t.ok(maxAbsDiff(stats.get('bn')[0][1], [1, 100]) < 1e-4, 'recorded batch variance')
  const inf = batchNorm(ctx, 'bn', x, { training: false })
  t.ok(maxAbsDiff(inf, [1, 10, 3, 30]) < 1e-6, 'moving mean 0, variance 1 at init')
  const { applyBatchStats } = await import('../../src/model/layers.js')
  applyBatchStats(params, stats, 0.1)
  t.ok(maxAbsDiff(params.byName('bn:bn/mean')!, [0.2, 2]) < 1e-6)
  t.ok(maxAbsDiff(params.byName('bn:bn/variance')!, [1, 10.9]) < 1e-4)
  t.equal(stats.size, 0, 'statistics consumed')
  params.dispose()
})

t.test('config validation and presets', async (t) => {
  for (const name of ['paper-64', 'simple-64', 'small-64', 'tiny-16']) {
    const c = presetConfig(name)
    t.equal(c.loss.pixel, 6, 'lambda_img 3 on the reference L_img = mean(2|x_hat - x|)')
    t.equal(c.loss.feature, 1)
    t.equal(c.loss.adversarial, name === 'small-64' ? 0.1 : 1, `${name} adversarial weight (G/E only)`)
    t.equal(c.loss.kl, name === 'small-64' ? 0.1 : 1, `${name} KL weight`)
    t.equal(c.discriminator.logSigmaBatchNorm, name !== 'small-64', `${name} log-sigma batch norm`)
    t.equal(c.discriminator.encoderTrainsTrunk, name === 'small-64', `${name}: eq. 3 trains the trunk`)
  }
  const { encoderTrainsTrunk: _t, ...olderDisc } = presetConfig('small-64').discriminator
  t.equal(parseModelConfig({ ...presetConfig('small-64'), discriminator: olderDisc }).discriminator.encoderTrainsTrunk, false, 'older checkpoints: the trunk learns from D only')
  // A config written before the switch existed (an older checkpoint) gets the reference head.
  const { logSigmaBatchNorm: _dropped, ...oldDisc } = presetConfig('small-64').discriminator
  t.equal(parseModelConfig({ ...presetConfig('small-64'), discriminator: oldDisc }).discriminator.logSigmaBatchNorm, true)
  t.equal(presetConfig('paper-64').discriminator.encoderHidden, 1000)
  t.same(presetConfig('paper-64').discriminator.channels, [128, 256, 512, 1024])
  t.throws(() => presetConfig('nope'), /unknown model preset 'nope'/)
  t.throws(() => presetConfig('tiny-16', { resolution: 32 }), /resolution 32 needs 4 generator widths/)
  t.throws(() => presetConfig('tiny-16', { mdc: { filterSize: 4 } }), /filterSize must be odd/)
  const c32 = presetConfig('tiny-16', { resolution: 32, generator: { channels: [32, 16, 8, 8], kernelSize: 5 }, discriminator: { channels: [8, 16, 16], kernelSize: 5, encoderHidden: 32 } })
  t.equal(c32.resolution, 32)
  const c128 = presetConfig('small-64', { resolution: 128, generator: { channels: [64, 64, 32, 16, 16, 8], kernelSize: 5 }, discriminator: { channels: [16, 32, 64, 128, 256], kernelSize: 5, encoderHidden: 64 } })
  t.equal(c128.resolution, 128)
  t.throws(() => presetConfig('tiny-16', { resolution: 48 as 64 }))
  const ablation = presetConfig('small-64', { adversarial: 'binary', orthoWeight: 0, mdc: { enabled: false } })
  t.equal(ablation.adversarial, 'binary')
  t.equal(ablation.mdc.enabled, false)
})

t.test('nearest 2x up-sampling: values, and a gradient that sums each 2x2 block', async (t) => {
  const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [1, 2, 3, 2])
  const y = upsampleNearest2x(x)
  t.same(y.shape, [1, 4, 6, 2])
  // channel 0 of x is [[1, 3, 5], [7, 9, 11]]: every value fills a 2x2 block
  t.same(Array.from(tf.slice(y, [0, 0, 0, 0], [1, 4, 6, 1]).dataSync()), [1, 1, 3, 3, 5, 5, 1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 7, 7, 9, 9, 11, 11])
  t.ok(maxAbsDiff(y, tf.image.resizeNearestNeighbor(x, [4, 6])) === 0, 'equals tf.image.resizeNearestNeighbor')
  const w = tf.range(0, 48).reshape([1, 4, 6, 2])
  const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(upsampleNearest2x(v as tf.Tensor4D), w)))(x)
  // d/dx[i, j, c] = sum of w over the 2x2 block (2i..2i+1, 2j..2j+1) of channel c
  const expect: number[] = []
  for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) for (let c = 0; c < 2; c++) {
    let s = 0
    for (const di of [0, 1]) for (const dj of [0, 1]) s += ((2 * i + di) * 6 + (2 * j + dj)) * 2 + c
    expect.push(s)
  }
  t.same(Array.from(g.dataSync()), expect)
  tf.dispose([x, y, w, g])
})

t.test("generator up-sampling: 'resize' is nearest 2x + a stride-1 conv, 'deconv' the reference", async (t) => {
  t.equal(presetConfig('tiny-16').generator.upsample, 'deconv', 'reference default')
  t.equal(presetConfig('small-64').generator.upsample, 'resize')
  t.equal(presetConfig('small-64').generator.kernelSize, 3)
  const { upsample: _u, ...oldGen } = presetConfig('small-64').generator
  t.equal(parseModelConfig({ ...presetConfig('small-64'), generator: oldGen }).generator.upsample, 'deconv', 'older checkpoints keep the transposed conv')
  const resize = createIAN(presetConfig('tiny-16', { generator: { upsample: 'resize', kernelSize: 3 } }), 2)
  t.same(resize.params.byName('G/up1/conv/kernel')!.shape, [3, 3, 32, 16], '[k, k, in, out]')
  t.notOk(resize.params.byName('G/up1/deconv/kernel'))
  t.ok(orthoKernels(resize, 'G/').some(({ kernel, outAxis }) => kernel === resize.params.byName('G/up1/conv/kernel') && outAxis === 3))
  // The first up-sampling by hand: lrelu(fc(z)) -> nearest 2x -> conv 'same'.
  const z = tf.randomNormal([2, 16], 0, 1, 'float32', 3) as tf.Tensor2D
  const out = generator(resize, z)
  t.same(out.shape, [2, 16, 16, 3])
  const p = (n: string) => resize.params.byName(n)!
  const h = tf.leakyRelu(tf.add(tf.matMul(z, p('G/fc/kernel') as tf.Tensor2D), p('G/fc/bias')), 0.2).reshape([2, 4, 4, 32]) as tf.Tensor4D
  const up = tf.conv2d(tf.image.resizeNearestNeighbor(h, [8, 8]), p('G/up1/conv/kernel') as tf.Tensor4D, 1, 'same')
  const ctx: LayerContext = { params: resize.params, initStd: 0.02, bnEpsilon: 1e-4 }
  t.ok(maxAbsDiff(conv2d(ctx, 'G/up1/conv', upsampleNearest2x(h), 16, { kernel: 3, stride: 1, bias: false }), up) < 1e-5)
  // FLOPs: a k x k conv at the output size costs 4x a k x k transposed conv at the input size.
  const dc = presetConfig('tiny-16', { generator: { kernelSize: 3 } })
  const rc = presetConfig('tiny-16', { generator: { kernelSize: 3, upsample: 'resize' } })
  const upMacs = (4 * 4 * 32 * 16 + 8 * 8 * 16 * 8) * 9
  t.equal(networkFlops(rc).generator - networkFlops(dc).generator, 2 * 3 * upMacs)
  tf.dispose([z, out, h, up])
  disposeIAN(resize)
})

t.test('encoder log-sigma head: batch-normalised (reference) or dense with bias', async (t) => {
  const x = tf.randomUniform([4, 16, 16, 3], -1, 1, 'float32', 7) as tf.Tensor4D
  const withBn = createIAN(presetConfig('tiny-16'), 1)
  const plain = createIAN(presetConfig('tiny-16', { discriminator: { logSigmaBatchNorm: false } }), 1)
  t.ok(withBn.params.byName('E/logsigma/bn/beta'))
  t.notOk(withBn.params.byName('E/logsigma/bias'))
  t.ok(plain.params.byName('E/logsigma/bias'))
  t.notOk(plain.params.byName('E/logsigma/bn/beta'))
  // With the norm, the batch mean of log sigma is the BN shift whatever the dense weights do:
  // scaling the kernel up leaves it at beta = 0. Without it, the bias moves it directly.
  const meanLogSigma = (m: typeof withBn) =>
    tf.tidy(() => tf.mean(discriminator(m, x, { training: true }, { adversarial: false }).logSigma).dataSync()[0]!)
  withBn.params.byName('E/logsigma/kernel')!.assign(tf.mul(withBn.params.byName('E/logsigma/kernel')!, 50))
  t.ok(Math.abs(meanLogSigma(withBn)) < 1e-5, 'BN pins the batch mean to beta')
  const before = meanLogSigma(plain)
  plain.params.byName('E/logsigma/bias')!.assign(tf.fill([16], -2))
  t.ok(Math.abs(meanLogSigma(plain) - (before - 2)) < 1e-5, 'bias shifts log sigma one for one')
  disposeIAN(withBn)
  disposeIAN(plain)
  x.dispose()
})
