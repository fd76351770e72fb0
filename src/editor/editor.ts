/**
 * The Neural Photo Editor's operations on tensors (paper section 2; reference
 * NPE.py / API.py): encode a photo, paint strokes as gradient steps on z,
 * blend the change back onto the photo, sample, edit the latent directly,
 * interpolate, reset and commit. No I/O: states are plain typed arrays so a
 * session store can keep them anywhere.
 *
 * Every batched operation treats its requests independently (G and E run in
 * inference mode, so batch-norm couples nothing) and gives the same result as
 * running them one by one.
 */
import * as tf from '@tensorflow/tfjs'
import { encode as encodeLatent, generator, type IAN } from '../model/networks.js'
import { floatToRgb, rgbToFloat } from '../data/pixels.js'
import { rng } from '../data/rng.js'
import { blendEdit, defaultMaskSigma } from './blend.js'

export interface Box {
  x: number
  y: number
  w: number
  h: number
}

export type Rgb = readonly [number, number, number]

export type EditorMode = 'photo' | 'sample'

export interface EditorState {
  mode: EditorMode
  /** Size of the photo (and of `photo` / `output`). For samples: the model resolution. */
  width: number
  height: number
  /** The region that is encoded and edited, in photo pixels. */
  crop: Box
  /** The ground-truth photo, RGB bytes, width * height * 3. */
  photo: Uint8Array
  /** X: the crop at model resolution, [R, R, 3] in [-1, 1]. */
  x: Float32Array
  /** X_hat = G(z0), [R, R, 3] in [-1, 1]. */
  xHat: Float32Array
  /** The inferred (or sampled) latent. */
  z0: Float32Array
  /** The current latent. */
  z: Float32Array
  /** The current output, RGB bytes at the photo's size. */
  output: Uint8Array
}

export interface PhotoInput {
  rgb: Uint8Array
  width: number
  height: number
  /** Default: the centred square. */
  crop?: Box
}

export type PaintMode = 'color' | 'lighten' | 'darken'

export interface Stroke {
  /** Brush centres in photo pixels (sample pixels for samples), applied in order. */
  points: { x: number; y: number }[]
  /** Brush radius in photo pixels. */
  radius: number
}

export interface PaintRequest {
  state: EditorState
  stroke: Stroke
  /** Target colour, 0..255 per channel (used by mode 'color'). */
  color?: Rgb
  mode?: PaintMode
  /** Scales the step size (default 1). */
  strength?: number
}

export class EditorError extends Error {
  override name = 'EditorError'
  constructor(
    readonly code: 'invalid_request',
    message: string,
  ) {
    super(message)
  }
}

/** Reference step sizes (NPE.py): colour 0.05, lighten/darken 0.1, times (1 + brush width). */
export const PAINT_STEP = { color: 0.05, shade: 0.1 } as const

export function centredSquare(width: number, height: number): Box {
  const s = Math.min(width, height)
  return { x: Math.floor((width - s) / 2), y: Math.floor((height - s) / 2), w: s, h: s }
}

export function checkCrop(box: Box, width: number, height: number): void {
  const ints = [box.x, box.y, box.w, box.h].every(Number.isInteger)
  if (!ints || box.w < 1 || box.h < 1 || box.x < 0 || box.y < 0 || box.x + box.w > width || box.y + box.h > height) {
    throw new EditorError('invalid_request', `crop ${box.x},${box.y},${box.w},${box.h} is not a box of whole pixels inside the ${width}x${height} photo`)
  }
}

function cropRegion(rgb: Uint8Array, width: number, box: Box): Uint8Array {
  const out = new Uint8Array(box.w * box.h * 3)
  for (let r = 0; r < box.h; r++) {
    const from = ((box.y + r) * width + box.x) * 3
    out.set(rgb.subarray(from, from + box.w * 3), r * box.w * 3)
  }
  return out
}

function pasteRegion(target: Uint8Array, width: number, box: Box, region: Uint8Array): void {
  for (let r = 0; r < box.h; r++) {
    target.set(region.subarray(r * box.w * 3, (r + 1) * box.w * 3), ((box.y + r) * width + box.x) * 3)
  }
}

/** Bytes [H, W, 3] -> [-1, 1] floats. */
function bytesToUnit(t: tf.Tensor): tf.Tensor {
  return tf.sub(tf.div(tf.cast(t, 'float32'), 127.5), 1)
}

/**
 * The crop at model resolution with area-style down-sampling: bilinear to an
 * integer multiple k*R of the resolution, then k x k average pooling.
 */
export function cropToModel(rgb: Uint8Array, width: number, box: Box, R: number): tf.Tensor3D {
  return tf.tidy(() => {
    const region = tf.tensor3d(cropRegion(rgb, width, box), [box.h, box.w, 3], 'int32')
    const k = Math.max(1, Math.floor(Math.min(box.w, box.h) / R))
    let x = tf.image.resizeBilinear(bytesToUnit(region) as tf.Tensor3D, [k * R, k * R], false, true)
    if (k > 1) x = tf.avgPool(x, k, k, 'valid')
    return x
  })
}

export interface EditorOptions {
  /** Mask smoothing in model pixels (default: 0.7 px at 64x64, scaled). */
  maskSigma?: number
}

export class Editor {
  readonly resolution: number
  readonly latentSize: number
  readonly maskSigma: number

  constructor(
    readonly model: IAN,
    opts: EditorOptions = {},
  ) {
    this.resolution = model.config.resolution
    this.latentSize = model.config.latentSize
    this.maskSigma = opts.maskSigma ?? defaultMaskSigma(this.resolution)
  }

  /** Encodes photos: X = crop at model resolution, z0 = mu(E(X)), X_hat = G(z0); output = the photo. */
  encode(inputs: PhotoInput[]): EditorState[] {
    if (inputs.length === 0) return []
    const R = this.resolution
    const crops = inputs.map((p) => {
      if (p.rgb.length !== p.width * p.height * 3) {
        throw new EditorError('invalid_request', `photo has ${p.rgb.length} bytes, expected ${p.width}x${p.height}x3`)
      }
      const crop = p.crop ?? centredSquare(p.width, p.height)
      checkCrop(crop, p.width, p.height)
      return crop
    })
    const { x, xHat, z } = tf.tidy(() => {
      const X = tf.stack(inputs.map((p, i) => cropToModel(p.rgb, p.width, crops[i]!, R))) as tf.Tensor4D
      const z0 = encodeLatent(this.model, X)
      return { x: X.dataSync() as Float32Array, xHat: generator(this.model, z0).dataSync() as Float32Array, z: z0.dataSync() as Float32Array }
    })
    const n = R * R * 3
    const L = this.latentSize
    return inputs.map((p, i) => ({
      mode: 'photo',
      width: p.width,
      height: p.height,
      crop: { ...crops[i]! },
      photo: p.rgb.slice(),
      x: x.slice(i * n, (i + 1) * n),
      xHat: xHat.slice(i * n, (i + 1) * n),
      z0: z.slice(i * L, (i + 1) * L),
      z: z.slice(i * L, (i + 1) * L),
      output: p.rgb.slice(),
    }))
  }

  /** The latent of sample `seed`: z ~ N(0, I), the same on every backend. */
  sampleLatent(seed: number): Float32Array {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new EditorError('invalid_request', `seed must be a non-negative integer, got ${seed}`)
    const r = rng(seed)
    return Float32Array.from({ length: this.latentSize }, () => r.normal())
  }

  /** Samples from seeds: z ~ N(0, I), output G(z) directly (no photo, no mask). */
  sample(seeds: number[]): EditorState[] {
    return this.sampleFromLatents(seeds.map((s) => this.sampleLatent(s)))
  }

  /** Samples from given latents: output G(z). */
  sampleFromLatents(latents: Float32Array[]): EditorState[] {
    if (latents.length === 0) return []
    const R = this.resolution
    const L = this.latentSize
    for (const z of latents) this.checkLatent(z)
    const images = tf.tidy(() => generator(this.model, tf.tensor2d(concat(latents), [latents.length, L])).dataSync() as Float32Array)
    const n = R * R * 3
    return latents.map((z, i) => {
      const img = images.slice(i * n, (i + 1) * n)
      const bytes = floatToRgb(img)
      return {
        mode: 'sample',
        width: R,
        height: R,
        crop: { x: 0, y: 0, w: R, h: R },
        photo: bytes,
        x: img,
        xHat: img.slice(),
        z0: z.slice(),
        z: z.slice(),
        output: bytes.slice(),
      }
    })
  }

  /**
   * Paints strokes: each brush point takes one gradient step on z that moves
   * G(z) over the brush square toward the colour (or lighter / darker), then
   * the result is blended onto the photo. Requests are batched point by point.
   */
  paint(requests: PaintRequest[]): EditorState[] {
    if (requests.length === 0) return []
    const R = this.resolution
    const L = this.latentSize
    const zs = requests.map((r) => r.state.z.slice())
    const plans = requests.map((r) => this.planStroke(r))
    const steps = Math.max(0, ...plans.map((p) => p.patches.length))
    for (let k = 0; k < steps; k++) {
      const active = plans.map((p, i) => (p.patches[k] ? i : -1)).filter((i) => i >= 0)
      if (active.length === 0) continue
      const A = active.length
      const maskData = new Float32Array(A * R * R)
      const colour = new Float32Array(A * 3)
      const colourWeight = new Float32Array(A) // 1 for 'color', 0 otherwise
      const shadeWeight = new Float32Array(A) // -1 lighten, +1 darken, 0 colour
      const eta = new Float32Array(A)
      active.forEach((i, a) => {
        const patch = plans[i]!.patches[k]!
        for (let r = patch.r0; r < patch.r1; r++) maskData.fill(1 / ((patch.r1 - patch.r0) * (patch.c1 - patch.c0) * 3), a * R * R + r * R + patch.c0, a * R * R + r * R + patch.c1)
        const req = requests[i]!
        const mode = req.mode ?? 'color'
        const c = req.color ?? [0, 0, 0]
        colour.set([c[0] / 127.5 - 1, c[1] / 127.5 - 1, c[2] / 127.5 - 1], a * 3)
        colourWeight[a] = mode === 'color' ? 1 : 0
        shadeWeight[a] = mode === 'lighten' ? -1 : mode === 'darken' ? 1 : 0
        eta[a] = (mode === 'color' ? PAINT_STEP.color : PAINT_STEP.shade) * (req.strength ?? 1) * (1 + patch.width)
      })
      const updated = tf.tidy(() => {
        const z = tf.tensor2d(concat(active.map((i) => zs[i]!)), [A, L])
        const mask = tf.tensor4d(maskData, [A, R, R, 1]) // 1 / (3 * patch pixels) inside the patch: sums give means
        const target = tf.tensor4d(colour, [A, 1, 1, 3])
        const cw = tf.tensor1d(colourWeight)
        const sw = tf.tensor1d(shadeWeight)
        const etaT = tf.tensor1d(eta)
        // objective per request: colour -> mean((G - C)^2), lighten -> -mean(G), darken -> mean(G); scaled by its step size
        const objective = (zz: tf.Tensor) => {
          const g = generator(this.model, zz as tf.Tensor2D)
          const colourLoss = tf.sum(tf.mul(mask, tf.squaredDifference(g, target)), [1, 2, 3])
          const shade = tf.sum(tf.mul(mask, g), [1, 2, 3])
          return tf.sum(tf.mul(etaT, tf.add(tf.mul(cw, colourLoss), tf.mul(sw, shade))))
        }
        const grad = tf.grad(objective)(z)
        return tf.sub(z, grad).dataSync() as Float32Array
      })
      active.forEach((i, a) => {
        zs[i] = updated.slice(a * L, (a + 1) * L)
      })
    }
    return this.render(requests.map((r) => r.state), zs)
  }

  /** Sets latent entries directly (the latent canvas), then re-blends. */
  setLatent(state: EditorState, values: Float32Array | { index: number; value: number }[]): EditorState {
    const z = state.z.slice()
    if (values instanceof Float32Array) {
      this.checkLatent(values)
      z.set(values)
    } else {
      for (const { index, value } of values) {
        if (!Number.isInteger(index) || index < 0 || index >= this.latentSize || !Number.isFinite(value)) {
          throw new EditorError('invalid_request', `latent entry ${index} = ${value} is out of range (0..${this.latentSize - 1}, finite)`)
        }
        z[index] = value
      }
    }
    return this.render([state], [z])[0]!
  }

  /** Back to the inferred latent; the output is the photo again. */
  reset(state: EditorState): EditorState {
    return { ...state, z: state.z0.slice(), output: state.photo.slice() }
  }

  /** The current output becomes the new photo and is re-encoded (the reference's "Update"). */
  commit(state: EditorState): EditorState {
    if (state.mode === 'sample') {
      // a sample's output is G(z) itself: the new ground truth, with z as its latent
      const x = rgbToFloat(state.output)
      const xHat = tf.tidy(() => generator(this.model, tf.tensor2d(state.z, [1, this.latentSize])).dataSync() as Float32Array)
      return { ...state, photo: state.output.slice(), x, xHat, z0: state.z.slice(), z: state.z.slice(), output: state.output.slice() }
    }
    return this.encode([{ rgb: state.output, width: state.width, height: state.height, crop: state.crop }])[0]!
  }

  /** Linear interpolation between two latents: `steps` frames including both ends, images at model resolution. */
  interpolate(a: Float32Array, b: Float32Array, steps: number): { latents: Float32Array[]; images: Uint8Array[] } {
    this.checkLatent(a)
    this.checkLatent(b)
    if (!Number.isInteger(steps) || steps < 2) throw new EditorError('invalid_request', `steps must be an integer >= 2, got ${steps}`)
    const latents = Array.from({ length: steps }, (_, i) => {
      const t = i / (steps - 1)
      return Float32Array.from(a, (v, j) => (1 - t) * v + t * b[j]!)
    })
    latents[0] = a.slice()
    latents[steps - 1] = b.slice()
    const n = this.resolution * this.resolution * 3
    const images = tf.tidy(() => generator(this.model, tf.tensor2d(concat(latents), [steps, this.latentSize])).dataSync() as Float32Array)
    return { latents, images: latents.map((_, i) => floatToRgb(images.subarray(i * n, (i + 1) * n))) }
  }

  /** Outputs for states with new latents: G(z), then eq. 1-2 and the full-resolution transfer. */
  render(states: EditorState[], zs: Float32Array[]): EditorState[] {
    if (states.length === 0) return []
    const R = this.resolution
    const n = R * R * 3
    const B = states.length
    const { generated, change } = tf.tidy(() => {
      const g = generator(this.model, tf.tensor2d(concat(zs), [B, this.latentSize]))
      const x = tf.tensor4d(concat(states.map((s) => s.x)), [B, R, R, 3])
      const xHat = tf.tensor4d(concat(states.map((s) => s.xHat)), [B, R, R, 3])
      const { y } = blendEdit(x, xHat, g, this.maskSigma)
      return { generated: g.dataSync() as Float32Array, change: tf.sub(y, x).dataSync() as Float32Array }
    })
    return states.map((s, i) => {
      const z = zs[i]!.slice()
      if (s.mode === 'sample') return { ...s, z, output: floatToRgb(generated.subarray(i * n, (i + 1) * n)) }
      return { ...s, z, output: transferToPhoto(s.photo, s.width, s.crop, change.subarray(i * n, (i + 1) * n), R) }
    })
  }

  private checkLatent(z: Float32Array): void {
    if (z.length !== this.latentSize || !z.every(Number.isFinite)) {
      throw new EditorError('invalid_request', `a latent must be ${this.latentSize} finite numbers, got ${z.length}`)
    }
  }

  /** Maps stroke points into model pixels: one brush square per point (empty if off the crop). */
  private planStroke(req: PaintRequest): { patches: ({ r0: number; r1: number; c0: number; c1: number; width: number } | null)[] } {
    const { crop } = req.state
    const R = this.resolution
    const { stroke } = req
    if (!(stroke.radius > 0) || !Number.isFinite(stroke.radius)) throw new EditorError('invalid_request', 'stroke radius must be a positive number')
    if (!Number.isFinite(req.strength ?? 1) || (req.strength ?? 1) < 0) throw new EditorError('invalid_request', 'strength must be a finite number >= 0')
    const sx = R / crop.w
    const sy = R / crop.h
    const rm = stroke.radius * Math.min(sx, sy)
    const patches = stroke.points.map(({ x, y }) => {
      if (!Number.isFinite(x) || !Number.isFinite(y)) throw new EditorError('invalid_request', 'stroke points must be finite numbers')
      const mx = (x - crop.x) * sx
      const my = (y - crop.y) * sy
      const r0 = Math.max(0, Math.floor(my - rm))
      const r1 = Math.min(R, Math.max(Math.floor(my - rm) + 1, Math.ceil(my + rm)))
      const c0 = Math.max(0, Math.floor(mx - rm))
      const c1 = Math.min(R, Math.max(Math.floor(mx - rm) + 1, Math.ceil(mx + rm)))
      return r1 > r0 && c1 > c0 ? { r0, r1, c0, c1, width: rm } : null
    })
    return { patches }
  }
}

/**
 * Y_full = X_full + up(Y - X) inside the crop (bilinear, half-pixel centres),
 * rounded and clamped; pixels outside the crop are copied byte for byte.
 */
export function transferToPhoto(photo: Uint8Array, width: number, crop: Box, change: Float32Array, R: number): Uint8Array {
  const out = photo.slice()
  let nonzero = false
  for (let i = 0; i < change.length; i++) {
    if (change[i] !== 0) {
      nonzero = true
      break
    }
  }
  if (!nonzero) return out
  const region = tf.tidy(() => {
    const up = tf.image.resizeBilinear(tf.tensor3d(change, [R, R, 3]), [crop.h, crop.w], false, true)
    const base = tf.tensor3d(cropRegion(photo, width, crop), [crop.h, crop.w, 3], 'int32')
    const y = tf.clipByValue(tf.round(tf.add(tf.cast(base, 'float32'), tf.mul(up, 127.5))), 0, 255)
    return new Uint8Array(y.dataSync())
  })
  pasteRegion(out, width, crop, region)
  return out
}

function concat(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((s, a) => s + a.length, 0))
  let o = 0
  for (const a of arrays) {
    out.set(a, o)
    o += a.length
  }
  return out
}
