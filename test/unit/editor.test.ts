import t from 'tap'
import * as tf from '@tensorflow/tfjs'
import { presetConfig } from '../../src/model/config.js'
import { createIAN, encode, generator } from '../../src/model/networks.js'
import { blendEdit, defaultMaskSigma, gaussianBlur, gaussianTaps } from '../../src/editor/blend.js'
import { centredSquare, cropToModel, Editor, EditorError, transferToPhoto, type EditorState } from '../../src/editor/editor.js'
import { maxAbsDiff, useBackend } from '../helpers/tf.js'

await useBackend('wasm')
// a larger init than training's 0.02 so an untrained G has gradients well above float noise
const model = createIAN(presetConfig('tiny-16', { initStd: 0.15 }), 21)
const editor = new Editor(model)
const R = 16

function randomPhoto(width: number, height: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height * 3)
  let s = seed
  for (let i = 0; i < out.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    // smooth-ish content so the model sees structure
    const p = Math.floor(i / 3)
    out[i] = (((p % width) * 5 + Math.floor(p / width) * 3 + (s >>> 24)) & 0xff) >>> 0
  }
  return out
}

t.test('gaussian taps and blur', async (t) => {
  const taps = gaussianTaps(1)
  t.equal(taps.length, 7)
  const raw = [-3, -2, -1, 0, 1, 2, 3].map((i) => Math.exp(-(i * i) / 2))
  const sum = raw.reduce((a, b) => a + b)
  t.ok(maxAbsDiff(taps, raw.map((v) => v / sum)) < 1e-7)
  t.same(Array.from(gaussianTaps(0)), [1])
  t.equal(defaultMaskSigma(64), 0.7)
  t.equal(defaultMaskSigma(16), 0.175)
  // an impulse in the middle of a 9x9 image spreads as taps x taps
  const impulse = tf.buffer([1, 9, 9, 1])
  impulse.set(1, 0, 4, 4, 0)
  const blurred = gaussianBlur(impulse.toTensor() as tf.Tensor4D, 1).dataSync()
  t.ok(Math.abs(blurred[4 * 9 + 4]! - taps[3]! * taps[3]!) < 1e-6, 'centre = t0^2')
  t.ok(Math.abs(blurred[4 * 9 + 6]! - taps[3]! * taps[5]!) < 1e-6, 'two right = t0 t2')
  t.ok(Math.abs(Array.from(blurred).reduce((a, b) => a + b, 0) - 1) < 1e-5, 'mass preserved away from the border')
  // reflected border: a constant image stays constant
  const flat = gaussianBlur(tf.fill([1, 5, 6, 1], 0.3) as tf.Tensor4D, 0.7).dataSync()
  t.ok(flat.every((v) => Math.abs(v - 0.3) < 1e-6))
})

t.test('blend (eq. 1-2) against a hand-computed reference', async (t) => {
  // 1x2x2 images, channels equal; no smoothing (sigma 0) so M = min(mean |G - X_hat|, 1)
  const px = (v: number[]) => tf.tensor4d(v.flatMap((a) => [a, a, a]), [1, 2, 2, 3])
  const X = px([0.5, -0.5, 0.2, 0.9])
  const Xhat = px([0.4, -0.4, 0.1, 0.0])
  const G = px([0.4, 0.4, 0.6, -1.0]) // |G - X_hat| = 0, 0.8, 0.5, 1.0
  const { y, mask } = blendEdit(X, Xhat, G, 0)
  t.ok(maxAbsDiff(mask, [0, 0.8, 0.5, 1]) < 1e-6)
  // Y = X_hat + M DELTA + (1 - M) ERROR, with DELTA = G - X_hat, ERROR = X - X_hat
  const expected = [0, 1, 2, 3].map((i) => {
    const [x, xh, g, m] = [[0.5, -0.5, 0.2, 0.9][i]!, [0.4, -0.4, 0.1, 0.0][i]!, [0.4, 0.4, 0.6, -1.0][i]!, [0, 0.8, 0.5, 1][i]!]
    return xh + m * (g - xh) + (1 - m) * (x - xh)
  })
  t.ok(maxAbsDiff(y, expected.flatMap((a) => [a, a, a])) < 1e-6)
  t.same(Array.from(y.dataSync().slice(0, 3)).map((v) => +v.toFixed(6)), [0.5, 0.5, 0.5], 'Y = X where M = 0')
  t.ok(maxAbsDiff(y.dataSync().slice(9, 12), [-1, -1, -1]) < 1e-6, 'Y = G where M = 1')
  // with smoothing, M = blur(min(...)) and still Y = (1 - M) X + M G
  const s = blendEdit(X, Xhat, G, 0.7)
  const m = s.mask.dataSync()
  const manual = gaussianBlur(tf.tensor4d([0, 0.8, 0.5, 1], [1, 2, 2, 1]), 0.7).dataSync()
  t.ok(maxAbsDiff(m, manual) < 1e-6)
})

t.test('full-resolution transfer: outside the crop byte-identical, zero change unchanged', async (t) => {
  const W = 40
  const H = 30
  const photo = randomPhoto(W, H, 3)
  const crop = { x: 7, y: 4, w: 24, h: 24 }
  const change = new Float32Array(R * R * 3)
  // a change only in the top-left 4x4 model pixels
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) change.fill(0.4, (r * R + c) * 3, (r * R + c) * 3 + 3)
  const out = transferToPhoto(photo, W, crop, change, R)
  t.equal(out.length, photo.length)
  let outsideDiff = 0
  let insideChanged = 0
  let farChanged = 0
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3
      const inside = x >= crop.x && x < crop.x + crop.w && y >= crop.y && y < crop.y + crop.h
      const d = Math.abs(out[i]! - photo[i]!) + Math.abs(out[i + 1]! - photo[i + 1]!) + Math.abs(out[i + 2]! - photo[i + 2]!)
      if (!inside) outsideDiff += d
      else if (x < crop.x + 4 && y < crop.y + 4 && d > 0) insideChanged++
      else if ((x >= crop.x + 9 || y >= crop.y + 9) && d > 0) farChanged++
    }
  }
  t.equal(outsideDiff, 0, 'outside the crop: byte-identical')
  t.equal(farChanged, 0, 'where the up-sampled change is 0: unchanged')
  t.equal(insideChanged, 16, 'the changed area moved')
  // 0.4 in [-1, 1] units = 51 bytes, clamped at 255
  const i0 = (crop.y * W + crop.x) * 3
  t.equal(out[i0], Math.min(255, photo[i0]! + 51))
  t.same(transferToPhoto(photo, W, crop, new Float32Array(R * R * 3), R), photo, 'no change, same bytes')
})

t.test('encode: a non-square photo larger than the model', async (t) => {
  const W = 50
  const H = 37
  const photo = randomPhoto(W, H, 5)
  const [s] = editor.encode([{ rgb: photo, width: W, height: H }])
  t.same(s!.crop, centredSquare(W, H))
  t.same(s!.crop, { x: 6, y: 0, w: 37, h: 37 })
  t.equal(s!.output.length, W * H * 3, 'output has the photo size')
  t.same(s!.output, photo, 'before any edit the output is the photo')
  t.equal(s!.x.length, R * R * 3)
  t.same(Array.from(s!.z), Array.from(s!.z0))
  const X = cropToModel(photo, W, s!.crop, R)
  t.ok(maxAbsDiff(X, s!.x) < 1e-6, 'X is the crop at model resolution')
  const z = encode(model, tf.expandDims(X) as tf.Tensor4D)
  t.ok(maxAbsDiff(z, s!.z0) < 1e-5, 'z0 = mu(E(X))')
  t.ok(maxAbsDiff(generator(model, z as tf.Tensor2D), s!.xHat) < 1e-5, 'X_hat = G(z0)')
  t.throws(() => editor.encode([{ rgb: photo, width: W, height: H, crop: { x: 30, y: 0, w: 37, h: 37 } }]), EditorError)
  t.throws(() => editor.encode([{ rgb: photo.subarray(3), width: W, height: H }]), /expected 50x37x3/)
})

function patchLoss(z: Float32Array, r0: number, c0: number, size: number, colour: number[]): number {
  return tf.tidy(() => {
    const g = tf.slice(generator(model, tf.tensor2d(z, [1, z.length])), [0, r0, c0, 0], [1, size, size, 3])
    return tf.mean(tf.squaredDifference(g, tf.tensor1d(colour.map((c) => c / 127.5 - 1)))).dataSync()[0]!
  })
}

t.test('a paint step with a small strength lowers the patch loss', async (t) => {
  const photo = randomPhoto(32, 32, 9)
  const [s] = editor.encode([{ rgb: photo, width: 32, height: 32 }])
  // photo 32 px, model 16: point (16, 16) radius 4 -> model centre (8, 8) radius 2 -> rows/cols 6..10
  const red = [255, 0, 0]
  const before = patchLoss(s!.z, 6, 6, 4, red)
  const [after] = editor.paint([{ state: s!, stroke: { points: [{ x: 16, y: 16 }], radius: 4 }, color: red as [number, number, number], strength: 0.1 }])
  const lossAfter = patchLoss(after!.z, 6, 6, 4, red)
  t.ok(lossAfter < before, `patch loss ${before.toFixed(6)} -> ${lossAfter.toFixed(6)}`)
  t.ok(maxAbsDiff(after!.z, s!.z) > 0, 'z moved')
  t.same(Array.from(after!.z0), Array.from(s!.z0), 'z0 kept')
  t.equal(after!.output.length, photo.length)
  // lighten raises, darken lowers the patch mean
  const mean = (z: Float32Array) => tf.tidy(() => tf.mean(tf.slice(generator(model, tf.tensor2d(z, [1, 16])), [0, 6, 6, 0], [1, 4, 4, 3])).dataSync()[0]!)
  const [light] = editor.paint([{ state: s!, stroke: { points: [{ x: 16, y: 16 }], radius: 4 }, mode: 'lighten', strength: 0.1 }])
  const [dark] = editor.paint([{ state: s!, stroke: { points: [{ x: 16, y: 16 }], radius: 4 }, mode: 'darken', strength: 0.1 }])
  t.ok(mean(light!.z) > mean(s!.z), 'lighten')
  t.ok(mean(dark!.z) < mean(s!.z), 'darken')
  // points off the crop take no step
  const [off] = editor.paint([{ state: s!, stroke: { points: [{ x: -50, y: 5 }], radius: 2 }, color: [0, 0, 0] }])
  t.same(Array.from(off!.z), Array.from(s!.z))
  t.throws(() => editor.paint([{ state: s!, stroke: { points: [{ x: 1, y: 1 }], radius: 0 }, color: [0, 0, 0] }]), /radius/)
})

t.test('a batch of paint requests equals the requests one by one', async (t) => {
  const states = editor.encode([
    { rgb: randomPhoto(24, 24, 1), width: 24, height: 24 },
    { rgb: randomPhoto(40, 20, 2), width: 40, height: 20 },
  ])
  const sample = editor.sample([7])[0]!
  const requests = [
    { state: states[0]!, stroke: { points: [{ x: 3, y: 4 }, { x: 6, y: 8 }, { x: 9, y: 12 }], radius: 3 }, color: [200, 30, 40] as const },
    { state: states[1]!, stroke: { points: [{ x: 20, y: 10 }], radius: 5 }, mode: 'lighten' as const, strength: 2 },
    { state: sample, stroke: { points: [{ x: 8, y: 8 }, { x: 9, y: 8 }], radius: 2 }, color: [0, 0, 255] as const },
  ]
  const batched = editor.paint(requests)
  requests.forEach((req, i) => {
    const [single] = editor.paint([req])
    t.ok(maxAbsDiff(batched[i]!.z, single!.z) < 1e-5, `request ${i}: same z`)
    let maxByte = 0
    for (let j = 0; j < single!.output.length; j++) maxByte = Math.max(maxByte, Math.abs(single!.output[j]! - batched[i]!.output[j]!))
    t.ok(maxByte <= 1, `request ${i}: same output (max byte diff ${maxByte})`)
  })
})

t.test('samples, latent edits, interpolation, reset and commit', async (t) => {
  const [a, b] = editor.sample([1, 2])
  t.same(Array.from(editor.sample([1])[0]!.z), Array.from(a!.z), 'a seed gives the same sample')
  t.equal(a!.mode, 'sample')
  t.equal(a!.width, R)
  t.equal(a!.output.length, R * R * 3)
  const g = tf.tidy(() => generator(model, tf.tensor2d(a!.z, [1, 16])).dataSync())
  t.ok(maxAbsDiff(Float32Array.from(a!.output, (v) => v / 127.5 - 1), g) <= 1 / 127.5 + 1e-6, 'a sample is G(z)')

  const interp = editor.interpolate(a!.z, b!.z, 5)
  t.equal(interp.latents.length, 5)
  t.same(Array.from(interp.latents[0]!), Array.from(a!.z), 'first frame = a')
  t.same(Array.from(interp.latents[4]!), Array.from(b!.z), 'last frame = b')
  t.ok(maxAbsDiff(interp.latents[2]!, Float32Array.from(a!.z, (v, i) => (v + b!.z[i]!) / 2)) < 1e-6, 'midpoint')
  t.same(interp.images[0], a!.output, 'first image = sample a')
  t.throws(() => editor.interpolate(a!.z, b!.z, 1), /steps/)

  const photo = randomPhoto(30, 30, 4)
  const [s] = editor.encode([{ rgb: photo, width: 30, height: 30 }])
  const edited = editor.setLatent(s!, [{ index: 3, value: 2.5 }, { index: 0, value: -1 }])
  t.equal(edited.z[3], 2.5)
  t.equal(edited.z[0], -1)
  t.same(Array.from(edited.z.slice(4)), Array.from(s!.z.slice(4)))
  t.throws(() => editor.setLatent(s!, [{ index: 16, value: 0 }]), /out of range/)
  const whole = editor.setLatent(s!, new Float32Array(16).fill(0.5))
  t.ok(whole.z.every((v) => v === 0.5))
  const reset = editor.reset(edited)
  t.same(Array.from(reset.z), Array.from(s!.z0), 'reset restores the inferred z')
  t.same(reset.output, photo, 'reset restores the photo')

  const committed = editor.commit(edited)
  t.same(committed.photo, edited.output, 'the output becomes the new photo')
  const X = cropToModel(edited.output, 30, edited.crop, R)
  t.ok(maxAbsDiff(committed.x, X) < 1e-6, 're-cropped')
  const z = encode(model, tf.expandDims(X) as tf.Tensor4D)
  t.ok(maxAbsDiff(committed.z0, z) < 1e-5, 're-encoded: z0 = E(new photo)')
  t.same(committed.output, edited.output)
})

t.test('numTensors flat over repeated edits', async (t) => {
  let [s] = editor.encode([{ rgb: randomPhoto(20, 20, 8), width: 20, height: 20 }]) as EditorState[]
  s = editor.paint([{ state: s!, stroke: { points: [{ x: 5, y: 5 }], radius: 2 }, color: [1, 2, 3] }])[0]!
  const before = tf.memory().numTensors
  for (let i = 0; i < 5; i++) {
    s = editor.paint([{ state: s!, stroke: { points: [{ x: 5 + i, y: 5 }, { x: 6 + i, y: 6 }], radius: 2 }, color: [250, 2, 3] }])[0]!
    s = editor.setLatent(s, [{ index: 1, value: i }])
    editor.interpolate(s.z, s.z0, 3)
    s = editor.commit(s)
    editor.sample([i])
  }
  t.equal(tf.memory().numTensors, before)
})
