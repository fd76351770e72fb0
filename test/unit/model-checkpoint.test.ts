import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { presetConfig } from '../../src/model/config.js'
import { createIAN, discriminator, disposeIAN, generator } from '../../src/model/networks.js'
import { createTrainer, disposeTrainer, trainStep } from '../../src/model/train.js'
import { CheckpointError } from '../../src/model/checkpoint.js'
import { loadCheckpoint, saveCheckpoint } from '../../src/model/checkpoint-dir.js'
import { maxAbsDiff, useBackend } from '../helpers/tf.js'

await useBackend('wasm')
const config = presetConfig('tiny-16')
const root = await mkdtemp(join(tmpdir(), 'npe-ckpt-'))
t.teardown(() => rm(root, { recursive: true, force: true }))

const batch = () => tf.tidy(() => tf.tanh(tf.randomNormal([4, 16, 16, 3], 0, 1, 'float32', 11))) as tf.Tensor4D

t.test('round trip gives identical outputs, and training resumes exactly', async (t) => {
  const model = createIAN(config, 7)
  const trainer = createTrainer(model, 8)
  const x = batch()
  for (let i = 0; i < 3; i++) trainStep(trainer, x)
  const dir = join(root, 'a')
  await saveCheckpoint(dir, model, { trainer, metadata: { dataset: 'test' } })
  const json = JSON.parse(await readFile(join(dir, 'checkpoint.json'), 'utf8'))
  t.equal(json.format, 'npe-ian-checkpoint')
  t.equal(json.formatVersion, 1)
  t.equal(json.step, 3)
  t.same(json.metadata, { dataset: 'test' })
  t.equal(json.weights.manifest[0].paths[0], 'weights.bin')

  const loaded = await loadCheckpoint(dir, { withTrainer: true })
  t.equal(loaded.json.step, 3)
  t.same(loaded.model.config, config)
  t.same(loaded.model.params.names(), model.params.names())
  const z = tf.randomNormal([2, 16], 0, 1, 'float32', 3) as tf.Tensor2D
  const a = generator(model, z)
  const b = generator(loaded.model, z)
  t.equal(maxAbsDiff(a, b), 0, 'generator outputs identical')
  const da = tf.tidy(() => discriminator(model, x).mu)
  const db = tf.tidy(() => discriminator(loaded.model, x).mu)
  t.equal(maxAbsDiff(da, db), 0, 'encoder outputs identical')

  // resume: the next step of the restored trainer equals the uninterrupted one
  const resumed = loaded.trainer!
  t.equal(resumed.step, 3)
  t.equal(resumed.optGE.iterations, 3)
  const next = trainStep(trainer, x)
  const nextResumed = trainStep(resumed, x)
  t.same(nextResumed, next, 'identical losses on the next step')
  t.equal(maxAbsDiff(model.params.byName('G/up1/deconv/kernel')!, loaded.model.params.byName('G/up1/deconv/kernel')!), 0, 'identical weights after the next step')
  t.equal(maxAbsDiff(model.params.byName('D/conv2/kernel')!, loaded.model.params.byName('D/conv2/kernel')!), 0)

  // inference-only load has no trainer and does not need optimizer.bin
  await rm(join(dir, 'optimizer.bin'))
  const inferenceOnly = await loadCheckpoint(dir)
  t.equal(inferenceOnly.trainer, undefined)
  disposeIAN(inferenceOnly.model)
  tf.dispose([x, z, a, b, da, db])
  disposeTrainer(trainer)
  disposeTrainer(resumed)
  disposeIAN(model)
  disposeIAN(loaded.model)
})

t.test('corrupted, mismatched or unknown checkpoints fail with a clear error', async (t) => {
  const model = createIAN(config, 1)
  const dir = join(root, 'b')
  await saveCheckpoint(dir, model)
  const good = await readFile(join(dir, 'checkpoint.json'), 'utf8')
  const weights = await readFile(join(dir, 'weights.bin'))
  const before = tf.memory().numTensors
  const expectError = async (code: string, pattern: RegExp) => {
    const err = await loadCheckpoint(dir).then(
      () => undefined,
      (e: unknown) => e,
    )
    t.ok(err instanceof CheckpointError, `${code}: a CheckpointError`)
    t.equal((err as CheckpointError).code, code)
    t.match((err as Error).message, pattern)
  }

  // flipped byte in the weights
  const flipped = Buffer.from(weights)
  flipped[100] = flipped[100]! ^ 0xff
  await writeFile(join(dir, 'weights.bin'), flipped)
  await expectError('checkpoint_corrupt', /SHA-256/)
  // truncated weights
  await writeFile(join(dir, 'weights.bin'), weights.subarray(0, 1000))
  await expectError('checkpoint_corrupt', /has 1000 bytes/)
  await writeFile(join(dir, 'weights.bin'), weights)

  // unknown format version
  await writeFile(join(dir, 'checkpoint.json'), good.replace('"formatVersion": 1', '"formatVersion": 99'))
  await expectError('checkpoint_version', /version 99 is not supported/)
  // not JSON
  await writeFile(join(dir, 'checkpoint.json'), '{oops')
  await expectError('checkpoint_corrupt', /not valid JSON/)
  // invalid config
  const j = JSON.parse(good)
  await writeFile(join(dir, 'checkpoint.json'), JSON.stringify({ ...j, config: { ...j.config, latentSize: -3 } }))
  await expectError('checkpoint_config', /latentSize/)
  // a valid config that does not match the weights (wider generator)
  const wider = { ...j.config, generator: { ...j.config.generator, channels: [32, 16, 16] } }
  await writeFile(join(dir, 'checkpoint.json'), JSON.stringify({ ...j, config: wider }))
  await expectError('checkpoint_mismatch', /wrong shape: .*G\/up2\/deconv\/kernel \[5,5,8,16\] vs \[5,5,16,16\]/)
  // a config without MDC: the file has parameters the model does not
  await writeFile(join(dir, 'checkpoint.json'), JSON.stringify({ ...j, config: { ...j.config, mdc: { ...j.config.mdc, enabled: false } } }))
  await expectError('checkpoint_mismatch', /unexpected: G\/out\/mdc/)
  // nothing there
  await rm(dir, { recursive: true })
  await expectError('checkpoint_missing', /no checkpoint at/)
  t.equal(tf.memory().numTensors, before, 'failed loads leave no tensors behind')
  disposeIAN(model)
})
