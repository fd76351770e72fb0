/**
 * `npe bench editor`: p50/p95 latency of encode, a 1-point and a 10-point
 * stroke, and sample, per backend, at batch 1 and 8, plus the ratio of one
 * paint step (forward + gradient w.r.t. z) to one generator forward.
 */
import * as tf from '@tensorflow/tfjs'
import { Editor, type EditorState } from '../editor/editor.js'
import { initBackend, type BackendPreference } from '../model/backend.js'
import type { IAN } from '../model/networks.js'
import { generator } from '../model/networks.js'
import { markdownTable, time } from './timing.js'

export interface EditorBenchOptions {
  loadModel: () => Promise<IAN>
  backends: Exclude<BackendPreference, 'auto'>[]
  reps: number
  photoSize: number
  log: (line: string) => void
}

export async function benchEditor(opts: EditorBenchOptions): Promise<{ table: string; ratios: string[]; skipped: string[] }> {
  const rows: (string | number)[][] = []
  const ratios: string[] = []
  const skipped: string[] = []
  for (const pref of opts.backends) {
    try {
      await initBackend(pref)
    } catch (err) {
      skipped.push(`${pref}: ${(err as Error).message}`)
      continue
    }
    const model = await opts.loadModel()
    const editor = new Editor(model)
    const S = opts.photoSize
    const photo = new Uint8Array(S * S * 3).map((_, i) => (i * 7) % 251)
    const reps = pref === 'cpu' ? Math.max(2, Math.ceil(opts.reps / 4)) : opts.reps
    let states: EditorState[] = []
    for (const B of [1, 8]) {
      const inputs = Array.from({ length: B }, () => ({ rgb: photo, width: S, height: S }))
      const add = async (op: string, fn: () => unknown) => {
        opts.log(`  ${pref}: ${op} (batch ${B}) ...`)
        const t = await time(fn, reps)
        rows.push([pref, op, B, t.p50.toFixed(1), t.p95.toFixed(1), (t.p50 / B).toFixed(1)])
      }
      await add(`encode ${S}x${S}`, () => {
        states = editor.encode(inputs)
      })
      const stroke = (n: number) => ({ points: Array.from({ length: n }, (_, i) => ({ x: S / 4 + (i * S) / 20, y: S / 2 })), radius: S / 16 })
      await add('stroke, 1 point', () => editor.paint(states.map((state) => ({ state, stroke: stroke(1), color: [200, 40, 40] as const }))))
      await add('stroke, 10 points', () => editor.paint(states.map((state) => ({ state, stroke: stroke(10), color: [200, 40, 40] as const }))))
      await add('sample', () => editor.sample(Array.from({ length: B }, (_, i) => i)))
    }
    // one paint step vs one G forward, batch 1, same inputs
    const L = model.config.latentSize
    const z = tf.randomNormal([1, L]) as tf.Tensor2D
    const fwd = await time(() => tf.tidy(() => generator(model, z).dataSync()), reps)
    const step = await time(() => tf.tidy(() => tf.grad((zz: tf.Tensor) => tf.mean(generator(model, zz as tf.Tensor2D)))(z).dataSync()), reps)
    z.dispose()
    ratios.push(`${pref}: one paint step (G forward + gradient w.r.t. z) = ${(step.p50 / fwd.p50).toFixed(2)} x one G forward (${step.p50.toFixed(1)} / ${fwd.p50.toFixed(1)} ms)`)
  }
  const table = markdownTable(['backend', 'operation', 'batch', 'p50 ms', 'p95 ms', 'p50 ms / request'], rows)
  return { table, ratios, skipped }
}
