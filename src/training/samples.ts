/**
 * The sample grid written during training (RUN/samples/step-XXXXXX.png), 8 tiles wide, with
 * the model in inference mode (batch norm on its moving statistics, z = mu):
 *
 *   row 0      8 samples G(z) from fixed z ~ N(0, I) (the same z for the whole run)
 *   rows 1-2   8 validation originals, each followed by its reconstruction G(E(x))
 *              (x0 G(E(x0)) x1 G(E(x1)) ... four pairs a row)
 *   rows 3-4   latent interpolations, 8 frames each, from E(v0) to E(v1) and from E(v2) to E(v3)
 *
 * Tiles are separated by GRID.pad pixels, blocks by GRID.pad + GRID.blockGap.
 */
import * as tf from '@tensorflow/tfjs'
import { floatToRgb, rgbToFloat } from '../data/image.js'
import { deriveSeed } from '../data/rng.js'
import { encode, generator, type IAN } from '../model/networks.js'

export const GRID = { columns: 8, rows: 5, pad: 2, blockGap: 4, background: 24 } as const

const SAMPLE_SALT = 0x534d504c // 'SMPL'

/** Pixel size of the grid for tiles of side R. */
export function gridSize(resolution: number): { width: number; height: number } {
  const { columns, rows, pad, blockGap } = GRID
  return { width: pad + columns * (resolution + pad), height: pad + rows * (resolution + pad) + 2 * blockGap }
}

/** Top-left corner of tile (row, col). */
function tileOrigin(resolution: number, row: number, col: number): { x: number; y: number } {
  const { pad, blockGap } = GRID
  const gaps = (row >= 1 ? 1 : 0) + (row >= 3 ? 1 : 0)
  return { x: pad + col * (resolution + pad), y: pad + row * (resolution + pad) + gaps * blockGap }
}

/**
 * Renders the grid. `validation` holds at least 8 uint8 RGB images [R, R, 3]; `seed` fixes the
 * sample latents. Returns uint8 RGB [height, width, 3]. Leaves no tensors behind.
 */
export function sampleGrid(model: IAN, validation: Uint8Array, seed: number): { rgb: Uint8Array; width: number; height: number } {
  const R = model.config.resolution
  const L = model.config.latentSize
  const tile = R * R * 3
  if (validation.length < 8 * tile) throw new RangeError(`sampleGrid: need 8 validation images of ${R}x${R}`)
  const n = GRID.columns
  // [8 samples | 8 reconstructions | 16 interpolation frames] through G in one call.
  const images = tf.tidy(() => {
    const zFixed = tf.randomNormal([n, L], 0, 1, 'float32', deriveSeed(seed, SAMPLE_SALT)) as tf.Tensor2D
    const x = tf.tensor4d(rgbToFloat(validation.subarray(0, n * tile)), [n, R, R, 3])
    const mu = encode(model, x) // [8, L]
    const t = tf.reshape(tf.linspace(0, 1, n), [n, 1])
    const lerp = (a: number, b: number) => {
      const za = tf.slice(mu, [a, 0], [1, L])
      const zb = tf.slice(mu, [b, 0], [1, L])
      return tf.add(za, tf.mul(t, tf.sub(zb, za)))
    }
    const z = tf.concat([zFixed, mu, lerp(0, 1), lerp(2, 3)], 0) as tf.Tensor2D
    return generator(model, z)
  })
  const generated = floatToRgb(images.dataSync())
  images.dispose()

  const { width, height } = gridSize(R)
  const rgb = new Uint8Array(width * height * 3).fill(GRID.background)
  const put = (src: Uint8Array, index: number, row: number, col: number) => {
    const { x, y } = tileOrigin(R, row, col)
    for (let r = 0; r < R; r++) {
      const from = index * tile + r * R * 3
      rgb.set(src.subarray(from, from + R * 3), ((y + r) * width + x) * 3)
    }
  }
  for (let i = 0; i < n; i++) put(generated, i, 0, i) // samples
  for (let i = 0; i < n; i++) {
    const row = 1 + Math.floor(i / 4)
    const col = 2 * (i % 4)
    put(validation, i, row, col) // original
    put(generated, n + i, row, col + 1) // its reconstruction
  }
  for (let f = 0; f < 2 * n; f++) put(generated, 2 * n + f, 3 + Math.floor(f / n), f % n) // interpolations
  return { rgb, width, height }
}
