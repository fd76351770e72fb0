/** Test helpers: backend switching and numeric comparison. */
import * as tf from '@tensorflow/tfjs'
import { initBackend, type BackendPreference } from '../../src/model/backend.js'

/** Activates a backend for the rest of the test file ('wasm' registers our extra kernels). */
export async function useBackend(name: Extract<BackendPreference, 'wasm' | 'cpu'>): Promise<void> {
  const info = await initBackend(name)
  if (info.name !== name) throw new Error(`wanted backend ${name}, got ${info.name}`)
}

export function maxAbsDiff(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>): number {
  const x = a instanceof tf.Tensor ? a.dataSync() : a
  const y = b instanceof tf.Tensor ? b.dataSync() : b
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`)
  let m = 0
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!))
  return m
}

export function maxAbs(a: tf.Tensor | ArrayLike<number>): number {
  const x = a instanceof tf.Tensor ? a.dataSync() : a
  let m = 0
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!))
  return m
}
