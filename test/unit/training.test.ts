import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import sharp from 'sharp'
import { appendFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { faceSeed, renderFace, splitOf, writeDataset, type LabelRecord } from '../../src/data/facesjs.js'
import { presetConfig } from '../../src/model/config.js'
import { createIAN, disposeIAN } from '../../src/model/networks.js'
import {
  epochPermutation,
  facesjsBatchIndices,
  facesjsSource,
  folderBatchIndices,
  folderFiles,
  folderSource,
} from '../../src/training/data.js'
import { learningRateAt, runPaths, samplePath, train, TrainError, type LogRecord, type TrainSettings } from '../../src/training/loop.js'
import { GRID, gridSize, sampleGrid } from '../../src/training/samples.js'
import { useBackend } from '../helpers/tf.js'

await useBackend('wasm')
const root = await mkdtemp(join(tmpdir(), 'npe-training-'))
t.teardown(() => rm(root, { recursive: true, force: true }))

const R = 16
const TILE = R * R * 3
const equalBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0

/** 12 solid-colour PNGs (20 x 24, so they are cropped and resized), colour i = (20 i, 255 - 20 i, 7 i). */
const colour = (i: number) => [20 * i, 255 - 20 * i, 7 * i] as const
const folder = join(root, 'folder')
await mkdir(folder)
for (let i = 0; i < 12; i++) {
  const [r, g, b] = colour(i)
  await sharp({ create: { width: 20, height: 24, channels: 3, background: { r, g, b } } })
    .png()
    .toFile(join(folder, `img-${String(i).padStart(2, '0')}.png`))
}

const readLog = async (out: string): Promise<LogRecord[]> =>
  (await readFile(runPaths(out).log, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LogRecord)
const readCheckpointJson = async (out: string) => JSON.parse(await readFile(join(runPaths(out).checkpoint, 'checkpoint.json'), 'utf8'))
const LOSS_KEYS = ['ge', 'd', 'gAdv', 'dAdv', 'pixel', 'feature', 'kl', 'orthoG', 'orthoD', 'dAccuracy'] as const
const lossesOf = (r: LogRecord) => Object.fromEntries(LOSS_KEYS.map((k) => [k, r[k]]))

t.test('facesjs batches are a pure function of (seed, step), from the train split', async (t) => {
  const a = facesjsBatchIndices(5, 10, 6)
  t.equal(a.length, 6)
  t.same(facesjsBatchIndices(5, 10, 6), a, 'same seed and step, same indices')
  t.notSame(facesjsBatchIndices(5, 11, 6), a, 'another step differs')
  t.notSame(facesjsBatchIndices(6, 10, 6), a, 'another seed differs')
  for (let s = 0; s < 50; s++) {
    if (!facesjsBatchIndices(5, s, 6).every((i) => splitOf(i) === 'train')) t.fail(`step ${s}: an index outside the train split`)
  }

  const s1 = await facesjsSource({ resolution: R, batchSize: 3, seed: 5 })
  const s2 = await facesjsSource({ resolution: R, batchSize: 3, seed: 5 })
  const b7 = await s1.batch(7, { prefetch: true })
  t.equal(b7.length, 3 * TILE)
  t.ok(equalBytes(b7, await s2.batch(7)), 'step 7: same bytes from two sources')
  const b8 = await s1.batch(8, { prefetch: true }) // the prefetched one
  t.ok(equalBytes(b8, await s2.batch(8)), 'step 8 (prefetched): same bytes')
  t.notOk(equalBytes(b7, b8), 'steps 7 and 8 differ')
  const first = s1.indices(7)[0]!
  t.ok(equalBytes(b7.subarray(0, TILE), (await renderFace(faceSeed(0, first), R)).rgb), 'item 0 is the face at its dataset index')

  t.equal(s1.validation.length, 8 * TILE)
  t.ok(equalBytes(s1.validation, s2.validation), 'fixed validation images')
  const firstVal = [...Array(1000).keys()].find((i) => splitOf(i) === 'val')!
  t.ok(equalBytes(s1.validation.subarray(0, TILE), (await renderFace(faceSeed(0, firstVal), R)).rgb), 'validation starts with the first val-split face')
  await Promise.all([s1.close(), s2.close()])
})

t.test('folder batches: seeded per-epoch permutations, pure in (seed, step)', async (t) => {
  const perm = epochPermutation(1, 0, 12)
  t.same([...perm].sort((x, y) => x - y), [...Array(12).keys()], 'a permutation')
  t.same(epochPermutation(1, 0, 12), perm)
  t.notSame(epochPermutation(1, 1, 12), perm, 'another epoch, another order')
  // n = 12, B = 4: steps 0-2 are epoch 0, each image exactly once; steps 3-5 epoch 1
  const epoch0 = [0, 1, 2].flatMap((s) => folderBatchIndices(1, s, 4, 12))
  t.same(epoch0, [...perm], 'epoch 0 follows its permutation')
  const epoch1 = [3, 4, 5].flatMap((s) => folderBatchIndices(1, s, 4, 12))
  t.same([...epoch1].sort((x, y) => x - y), [...Array(12).keys()], 'epoch 1 covers every image once')
  // B = 5 does not divide 12: step 2 spans epochs 0 and 1
  t.same(folderBatchIndices(1, 2, 5, 12), [...perm.slice(10), ...epochPermutation(1, 1, 12).slice(0, 3)])

  const a = await folderSource(folder, { resolution: R, batchSize: 4, seed: 9 })
  const b = await folderSource(folder, { resolution: R, batchSize: 4, seed: 9 })
  t.equal(a.kind, 'folder')
  t.equal(a.trainCount, 12)
  const x = await a.batch(5)
  t.ok(equalBytes(x, await b.batch(5)), 'same seed and step, same bytes')
  t.notOk(equalBytes(x, await a.batch(6)), 'another step, other bytes')
  t.notOk(equalBytes(x, await (await folderSource(folder, { resolution: R, batchSize: 4, seed: 10 })).batch(5)), 'another seed, other bytes')
  a.indices(5).forEach((img, j) => {
    t.same([...x.subarray(j * TILE, j * TILE + 3)], colour(img), `item ${j} is image ${img} (its colour)`)
  })
  t.same([...a.validation.subarray(0, 3)], colour(4), 'validation: the last 8 images (img-04 first)')
  t.same([...a.validation.subarray(7 * TILE, 7 * TILE + 3)], colour(11))
})

t.test("a 'npe dataset' directory trains on its train split only", async (t) => {
  const dir = join(root, 'dataset')
  const { manifest } = await writeDataset({ n: 40, size: 16, seed: 3, out: dir })
  const labels = (await readFile(join(dir, 'labels.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as LabelRecord)
  const splitOfFile = new Map(labels.map((l) => [join(dir, l.file), l.split]))
  const files = await folderFiles(dir)
  t.equal(files.kind, 'npe-dataset')
  t.equal(files.train.length, manifest.splits.train)
  t.ok(manifest.splits.train < 40, 'some images are not in the train split')
  t.ok(files.train.every((f) => splitOfFile.get(f) === 'train'), 'only train-split files')
  t.ok(files.validation.length > 0 && files.validation.every((f) => splitOfFile.get(f) !== 'train'), 'validation from the held-out splits')

  const src = await folderSource(dir, { resolution: R, batchSize: 4, seed: 1 })
  t.equal(src.kind, 'npe-dataset')
  t.equal(src.trainCount, manifest.splits.train)
  const batch = await src.batch(3)
  const idx = src.indices(3)
  const png = await sharp(files.train[idx[0]!]!).raw().toBuffer()
  t.ok(equalBytes(batch.subarray(0, TILE), png), 'item 0 is the train image at its position')
})

t.test('learning-rate schedule mirrors the reference (epochs 25/50/75 of 80)', async (t) => {
  const lrs = [0, 4, 5, 9, 10, 14, 15].map((s) => learningRateAt(s, 16, 2e-4))
  t.same(lrs, [2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 5e-5, 1e-5])
  t.equal(learningRateAt(15, 16, 2e-4, 'constant'), 2e-4)
})

const base: Partial<TrainSettings> = {
  preset: 'tiny-16',
  data: 'facesjs',
  steps: 6,
  batch: 4,
  seed: 3,
  logEvery: 1,
  sampleEvery: 100,
  checkpointEvery: 100,
}

t.test('a stopped and resumed run ends exactly like an uninterrupted one', async (t) => {
  const runA = join(root, 'run-a')
  const runB = join(root, 'run-b')
  const A = await train({ out: runA, resume: false, settings: base, backend: 'wasm' })
  t.equal(A.step, 6)
  t.equal(A.stopped, null)

  const stop = new AbortController()
  const B1 = await train({
    out: runB,
    resume: false,
    settings: base,
    backend: 'wasm',
    signal: stop.signal,
    onProgress: (p) => {
      if (p.step === 3) stop.abort('test-stop')
    },
  })
  t.equal(B1.step, 3)
  t.equal(B1.stopped, 'test-stop')
  t.equal((await readCheckpointJson(runB)).step, 3, 'checkpoint written at the stop')

  const B2 = await train({ out: runB, resume: true, settings: {}, backend: 'wasm' })
  t.equal(B2.startStep, 3)
  t.equal(B2.step, 6)
  t.same(B2.settings, A.settings, 'settings come from the run being resumed')

  const ckA = await readCheckpointJson(runA)
  const ckB = await readCheckpointJson(runB)
  t.equal(ckB.step, 6)
  t.equal(ckB.weights.sha256, ckA.weights.sha256, 'identical weights at step 6')
  t.equal(ckB.optimizer.sha256, ckA.optimizer.sha256, 'identical Adam state at step 6')
  t.ok(equalBytes(await readFile(join(runA, 'checkpoint', 'weights.bin')), await readFile(join(runB, 'checkpoint', 'weights.bin'))))
  t.equal(ckA.metadata.preset, 'tiny-16')
  t.equal(ckA.metadata.backend, 'wasm')
  t.equal(ckA.metadata.steps, 6)
  t.ok(ckA.metadata.wallSeconds > 0 && ckA.metadata.imagesPerSec > 0)
  t.same(Object.keys(ckA.metadata.losses).sort(), [...LOSS_KEYS].sort())

  const logA = await readLog(runA)
  const logB = await readLog(runB)
  t.same(logA.map((r) => r.step), [1, 2, 3, 4, 5, 6])
  t.same(logB.map((r) => r.step), [1, 2, 3, 4, 5, 6])
  for (const i of [3, 4, 5]) t.same(lossesOf(logB[i]!), lossesOf(logA[i]!), `step ${i + 1}: identical losses`)
  for (const i of [0, 1, 2]) t.same(lossesOf(logB[i]!), lossesOf(logA[i]!))
  t.same(logA.map((r) => r.lr), [2e-4, 2e-4, 1e-4, 1e-4, 5e-5, 5e-5], 'the step schedule over 6 steps (step index / 6)')
  t.ok(logA.every((r) => r.imagesPerSec > 0 && r.wall > 0))
  t.ok(logB[5]!.wall > logB[2]!.wall, 'wall time accumulates across the resume')

  const config = JSON.parse(await readFile(runPaths(runB).config, 'utf8'))
  t.equal(config.settings.preset, 'tiny-16')
  t.same(config.model, presetConfig('tiny-16'))
  t.same(config.resumes.map((r: { fromStep: number }) => r.fromStep), [3])

  // (c) the sample grid written at the last step
  const meta = await sharp(samplePath(runA, 6)).metadata()
  t.equal(meta.width, 8 * R + 9 * GRID.pad, 'grid width: 8 tiles and 9 gaps')
  t.equal(meta.height, 5 * R + 6 * GRID.pad + 2 * GRID.blockGap, 'grid height: 5 rows, 6 gaps, 2 block gaps')
  t.same(gridSize(R), { width: meta.width, height: meta.height })
  t.equal(meta.channels, 3)

  // (e) refusals: resuming with another model config, reusing a run, resuming nothing
  await t.rejects(train({ out: runA, resume: true, settings: { binary: true }, backend: 'wasm' }), { name: 'TrainError', code: 'config_mismatch' })
  await t.rejects(train({ out: runA, resume: false, settings: base, backend: 'wasm' }), {
    name: 'TrainError',
    code: 'run_exists',
    message: /already exists; pass --resume/,
  })
  await t.rejects(train({ out: join(root, 'nothing-here'), resume: true, settings: base, backend: 'wasm' }), {
    name: 'TrainError',
    code: 'no_checkpoint',
    message: /cannot resume: .* has no checkpoint/,
  })
  // a log line past the checkpoint (a run killed before it could save) is dropped on resume
  await appendFile(runPaths(runA).log, JSON.stringify({ ...logA[5], step: 7 }) + '\n')
  await rm(runPaths(runA).config)
  const done = await train({ out: runA, resume: true, settings: {}, backend: 'wasm' })
  t.equal(done.step, 6, 'resuming a finished run trains nothing')
  t.equal(done.settings.preset, 'tiny-16', 'settings from the checkpoint when config.json is gone')
  t.same((await readLog(runA)).map((r) => r.step), [1, 2, 3, 4, 5, 6], 'log truncated to the checkpoint')
})

t.test('refuses a missing data folder and missing settings without creating the run', async (t) => {
  const out = join(root, 'run-bad')
  await t.rejects(train({ out, resume: false, settings: { ...base, data: join(root, 'no-such-dir') }, backend: 'wasm' }), {
    code: 'bad_data',
    message: /not a directory/,
  })
  await t.rejects(train({ out, resume: false, settings: { data: 'facesjs' }, backend: 'wasm' }), { code: 'missing_setting' })
  await t.rejects(readFile(runPaths(out).config), 'no config.json written')
  t.ok(new TrainError('diverged', 'x') instanceof Error)
})

t.test('the number of tensors stays flat across steps, samples and checkpoints', async (t) => {
  const before = tf.memory().numTensors
  const counts: number[] = []
  const out = join(root, 'run-memory')
  await train({
    out,
    resume: false,
    settings: { ...base, data: folder, steps: 5, sampleEvery: 2, checkpointEvery: 2 },
    backend: 'wasm',
    onProgress: () => counts.push(tf.memory().numTensors),
  })
  t.equal(counts.length, 5)
  t.same(counts, new Array(5).fill(counts[0]), `flat: ${counts.join(', ')}`)
  t.equal(tf.memory().numTensors, before, 'everything disposed at the end')
  t.same((await readLog(out)).map((r) => r.step), [1, 2, 3, 4, 5])
  await t.resolves(readFile(samplePath(out, 2)))
  await t.resolves(readFile(samplePath(out, 4)))
  await t.resolves(readFile(samplePath(out, 5)), 'a grid at the end too')
})

t.test('sample grid tiles: originals next to reconstructions', async (t) => {
  const model = createIAN(presetConfig('tiny-16'), 1)
  const validation = new Uint8Array(8 * TILE)
  for (let i = 0; i < 8; i++) validation.fill(30 * i + 10, i * TILE, (i + 1) * TILE)
  const before = tf.memory().numTensors
  const grid = sampleGrid(model, validation, 0)
  t.equal(tf.memory().numTensors, before, 'no tensors left')
  t.same({ width: grid.width, height: grid.height }, gridSize(R))
  const px = (x: number, y: number) => [...grid.rgb.subarray((y * grid.width + x) * 3, (y * grid.width + x) * 3 + 3)]
  const rowY = (row: number) => GRID.pad + row * (R + GRID.pad) + (row >= 1 ? GRID.blockGap : 0) + (row >= 3 ? GRID.blockGap : 0)
  const colX = (col: number) => GRID.pad + col * (R + GRID.pad)
  t.same(px(0, 0), [GRID.background, GRID.background, GRID.background], 'border')
  t.same(px(colX(0) + 5, rowY(1) + 5), [10, 10, 10], 'validation image 0 at row 1, column 0')
  t.same(px(colX(2) + 5, rowY(1) + 5), [40, 40, 40], 'validation image 1 at row 1, column 2')
  t.same(px(colX(0) + 5, rowY(2) + 5), [130, 130, 130], 'validation image 4 at row 2, column 0')
  t.same(sampleGrid(model, validation, 0).rgb, grid.rgb, 'the same grid for the same model and seed')
  disposeIAN(model)
})

t.test('--archive-every keeps inference-only copies at those steps', async (t) => {
  const out = join(root, 'run-archive')
  await train({ out, resume: false, settings: { ...base, data: folder, steps: 4, archiveEvery: 2, sampleEvery: 100, checkpointEvery: 100 }, backend: 'wasm' })
  const { loadCheckpoint } = await import('../../src/model/checkpoint-dir.js')
  const { archivePath } = await import('../../src/training/loop.js')
  for (const step of [2, 4]) {
    const { json, model, trainer } = await loadCheckpoint(archivePath(out, step), { withTrainer: true })
    t.equal(json.step, step)
    t.equal(json.optimizer, undefined, 'no optimizer state in the copy')
    t.equal(trainer, undefined)
    model.params.dispose()
  }
  await t.rejects(readFile(join(archivePath(out, 3), 'checkpoint.json')), 'nothing at other steps')
})

t.test('--init-from starts a new run from a checkpoint with a fresh optimiser', async (t) => {
  const { loadCheckpoint } = await import('../../src/model/checkpoint-dir.js')
  const { archivePath } = await import('../../src/training/loop.js')
  const first = join(root, 'run-init-a')
  await train({ out: first, resume: false, settings: { ...base, data: folder, steps: 2, archiveEvery: 2, sampleEvery: 100, checkpointEvery: 100 }, backend: 'wasm' })
  const from = archivePath(first, 2)
  // A learning rate of 1e-12 leaves the trainable weights where they started: the checkpoint's.
  const out = join(root, 'run-init-b')
  await train({ out, resume: false, initFrom: from, settings: { ...base, data: folder, steps: 1, lr: 1e-12, sampleEvery: 100 }, backend: 'wasm' })
  const started = await loadCheckpoint(from)
  const ended = await loadCheckpoint(runPaths(out).checkpoint, { withTrainer: true })
  const fresh = createIAN(started.model.config, base.seed)
  const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!)
  for (const name of ['G/fc/kernel', 'D/conv1/kernel', 'E/mu/kernel']) {
    t.ok(diff(ended.model.params.byName(name)!, started.model.params.byName(name)!) < 1e-6, `${name}: the checkpoint's`)
    // two Adam steps at 2e-4 move a weight by up to ~4e-4 from the seed's initialisation
    t.ok(diff(fresh.params.byName(name)!, started.model.params.byName(name)!) > 1e-4, `${name}: not a fresh initialisation`)
  }
  t.equal(ended.json.step, 1, 'step counts from 0')
  t.equal(ended.trainer!.optGE.iterations, 1, 'a fresh optimiser')
  const runConfig = JSON.parse(await readFile(runPaths(out).config, 'utf8'))
  t.same(runConfig.initFrom, { dir: from, step: 2, weightsSha256: started.json.weights.sha256 })
  for (const m of [started.model, ended.model, fresh]) disposeIAN(m)
  if (ended.trainer) {
    ended.trainer.optGE.dispose()
    ended.trainer.optD.dispose()
  }

  const mismatch = join(root, 'run-init-c')
  const tensorsBefore = tf.memory().numTensors
  await t.rejects(
    train({ out: mismatch, resume: false, initFrom: from, settings: { ...base, data: folder, steps: 1, binary: true }, backend: 'wasm' }),
    { name: 'TrainError', code: 'config_mismatch', message: /--init-from .* another architecture than preset 'tiny-16' --binary gives/ },
  )
  t.equal(tf.memory().numTensors, tensorsBefore, 'the refused checkpoint is disposed')
  await t.rejects(
    train({ out: mismatch, resume: false, initFrom: from, settings: { ...base, data: folder, steps: 1, mdc: false, lambdaAdv: 0.5 }, backend: 'wasm' }),
    { name: 'TrainError', code: 'config_mismatch', message: /another architecture than preset 'tiny-16' --no-mdc --lambda-adv 0.5 gives/ },
  )
  await t.rejects(
    train({ out, resume: true, initFrom: from, settings: {}, backend: 'wasm' }),
    { name: 'TrainError', code: 'not_resumable', message: /cannot be combined with --resume/ },
  )
})

t.test('--init-from with other loss weights: a fine-tune trains with the run weights and saves them', async (t) => {
  const { loadCheckpoint } = await import('../../src/model/checkpoint-dir.js')
  const { archivePath, architectureOf } = await import('../../src/training/loop.js')
  const first = join(root, 'run-ft-a')
  await train({ out: first, resume: false, settings: { ...base, data: folder, steps: 1, archiveEvery: 1, sampleEvery: 100 }, backend: 'wasm' })
  const from = archivePath(first, 1)
  const preset = presetConfig('tiny-16')
  // lambda_img = lambda_feature = 0 and a large lambda_adv: a step that only the adversarial term drives
  const ft = join(root, 'run-ft-b')
  const lambdas = { lambdaPixel: 0, lambdaFeature: 0, lambdaAdv: 3, lambdaKl: 0.25 }
  await train({ out: ft, resume: false, initFrom: from, settings: { ...base, data: folder, steps: 1, sampleEvery: 100, ...lambdas }, backend: 'wasm' })
  const runConfig = JSON.parse(await readFile(runPaths(ft).config, 'utf8'))
  t.same(runConfig.model.loss, { pixel: 0, feature: 0, adversarial: 3, kl: 0.25 }, 'config.json: the run\'s loss weights')
  t.same(runConfig.settings.lambdaAdv, 3)
  const ended = await loadCheckpoint(runPaths(ft).checkpoint, { withTrainer: true })
  t.same(ended.model.config.loss, { pixel: 0, feature: 0, adversarial: 3, kl: 0.25 }, 'the checkpoint carries them')
  t.same(architectureOf(ended.model.config), architectureOf(preset), 'same architecture as the preset')
  t.equal(ended.model.config.orthoWeight, preset.orthoWeight)
  const logged = JSON.parse((await readFile(runPaths(ft).log, 'utf8')).trim().split('\n')[0]!)
  // the G/E objective of the first step: lambda_adv * gAdv + KL weight * kl + ortho (pixel and feature off)
  t.ok(Math.abs(logged.ge - (3 * logged.gAdv + 0.25 * logged.kl + preset.orthoWeight * logged.orthoG)) < 1e-3 * Math.abs(logged.ge), `ge ${logged.ge} = 3 gAdv + 0.25 kl + ortho`)
  if (ended.trainer) {
    ended.trainer.optGE.dispose()
    ended.trainer.optD.dispose()
  }
  disposeIAN(ended.model)
  // resuming keeps the run's own weights; giving other ones is refused
  await t.rejects(train({ out: ft, resume: true, settings: { steps: 2, lambdaAdv: 1 }, backend: 'wasm' }), { name: 'TrainError', code: 'config_mismatch' })
  const resumed = await train({ out: ft, resume: true, settings: { steps: 2 }, backend: 'wasm' })
  t.equal(resumed.step, 2)
  t.same(resumed.config.loss, { pixel: 0, feature: 0, adversarial: 3, kl: 0.25 })
})
