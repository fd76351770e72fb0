import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ATTRIBUTE_SCHEMA, splitOf, writeDataset } from '../../src/data/facesjs.js'
import { presetConfig } from '../../src/model/config.js'
import { createIAN, disposeIAN } from '../../src/model/networks.js'
import { loadCheckpoint, saveCheckpoint } from '../../src/model/checkpoint-dir.js'
import {
  classifierLearningRate,
  classifierLoss,
  classifierTrainStep,
  createClassifier,
  createClassifierTrainer,
  defaultClassifierConfig,
  disposeClassifier,
  disposeClassifierTrainer,
  hiddenFeatures,
  labelTensor,
  predictClasses,
  targetsOf,
} from '../../src/eval/classifier.js'
import { ClassifierError, loadClassifier, saveClassifier } from '../../src/eval/classifier-dir.js'
import { classifierBatchIndices, loadEvalImages, openLabelledSource } from '../../src/eval/data.js'
import { evaluate, type EvalProgress } from '../../src/eval/evaluate.js'
import { evaluateClassifier, imageBatch } from '../../src/eval/evaluate-classifier.js'
import { reconstruct } from '../../src/model/train.js'
import {
  attributeAccuracy,
  checkerboardPower,
  featureDistances,
  highFrequencyEnergy,
  inceptionScore,
  inceptionScores,
  pixelErrors,
  std,
  traitError,
} from '../../src/eval/metrics.js'
import { evalTables, run as evalCli } from '../../src/cli/commands/eval.js'
import { floatToRgb } from '../../src/data/pixels.js'
import { decodeImage } from '../../src/data/image.js'
import { useBackend } from '../helpers/tf.js'

await useBackend('wasm')
const root = await mkdtemp(join(tmpdir(), 'npe-eval-'))
t.teardown(() => rm(root, { recursive: true, force: true }))

const close = (t: { ok: (ok: boolean, message: string) => unknown }, a: number, b: number, msg: string, tol = 1e-6) => t.ok(Math.abs(a - b) <= tol, `${msg}: ${a} ≈ ${b}`)
const tinyConfig = () => defaultClassifierConfig(16, { channels: [8, 16], hidden: 16 })
const targets = targetsOf(ATTRIBUTE_SCHEMA)
const names = ATTRIBUTE_SCHEMA.map((a) => a.name)

t.test('pixel and feature errors on hand-computed arrays', async (t) => {
  // image 0: differences -1, 1, 0, 0; image 1: 0, 0, 0, 0.5
  const x = [0, 0, 0, 0, 1, 1, 1, 1]
  const y = [1, -1, 0, 0, 1, 1, 1, 0.5]
  const e = pixelErrors(x, y, 2)
  t.same([...e.mse], [0.5, 0.0625])
  t.same([...e.mae], [0.5, 0.125])
  close(t, e.rmse[0]!, Math.SQRT1_2, 'rmse 0')
  close(t, e.rmse[1]!, 0.25, 'rmse 1')
  t.same([...featureDistances([3, 4, 1, 1], [0, 0, 1, 1], 2)], [5, 0])
  t.throws(() => pixelErrors([1, 2, 3], [1, 2], 1), RangeError)
  t.throws(() => pixelErrors([1, 2, 3], [1, 2, 3], 2), RangeError)
  close(t, std([1, 2, 3, 4]), Math.sqrt(5 / 3), 'sample std')
})

t.test('high-frequency energy and checkerboard power on hand-computed images', async (t) => {
  // One 3x3 single-channel image with a 1 in the centre: the only interior pixel's Laplacian is 4.
  const spike = [0, 0, 0, 0, 1, 0, 0, 0, 0]
  t.same([...highFrequencyEnergy(spike, 1, 3, 1)], [16])
  // A constant and a linear ramp have no Laplacian; the (pi, pi) power of a constant 4x4 is 0.
  const ramp = Array.from({ length: 16 }, (_, k) => (k % 4) * 0.5 + Math.floor(k / 4))
  t.same([...highFrequencyEnergy(ramp, 1, 4, 1)], [0])
  t.same([...checkerboardPower(new Array(16).fill(0.3), 1, 4, 1)], [0])
  // A +-1 checkerboard on 4x4: the Laplacian at each of the 4 interior pixels is +-8, so 4 * 64;
  // its (pi, pi) sum is 16, power 16^2 / 16 = 16. Two channels double both; a second image is separate.
  const board = Array.from({ length: 16 }, (_, k) => ((Math.floor(k / 4) + (k % 4)) % 2 === 0 ? 1 : -1))
  t.same([...highFrequencyEnergy(board, 1, 4, 1)], [256])
  t.same([...checkerboardPower(board, 1, 4, 1)], [16])
  const twoChannels = board.flatMap((v) => [v, -v])
  t.same([...checkerboardPower(twoChannels, 1, 4, 2)], [32])
  t.same([...highFrequencyEnergy([...twoChannels, ...new Array(32).fill(0)], 2, 4, 2)], [512, 0])
  t.throws(() => highFrequencyEnergy(spike, 1, 4, 1), /not 4x4x1/)
  t.throws(() => checkerboardPower(spike, 2, 3, 1), RangeError)
})

t.test('trait reconstruction error from given predictions', async (t) => {
  const r = traitError(['a', 'b'], [[0, 1, 1, 0], [2, 2, 2, 2]], [[0, 1, 0, 0], [0, 2, 2, 1]])
  t.same(r.perAttribute, { a: 0.25, b: 0.5 })
  t.equal(r.overall, 3 / 8)
  t.same(traitError(['a'], [[1, 2]], [[1, 2]]), { overall: 0, perAttribute: { a: 0 } })
  t.throws(() => traitError(['a', 'b'], [[1]], [[1]]), RangeError)
})

t.test('inception score on given probability tables', async (t) => {
  const uniform = new Float32Array(6 * 4).fill(0.25)
  close(t, inceptionScore(uniform, 6), 1, 'uniform predictions: 1')
  // perfectly confident and diverse: each of 3 classes twice -> 3
  const diverse = [1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1]
  close(t, inceptionScore(diverse, 6), 3, 'confident + diverse: number of classes')
  // confident but collapsed on one class -> 1
  close(t, inceptionScore([0, 1, 0, 1, 0, 1], 3), 1, 'collapsed: 1')
  // rows [1, 0] and [0.5, 0.5]: p(y) = [0.75, 0.25]
  const kl = (Math.log(1 / 0.75) + 0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(0.5 / 0.25)) / 2
  close(t, inceptionScore([1, 0, 0.5, 0.5], 2), Math.exp(kl), 'hand-computed mixed case')

  // two heads: a confident and diverse over 2 classes (IS 2), b uniform over 3 (IS 1)
  const a = [1, 0, 0, 1, 1, 0, 0, 1]
  const b = new Array(4 * 3).fill(1 / 3)
  const s1 = inceptionScores(['a', 'b'], [a, b], 4, 1)
  close(t, s1.perHead.a!.mean, 2, 'head a')
  close(t, s1.perHead.b!.mean, 1, 'head b')
  close(t, s1.product.mean, 2, 'product over heads')
  close(t, s1.geometricMean.mean, Math.SQRT2, 'geometric mean over heads')
  t.equal(s1.maxProduct, 6)
  t.equal(s1.splits, 1)
  const s2 = inceptionScores(['a', 'b'], [a, b], 4, 2)
  t.equal(s2.splits, 2)
  t.equal(s2.count, 4)
  close(t, s2.product.mean, 2, 'each split of 2 is still diverse')
  close(t, s2.product.std, 0, 'no spread')
  // splits larger than the count are clamped
  t.equal(inceptionScores(['a'], [a], 4, 10).splits, 4)
})

t.test('attribute accuracy and majority baseline', async (t) => {
  const r = attributeAccuracy([0, 1, 1, 2], [0, 1, 2, 2], 3)
  t.same(r, { accuracy: 0.75, majority: 0.5, majorityClass: 2, count: 4 })
})

t.test('classifier: shapes, a few steps lower the loss on a fixed batch, no leak', async (t) => {
  const c = createClassifier(tinyConfig(), targets, 3)
  const x = tf.randomUniform([8, 16, 16, 3], -1, 1, 'float32', 5) as tf.Tensor4D
  const rows = Array.from({ length: 8 }, (_, i) => ATTRIBUTE_SCHEMA.map((a, k) => (i * 7 + k) % a.numClasses))
  const y = labelTensor(c, rows)
  const lossNow = () => tf.tidy(() => classifierLoss(c, x, y).total.dataSync()[0]!)
  const h = hiddenFeatures(c, x)
  t.same(h.shape, [8, 16])
  h.dispose()
  const preds = await predictClasses(c, x)
  t.equal(preds.length, ATTRIBUTE_SCHEMA.length)
  preds.forEach((p, k) => t.ok(p.length === 8 && p.every((v) => v >= 0 && v < ATTRIBUTE_SCHEMA[k]!.numClasses), `head ${names[k]}`))

  const trainer = createClassifierTrainer(c)
  const before = classifierTrainStep(trainer, x, y).loss
  t.equal(classifierTrainStep(trainer, x, y).perTarget.length, ATTRIBUTE_SCHEMA.length)
  const tensors = tf.memory().numTensors
  let after = before
  for (let i = 0; i < 25; i++) after = classifierTrainStep(trainer, x, y).loss
  t.equal(tf.memory().numTensors, tensors, 'no tensors leak per step')
  t.ok(after < 0.9 * before, `training loss ${before.toFixed(3)} -> ${after.toFixed(3)}`)
  t.ok(lossNow() < before, 'inference-mode loss went down too')
  t.equal(trainer.step, 27)
  t.throws(() => labelTensor(c, [[0]]), RangeError)
  t.throws(() => labelTensor(c, [ATTRIBUTE_SCHEMA.map(() => 99)]), RangeError)
  tf.dispose([x, y])
  disposeClassifierTrainer(trainer)
  disposeClassifier(c)
  close(t, classifierLearningRate(0, 100, 1e-3), 1e-3, 'lr starts at the peak', 1e-12)
  close(t, classifierLearningRate(99, 100, 1e-3), 5e-5, 'lr ends at 5%', 1e-12)
})

t.test('classifier save/load round trip gives identical predictions; errors have codes', async (t) => {
  const c = createClassifier(tinyConfig(), targets, 4)
  const trainer = createClassifierTrainer(c)
  const x = tf.randomUniform([6, 16, 16, 3], -1, 1, 'float32', 6) as tf.Tensor4D
  const y = labelTensor(c, Array.from({ length: 6 }, () => ATTRIBUTE_SCHEMA.map(() => 1)))
  for (let i = 0; i < 3; i++) classifierTrainStep(trainer, x, y) // moves weights and BN statistics
  const dir = join(root, 'clf')
  await saveClassifier(dir, c, { step: 3, metrics: { val: { meanAccuracy: 0.5 } }, metadata: { data: 'test' } })
  await writeFile(join(dir, 'REPORT.md'), 'kept\n')
  await saveClassifier(dir, c, { step: 3, metrics: { val: { meanAccuracy: 0.5 } }, metadata: { data: 'test' } })
  t.equal(await readFile(join(dir, 'REPORT.md'), 'utf8'), 'kept\n', 'a re-save keeps other files')
  const json = JSON.parse(await readFile(join(dir, 'classifier.json'), 'utf8'))
  t.equal(json.format, 'npe-attribute-classifier')
  t.equal(json.formatVersion, 1)
  t.equal(json.step, 3)
  t.same(json.attributeSchema.map((a: { name: string }) => a.name), names)
  t.match(json.weights.sha256, /^[0-9a-f]{64}$/)

  const { classifier: loaded, json: lj } = await loadClassifier(dir)
  t.same(lj.metrics, { val: { meanAccuracy: 0.5 } })
  t.same(loaded.config, c.config)
  t.same(await predictClasses(loaded, x), await predictClasses(c, x), 'same predictions')
  const [h1, h2] = [hiddenFeatures(c, x), hiddenFeatures(loaded, x)]
  t.same([...h2.dataSync()], [...h1.dataSync()], 'identical hidden features')
  tf.dispose([h1, h2, x, y])
  disposeClassifier(loaded)
  disposeClassifierTrainer(trainer)
  disposeClassifier(c)

  const bytes = await readFile(join(dir, 'weights.bin'))
  bytes[10] = bytes[10]! ^ 0xff
  await writeFile(join(dir, 'weights.bin'), bytes)
  await t.rejects(loadClassifier(dir), { code: 'classifier_corrupt' })
  await t.rejects(loadClassifier(join(root, 'nowhere')), { code: 'classifier_missing' })
  await writeFile(join(dir, 'classifier.json'), JSON.stringify({ ...json, formatVersion: 99 }))
  await t.rejects(loadClassifier(dir), ClassifierError)
  await t.rejects(loadClassifier(dir), { code: 'classifier_version' })
})

t.test('labelled data: facesjs held-out faces, a dataset directory, classifier batches', async (t) => {
  const test = await loadEvalImages({ data: 'facesjs', split: 'test', n: 3, size: 16 })
  t.equal(test.count, 3)
  t.equal(test.images.length, 3 * 16 * 16 * 3)
  t.equal(test.labels?.length, 3)
  t.equal(test.labels?.[0]?.length, ATTRIBUTE_SCHEMA.length)

  const idx = classifierBatchIndices(1, 5, 8)
  t.same(idx, classifierBatchIndices(1, 5, 8), 'batch order is a pure function of (seed, step)')
  t.ok(idx.every((i) => splitOf(i) === 'train'), 'train split only')
  t.notSame(idx, classifierBatchIndices(1, 6, 8))

  const dir = join(root, 'ds')
  await writeDataset({ n: 40, size: 16, seed: 0, out: dir, concurrency: 2 })
  const train = await loadEvalImages({ data: dir, split: 'train', n: 5, size: 16 })
  t.equal(train.count, 5)
  t.equal(train.labels?.length, 5)
  const src = await openLabelledSource(dir, { size: 16, batchSize: 4, seed: 0 })
  const b = await src.batch(0)
  t.equal(b.images.length, 4 * 16 * 16 * 3)
  t.equal(b.labels.length, 4)
  t.same((await src.batch(0)).labels, b.labels, 'same step, same batch')
  await src.close()
  const c = createClassifier(tinyConfig(), targets, 1)
  const e = await evaluateClassifier(c, train)
  t.same(Object.keys(e.perAttribute), names)
  t.ok(Object.values(e.perAttribute).every((a) => a.accuracy >= 0 && a.accuracy <= 1 && a.majority > 0), 'accuracies in [0, 1]')
  disposeClassifier(c)
  // plain folder: images without labels
  const folder = await loadEvalImages({ data: join(dir, 'images'), split: 'test', n: 2, size: 16 })
  t.equal(folder.count, 2)
  t.equal(folder.labels, undefined)
  t.ok(folder.noLabels)
})

t.test('evaluate() on a tiny-16 IAN and a tiny classifier', async (t) => {
  const dir = join(root, 'ian')
  const fresh = createIAN(presetConfig('tiny-16'), 1)
  await saveCheckpoint(dir, fresh)
  disposeIAN(fresh)
  const { model } = await loadCheckpoint(dir)
  const c = createClassifier(tinyConfig(), targets, 2)
  const set = await loadEvalImages({ data: 'facesjs', split: 'test', n: 10, size: 16 })
  const progress: EvalProgress[] = []
  const before = tf.memory().numTensors
  const r = await evaluate({ model, classifier: c, images: set.images, count: set.count, samples: 20, seed: 3, batchSize: 4, splits: 2, onProgress: (p) => progress.push(p) })
  t.equal(tf.memory().numTensors, before, 'no tensors left behind')
  t.same(new Set(progress.map((p) => p.tensors)).size, 1, 'numTensors constant across batches')
  t.same(progress.map((p) => `${p.phase}:${p.done}`), ['reconstructions:4', 'reconstructions:8', 'reconstructions:10', 'samples:4', 'samples:8', 'samples:12', 'samples:16', 'samples:20'])
  t.equal(r.images, 10)
  t.equal(r.samples, 20)
  const finite = [r.pixel.mse, r.pixel.rmse, r.pixel.mae, r.feature.l2, r.feature.relative, r.trait.overall, r.inception!.product.mean, r.inception!.product.std, r.inception!.geometricMean.mean, r.realInception.product.mean]
  t.ok(finite.every(Number.isFinite), `finite: ${finite.map((v) => v.toFixed(4)).join(', ')}`)
  t.ok(r.pixel.mse > 0 && r.pixel.rmse <= Math.sqrt(r.pixel.mse) + 1e-9, 'mean RMSE <= sqrt(mean MSE) (Jensen)')
  t.same(Object.keys(r.trait.perAttribute), names)
  t.same(Object.keys(r.inception!.perHead), names)
  t.same(Object.keys(r.realInception.perHead), names)
  t.ok(Object.values(r.trait.perAttribute).every((v) => v >= 0 && v <= 1))
  t.ok(Object.values(r.inception!.perHead).every((s) => s.mean >= 1 - 1e-6), 'every head score >= 1')
  t.equal(r.inception!.splits, 2)

  // another batch size: the same numbers; samples = 0 skips the inception scores
  const again = await evaluate({ model, classifier: c, images: set.images, count: set.count, samples: 20, seed: 3, batchSize: 8, splits: 2 })
  close(t, again.pixel.mse, r.pixel.mse, 'pixel MSE independent of the batch size', 1e-6)
  const none = await evaluate({ model, classifier: c, images: set.images, count: set.count, samples: 0, seed: 3, batchSize: 8 })
  t.equal(none.inception, undefined)
  await t.rejects(evaluate({ model, classifier: c, images: set.images, count: 3, samples: 0, seed: 0, batchSize: 4 }), RangeError)

  // with larger initial weights G(z) varies with z: the seeded samples give the same scores
  // whatever the batch size, another seed gives others
  const varied = createIAN(presetConfig('tiny-16', { initStd: 0.3 }), 5)
  const sharp = createClassifier(defaultClassifierConfig(16, { channels: [8, 16], hidden: 16, initStd: 0.5 }), targets, 5)
  const score = async (seed: number, batchSize: number) =>
    (await evaluate({ model: varied, classifier: sharp, images: set.images.subarray(0, 2 * 16 * 16 * 3), count: 2, samples: 24, seed, batchSize, splits: 1 })).inception!.product.mean
  const s5 = await score(7, 5)
  t.ok(s5 > 1.01, `samples vary: ${s5}`)
  close(t, await score(7, 8), s5, 'same seed, another batch size: same score', 1e-4)
  t.ok(Math.abs((await score(8, 8)) - s5) > 1e-6, 'another seed: another score')
  // The artefact ratios against sums by hand over the same reconstructions (a model whose output varies):
  const rv = await evaluate({ model: varied, classifier: c, images: set.images, count: set.count, samples: 0, seed: 0, batchSize: 4 })
  const xb = imageBatch(set.images, 16, 0, 10)
  const xr = tf.tidy(() => reconstruct(varied, xb))
  const [xf, rf] = [xb.dataSync(), xr.dataSync()]
  const sum = (a: Float64Array) => a.reduce((acc, v) => acc + v, 0)
  const hf = sum(highFrequencyEnergy(rf, 10, 16)) / sum(highFrequencyEnergy(xf, 10, 16))
  const cb = sum(checkerboardPower(rf, 10, 16)) / sum(checkerboardPower(xf, 10, 16))
  t.ok(hf > 0.01, `the varied model has high-frequency content: ${hf}`)
  close(t, rv.spectrum.highFrequencyRatio, hf, 'HF ratio = sum over reconstructions / sum over originals', 1e-5 * hf)
  close(t, rv.spectrum.checkerboardRatio, cb, 'checker ratio likewise', 1e-5 * cb)
  // keepReconstructions: the first 6 of 10 (across two batches of 4), as bytes of those same reconstructions
  const kept = await evaluate({ model: varied, classifier: c, images: set.images, count: set.count, samples: 0, seed: 0, batchSize: 4, keepReconstructions: 6 })
  t.same(kept.reconstructions, floatToRgb(rf.subarray(0, 6 * 16 * 16 * 3)), 'kept reconstructions = floatToRgb(G(E(X))) of the first 6')
  t.equal(rv.reconstructions, undefined, 'none kept unless asked for')
  const all = await evaluate({ model: varied, classifier: c, images: set.images.subarray(0, 2 * 16 * 16 * 3), count: 2, samples: 0, seed: 0, batchSize: 4, keepReconstructions: 50 })
  t.equal(all.reconstructions!.length, 2 * 16 * 16 * 3, 'at most count are kept')
  tf.dispose([xb, xr])
  disposeIAN(varied)
  disposeClassifier(sharp)

  const table = evalTables([{ model: dir, step: 0, config: model.config, result: r }], 'test')
  t.match(table, /\| model .*pixel RMSE/)
  t.match(table, /real test images \(reference\)/)
  t.match(table, /hairStyle/)
  t.match(table, /\| HF ratio \| checker ratio \|/)
  t.ok(r.spectrum.highFrequencyRatio > 0 && Number.isFinite(r.spectrum.highFrequencyRatio), `HF ratio ${r.spectrum.highFrequencyRatio}`)
  t.ok(r.spectrum.checkerboardRatio > 0 && Number.isFinite(r.spectrum.checkerboardRatio), `checker ratio ${r.spectrum.checkerboardRatio}`)
  disposeIAN(model)
  disposeClassifier(c)
})

t.test('npe eval --grid: originals, then one row of reconstructions per model; --json leaves the bytes out', async (t) => {
  const ian = join(root, 'grid-ian')
  const clf = join(root, 'grid-clf')
  const fresh = createIAN(presetConfig('tiny-16', { initStd: 0.3 }), 9)
  await saveCheckpoint(ian, fresh)
  disposeIAN(fresh)
  const c = createClassifier(tinyConfig(), targets, 3)
  await saveClassifier(clf, c, { step: 1 })
  disposeClassifier(c)
  const { model } = await loadCheckpoint(ian)
  const set = await loadEvalImages({ data: 'facesjs', split: 'test', n: 5, size: 16 })
  const xb = imageBatch(set.images, 16, 0, 5)
  const xr = tf.tidy(() => reconstruct(model, xb))
  const expected = floatToRgb(xr.dataSync())
  tf.dispose([xb, xr])
  disposeIAN(model)

  const out = join(root, 'grid.png')
  const logs: string[] = []
  const log = console.log
  console.log = (m: string) => logs.push(m)
  let code
  try {
    code = await evalCli(['--model', ian, '--model', ian, '--classifier', clf, '--n', '5', '--samples', '0', '--grid', out, '--grid-n', '4', '--backend', 'wasm', '--quiet', '--json'])
  } finally {
    console.log = log
  }
  t.equal(code, 0)
  const json = JSON.parse(logs.join('\n'))
  t.equal(json.models.length, 2)
  t.notOk('reconstructions' in json.models[0], 'no pixel bytes in the JSON')
  const png = await decodeImage(new Uint8Array(await readFile(out)))
  t.same([png.width, png.height], [2 + 4 * 18, 2 + 3 * 18], '4 columns, 3 rows (originals + 2 models), 2 px gaps')
  const tile = (row: number, col: number) => {
    const px = new Uint8Array(16 * 16 * 3)
    for (let y = 0; y < 16; y++) px.set(png.data.subarray(((2 + row * 18 + y) * png.width + 2 + col * 18) * 3, ((2 + row * 18 + y) * png.width + 2 + col * 18 + 16) * 3), y * 16 * 3)
    return px
  }
  const D = 16 * 16 * 3
  t.same(tile(0, 3), set.images.subarray(3 * D, 4 * D), 'row 1: the held-out image')
  t.same(tile(1, 3), expected.subarray(3 * D, 4 * D), 'row 2: its reconstruction by the first model')
  t.same(tile(2, 0), expected.subarray(0, D), 'row 3: the second model (the same checkpoint)')
  const err: string[] = []
  const warn = console.error
  console.error = (m: string) => err.push(m)
  try {
    t.equal(await evalCli(['--model', ian, '--grid', out, '--grid-n', '0']), 2, 'usage error')
  } finally {
    console.error = warn
  }
  t.match(err.join('\n'), /--grid-n must be an integer in 1\.\.256/)
})
