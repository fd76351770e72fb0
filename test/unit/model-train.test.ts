import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { presetConfig } from '../../src/model/config.js'
import { createIAN, discriminator, disposeIAN, encode, generator } from '../../src/model/networks.js'
import { createTrainer, disposeTrainer, reconstruct, stepSeed, trainStep } from '../../src/model/train.js'
import { featureLoss, generatorAdversarialLoss, klLoss, pixelLoss } from '../../src/model/losses.js'
import { stopGradient } from '../../src/model/layers.js'
import { maxAbsDiff, useBackend } from '../helpers/tf.js'

// The cpu backend's own Conv2DBackpropFilter is slow; keep its run short.
const backends = (process.env.NPE_TEST_BACKENDS ?? 'wasm,cpu').split(',') as ('wasm' | 'cpu')[]

for (const backend of backends) {
  t.test(`${backend}: tiny-16 networks, training and gradients`, async (t) => {
    await useBackend(backend)
    const config = presetConfig('tiny-16')

    t.test('shapes and ranges', async (t) => {
      const model = createIAN(config, 1)
      tf.tidy(() => {
        const img = generator(model, tf.randomNormal([3, 16]) as tf.Tensor2D)
        t.same(img.shape, [3, 16, 16, 3])
        const v = img.dataSync()
        t.ok(v.every((a) => a >= -1 && a <= 1), 'tanh output in [-1, 1]')
        const d = discriminator(model, img)
        t.same(d.logits.shape, [3, 3], 'ternary head')
        t.same(d.features.map((f) => f.shape), [[3, 8, 8, 8], [3, 4, 4, 16]], 'one activation per conv layer')
        t.same(d.mu.shape, [3, 16])
        t.same(d.logSigma.shape, [3, 16])
        t.same(encode(model, img).shape, [3, 16])
      })
      const binary = createIAN(presetConfig('tiny-16', { adversarial: 'binary', mdc: { enabled: false } }), 1)
      t.same(tf.tidy(() => discriminator(binary, tf.zeros([2, 16, 16, 3])).logits.shape), [2, 2], 'binary head')
      t.notOk(binary.params.names().some((n) => n.includes('mdc')), 'no MDC parameters without MDC')
      t.ok(model.params.names().some((n) => n.includes('mdblock')), 'MDC blocks in the generator')
      // same seed -> same weights; another seed differs
      const again = createIAN(config, 1)
      const other = createIAN(config, 2)
      const w = (m: typeof model) => m.params.byName('G/fc/kernel')!
      t.equal(maxAbsDiff(w(model), w(again)), 0)
      t.ok(maxAbsDiff(w(model), w(other)) > 0)
      for (const m of [model, binary, again, other]) disposeIAN(m)
    })

    t.test('30 steps on one batch: reconstruction improves, G and D move, no tensor leak', async (t) => {
      const model = createIAN(config, 3)
      const trainer = createTrainer(model, 4)
      // a fixed batch of smooth images
      const x = tf.tidy(() => tf.tanh(tf.mul(tf.image.resizeBilinear(tf.randomNormal([4, 4, 4, 3], 0, 1, 'float32', 9) as tf.Tensor4D, [16, 16]), 2))) as tf.Tensor4D
      const snapshot = (name: string) => model.params.byName(name)!.dataSync().slice()
      const g0 = snapshot('G/fc/kernel')
      const gMdc0 = snapshot('G/up1/mdblock/mdc1/k')
      const d0 = snapshot('D/conv1/kernel')
      const e0 = snapshot('E/mu/kernel')
      const bn0 = snapshot('bn:D/conv2/bn/mean')
      const first = trainStep(trainer, x, { learningRate: 2e-3 })
      for (const key of ['ge', 'd', 'gAdv', 'dAdv', 'pixel', 'feature', 'kl', 'orthoG', 'orthoD'] as const) {
        t.ok(Number.isFinite(first[key]), `${key} is finite`)
      }
      t.same(config.loss, { pixel: 6, feature: 1, adversarial: 1, kl: 1 })
      const expectedGE = first.gAdv + 6 * first.pixel + first.feature + first.kl + 1e-3 * first.orthoG
      t.ok(Math.abs(first.ge - expectedGE) < 1e-4 * Math.abs(expectedGE), 'G/E total = adv + 6 pixel + feature + KL + 1e-3 ortho')
      t.ok(Math.abs(first.d - (first.dAdv + 1e-3 * first.orthoD)) < 1e-4 * first.d, 'D total = adv + 1e-3 ortho')
      const warm = tf.memory().numTensors
      let last = first
      for (let i = 1; i < 30; i++) last = trainStep(trainer, x, { learningRate: 2e-3 })
      t.equal(tf.memory().numTensors, warm, 'numTensors flat after warm-up')
      t.equal(trainer.step, 30)
      t.equal(trainer.optGE.iterations, 30)
      t.ok(last.pixel < first.pixel, `training pixel loss fell: ${first.pixel.toFixed(4)} -> ${last.pixel.toFixed(4)}`)
      // Inference mode uses the moving batch-norm statistics, which lag a fast-moving
      // 30-step run; the reconstruction must still be a valid image of the right shape.
      const rec = reconstruct(model, x)
      t.same(rec.shape, [4, 16, 16, 3])
      t.ok(pixelLoss(x, rec).dataSync()[0]! < 1, 'inference reconstruction is a valid image')
      rec.dispose()
      t.ok(maxAbsDiff(g0, snapshot('G/fc/kernel')) > 1e-4, 'generator weights changed')
      t.ok(maxAbsDiff(gMdc0, snapshot('G/up1/mdblock/mdc1/k')) > 1e-5, 'MDC coefficients changed')
      t.ok(maxAbsDiff(d0, snapshot('D/conv1/kernel')) > 1e-4, 'discriminator weights changed')
      t.ok(maxAbsDiff(e0, snapshot('E/mu/kernel')) > 1e-4, 'encoder head changed')
      t.ok(maxAbsDiff(bn0, snapshot('bn:D/conv2/bn/mean')) > 1e-6, 'batch-norm moving statistics updated')
      disposeTrainer(trainer)
      disposeIAN(model)
      x.dispose()
    })

    t.test('lambda_adv weighs the G/E adversarial term only (eq. 3); D minimises eq. 4 unweighted', async (t) => {
      const model = createIAN(presetConfig('tiny-16', { loss: { adversarial: 0.25 } }), 3)
      const trainer = createTrainer(model, 4)
      const x = tf.tidy(() => tf.tanh(tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', 2))) as tf.Tensor4D
      const l = trainStep(trainer, x)
      const expectedGE = 0.25 * l.gAdv + 6 * l.pixel + l.feature + l.kl + 1e-3 * l.orthoG
      t.ok(Math.abs(l.ge - expectedGE) < 1e-4 * Math.abs(expectedGE), `G/E total ${l.ge} = 0.25 adv + 6 pixel + feature + KL + 1e-3 ortho (${expectedGE})`)
      t.ok(Math.abs(l.d - (l.dAdv + 1e-3 * l.orthoD)) < 1e-4 * l.d, `D total ${l.d} = adv ${l.dAdv} + 1e-3 ortho`)
      disposeTrainer(trainer)
      disposeIAN(model)
      x.dispose()
    })

    t.test('encoderTrainsTrunk: the trunk gets eq. 3 through mu and log sigma only (chain rule by hand); off: no trunk slots in the G/E optimiser', async (t) => {
      const cfg = presetConfig('tiny-16', { discriminator: { encoderTrainsTrunk: true } })
      const model = createIAN(cfg, 3)
      const trainer = createTrainer(model, 4)
      const x = tf.tidy(() => tf.tanh(tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', 2))) as tf.Tensor4D
      const trunk = model.params.entries().filter(([n, v]) => v.trainable && n.startsWith('D/conv'))
      t.ok(trunk.length >= 4, `trunk variables: ${trunk.map(([n]) => n).join(', ')}`)
      // Expected trunk gradient, before the step: dL/dmu and dL/dls with the trunk held fixed, then
      // d(<mu, dL/dmu> + <ls, dL/dls>)/d trunk. L is eq. 3 as trainStep builds it (same noise).
      const w = cfg.loss
      const eps = tf.randomNormal([4, 16], 0, 1, 'float32', stepSeed(4, 0, 'eps')) as tf.Tensor2D
      const zPrior = tf.randomNormal([4, 16], 0, 1, 'float32', stepSeed(4, 0, 'prior')) as tf.Tensor2D
      const real = discriminator(model, x, { training: true })
      const [mu, ls] = [tf.keep(real.mu), tf.keep(real.logSigma)]
      const feats = real.features
      const L = (m: tf.Tensor, s: tf.Tensor): tf.Scalar => {
        const xr = generator(model, tf.add(m, tf.mul(tf.exp(s), eps)) as tf.Tensor2D, { training: true })
        const xs = generator(model, zPrior, { training: true })
        const rec = discriminator(model, xr, { training: true }, { encoder: false })
        const gen = discriminator(model, xs, { training: true }, { encoder: false })
        return tf.addN([
          tf.mul(generatorAdversarialLoss(gen.logits, rec.logits), w.adversarial),
          tf.mul(pixelLoss(x, xr), w.pixel),
          tf.mul(featureLoss(feats, rec.features), w.feature),
          tf.mul(klLoss(m, s), w.kl),
        ]) as tf.Scalar
      }
      const [gmu, gls] = tf.grads(L)([mu, ls])
      const expected = tf.variableGrads(() => {
        const d = discriminator(model, x, { training: true })
        return tf.add(tf.sum(tf.mul(d.mu, gmu!)), tf.sum(tf.mul(d.logSigma, gls!))) as tf.Scalar
      }, trunk.map(([, v]) => v))
      trainStep(trainer, x)
      const slots = trainer.optGE.slots
      for (const [name, v] of trunk) {
        const m = slots.get(name)
        t.ok(m, `G/E optimiser has a slot for ${name}`)
        // Adam's first step: m = (1 - beta1) g
        const g = tf.div(m!.m, 1 - cfg.optimizer.beta1)
        const e = expected.grads[v.name]!
        const scale = Math.max(1e-8, tf.max(tf.abs(e)).dataSync()[0]!)
        t.ok(scale > 1e-7, `${name}: eq. 3 reaches it (max |g| ${scale.toExponential(2)})`)
        t.ok(maxAbsDiff(g, e) <= 1e-3 * scale, `${name}: G/E gradient = the chain rule through mu and log sigma (max diff ${maxAbsDiff(g, e).toExponential(2)})`)
        g.dispose()
      }
      tf.dispose([eps, zPrior, mu, ls, gmu!, gls!, expected.value, ...Object.values(expected.grads), ...feats, real.logits])
      disposeTrainer(trainer)
      disposeIAN(model)

      const ref = createIAN(presetConfig('tiny-16'), 3)
      const refTrainer = createTrainer(ref, 4)
      trainStep(refTrainer, x)
      t.same([...refTrainer.optGE.slots.keys()].filter((n) => n.startsWith('D/')), [], 'reference: D is trained by its own loss only')
      t.ok([...refTrainer.optD.slots.keys()].some((n) => n.startsWith('D/conv')), 'reference: the D optimiser has the trunk')
      disposeTrainer(refTrainer)
      disposeIAN(ref)
      x.dispose()
      const probe = tf.scalar(3)
      const [gp] = tf.grads((a: tf.Tensor) => tf.mul(stopGradient(a), a))([probe])
      t.equal(gp!.dataSync()[0], 3, 'stopGradient: d(stop(a) * a)/da = stop(a) = 3, not 2a')
      tf.dispose([probe, gp!])
    })

    // The cpu backend's filter gradient is slow: fewer steps there.
    const resizeSteps = backend === 'cpu' ? 5 : 15
    t.test(`resize up-sampling (small-64's): ${resizeSteps} steps reduce the loss, the up-sampling convs learn, no leak`, async (t) => {
      const model = createIAN(presetConfig('tiny-16', { generator: { upsample: 'resize', kernelSize: 3 } }), 3)
      const trainer = createTrainer(model, 4)
      const x = tf.tidy(() => tf.tanh(tf.mul(tf.image.resizeBilinear(tf.randomNormal([4, 4, 4, 3], 0, 1, 'float32', 9) as tf.Tensor4D, [16, 16]), 2))) as tf.Tensor4D
      const up0 = model.params.byName('G/up2/conv/kernel')!.dataSync().slice()
      const first = trainStep(trainer, x, { learningRate: 2e-3 })
      const warm = tf.memory().numTensors
      let last = first
      for (let i = 1; i < resizeSteps; i++) last = trainStep(trainer, x, { learningRate: 2e-3 })
      t.equal(tf.memory().numTensors, warm, 'numTensors flat after warm-up')
      t.ok(last.pixel < first.pixel, `training pixel loss fell: ${first.pixel.toFixed(4)} -> ${last.pixel.toFixed(4)}`)
      t.ok(maxAbsDiff(up0, model.params.byName('G/up2/conv/kernel')!) > 1e-4, 'up-sampling conv changed')
      disposeTrainer(trainer)
      disposeIAN(model)
      x.dispose()
    })

    t.test('gradient of a patch loss w.r.t. z is finite and non-zero', async (t) => {
      const model = createIAN(config, 5)
      const z = tf.randomNormal([2, 16], 0, 1, 'float32', 1) as tf.Tensor2D
      const colour = tf.tensor1d([1, -1, -1])
      const before = tf.memory().numTensors
      const g = tf.tidy(() =>
        tf.grad((zz: tf.Tensor) => {
          const patch = tf.slice(generator(model, zz as tf.Tensor2D), [0, 4, 4, 0], [-1, 6, 6, 3])
          return tf.mean(tf.squaredDifference(patch, colour))
        })(z),
      )
      t.same(g.shape, [2, 16])
      const v = g.dataSync()
      t.ok(v.every(Number.isFinite), 'finite')
      t.ok(v.some((a) => Math.abs(a) > 1e-7), 'non-zero')
      g.dispose()
      t.equal(tf.memory().numTensors, before, 'no leak')
      tf.dispose([z, colour])
      disposeIAN(model)
    })
  })
}
