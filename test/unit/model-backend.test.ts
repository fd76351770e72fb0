import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { activeBackend, initBackend, type BackendPreference } from '../../src/model/backend.js'

// On this project's CI machines tfjs-node(-gpu) cannot install (its installer downloads
// libtensorflow), so 'auto' must fall through to wasm and say why it skipped the others.
const nativeInstalled = await import('@tensorflow/tfjs-node' as string).then(
  () => true,
  () => false,
)

t.test('explicit backends', async (t) => {
  const cpu = await initBackend('cpu')
  t.equal(cpu.name, 'cpu')
  t.equal(tf.getBackend(), 'cpu')
  t.equal(cpu.gpu, false)
  const wasm = await initBackend('wasm')
  t.equal(wasm.name, 'wasm')
  t.equal(wasm.package, '@tensorflow/tfjs-backend-wasm')
  t.equal(tf.getBackend(), 'wasm')
  t.same(activeBackend(), wasm)
  t.same(Array.from(tf.add(tf.tensor([1, 2]), 1).dataSync()), [2, 3], 'computes')
})

t.test('auto picks the first backend that loads', { skip: nativeInstalled && 'tfjs-node is installed here' }, async (t) => {
  const info = await initBackend('auto')
  t.equal(info.name, 'wasm')
  t.same(
    info.skipped.map((s) => s.candidate),
    ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'],
  )
  t.ok(info.skipped.every((s) => s.reason.length > 0), 'each skip has a reason')
})

t.test('a backend that cannot load is a clear error; unknown names are refused', { skip: nativeInstalled && 'tfjs-node is installed here' }, async (t) => {
  await t.rejects(initBackend('gpu'), /no TensorFlow.js backend could be started: @tensorflow\/tfjs-node-gpu: /)
  await t.rejects(initBackend('tpu' as BackendPreference), /unknown backend 'tpu'/)
  t.equal(tf.getBackend(), 'wasm', 'the previous backend stays active')
})

t.test('conv gradients on cpu and wasm (hand-computed 3x3 case)', async (t) => {
  const mark = Symbol.for('neural-photo-editor.wasm-training-kernel')
  for (const name of ['cpu', 'wasm'] as const) {
    await initBackend(name)
    const ours = (kernel: string) => (tf.getKernel(kernel, name)!.kernelFunc as unknown as Record<symbol, unknown>)[mark] === true
    t.equal(ours('Conv2DBackpropFilter'), true, `${name}: Conv2DBackpropFilter is ours`)
    t.equal(ours('Conv2DBackpropInput'), name === 'wasm', `${name}: Conv2DBackpropInput is ours on wasm only`)
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 3, 3, 1])
    const w = tf.tensor4d([1, 2, 3, 4], [2, 2, 1, 1])
    const loss = (xx: tf.Tensor, ww: tf.Tensor) => tf.sum(tf.conv2d(xx as tf.Tensor4D, ww as tf.Tensor4D, 1, 'valid'))
    // dW[i, j] = sum of the 2x2 window of x at offset (i, j)
    t.same(Array.from(tf.grad((ww: tf.Tensor) => loss(x, ww))(w).dataSync()), [12, 16, 24, 28], `${name}: filter gradient`)
    // dx[p] = sum of the taps of W that touch p
    t.same(Array.from(tf.grad((xx: tf.Tensor) => loss(xx, w))(x).dataSync()), [1, 3, 2, 4, 10, 6, 3, 7, 4], `${name}: input gradient`)
    tf.dispose([x, w])
  }
})
