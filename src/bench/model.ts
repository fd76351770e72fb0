/**
 * `npe bench model`: per available backend, the generator forward (batch 1
 * and 16), the gradient of a paint-style patch loss w.r.t. z (batch 1), and
 * one full IAN training step (batch 16), with FLOPs and achieved GFLOP/s.
 */
import * as tf from '@tensorflow/tfjs'
import { initBackend, type BackendPreference } from '../model/backend.js'
import { presetConfig } from '../model/config.js'
import { benchmarkFlops } from '../model/flops.js'
import { createIAN, disposeIAN, generator } from '../model/networks.js'
import { createTrainer, disposeTrainer, trainStep } from '../model/train.js'
import { markdownTable, time } from './timing.js'

export interface ModelBenchOptions {
  preset: string
  backends: Exclude<BackendPreference, 'auto'>[]
  reps: number
  trainBatch: number
  log: (line: string) => void
}

export interface ModelBenchRow {
  backend: string
  op: string
  batch: number
  p50: number
  p95: number
  gflop: number
  gflops: number
}

export async function benchModel(opts: ModelBenchOptions): Promise<{ rows: ModelBenchRow[]; skipped: string[]; table: string }> {
  const config = presetConfig(opts.preset)
  const rows: ModelBenchRow[] = []
  const skipped: string[] = []
  for (const pref of opts.backends) {
    let backendName: string
    try {
      backendName = (await initBackend(pref)).name
    } catch (err) {
      skipped.push(`${pref}: ${(err as Error).message}`)
      continue
    }
    const label = pref === backendName ? pref : `${pref} (${backendName})`
    const model = createIAN(config, 0)
    const L = config.latentSize
    const R = config.resolution
    const reps = pref === 'cpu' ? Math.max(1, Math.ceil(opts.reps / 4)) : opts.reps
    const add = async (op: string, batch: number, flops: number, fn: () => unknown, n = reps) => {
      opts.log(`  ${label}: ${op} (batch ${batch}) ...`)
      const t = await time(fn, n)
      rows.push({ backend: label, op, batch, p50: t.p50, p95: t.p95, gflop: flops / 1e9, gflops: flops / 1e9 / (t.p50 / 1000) })
    }
    for (const B of [1, 16]) {
      const z = tf.randomNormal([B, L], 0, 1, 'float32', 1) as tf.Tensor2D
      await add('G forward', B, benchmarkFlops(config, B).generatorForward, () => tf.tidy(() => generator(model, z).dataSync()))
      z.dispose()
    }
    const z1 = tf.randomNormal([1, L], 0, 1, 'float32', 2) as tf.Tensor2D
    const colour = tf.tensor1d([1, -1, -1])
    const patch = Math.max(2, Math.round(R / 8))
    await add('grad wrt z', 1, benchmarkFlops(config, 1).latentGradient, () =>
      tf.tidy(() =>
        tf
          .grad((zz: tf.Tensor) =>
            tf.mean(tf.squaredDifference(tf.slice(generator(model, zz as tf.Tensor2D), [0, R / 2 - patch, R / 2 - patch, 0], [1, 2 * patch, 2 * patch, 3]), colour)),
          )(z1)
          .dataSync(),
      ),
    )
    tf.dispose([z1, colour])
    const trainer = createTrainer(model, 0)
    const x = tf.tidy(() => tf.tanh(tf.randomNormal([opts.trainBatch, R, R, 3], 0, 1, 'float32', 3))) as tf.Tensor4D
    await add('train step', opts.trainBatch, benchmarkFlops(config, opts.trainBatch).trainStep, () => trainStep(trainer, x), Math.max(1, Math.ceil(reps / 2)))
    x.dispose()
    disposeTrainer(trainer)
    disposeIAN(model)
  }
  const table = markdownTable(
    ['backend', 'operation', 'batch', 'p50 ms', 'p95 ms', 'GFLOP', 'GFLOP/s'],
    rows.map((r) => [r.backend, r.op, r.batch, r.p50.toFixed(1), r.p95.toFixed(1), r.gflop.toFixed(3), r.gflops.toFixed(2)]),
  )
  return { rows, skipped, table }
}
