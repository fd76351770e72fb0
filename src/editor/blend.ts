/**
 * Edit transfer (paper section 2, eq. 1-2; reference NPE.py).
 *
 * At model resolution, with X the photo, X_hat = G(z0) its reconstruction and
 * G(z) the edited generation:
 *   DELTA = G(z) - X_hat
 *   M     = gaussian_sigma(min(mean_channels(|DELTA|), 1))
 *   Y     = X_hat + M * DELTA + (1 - M) * (X - X_hat)  =  (1 - M) X + M G(z)
 *
 * Onto the full-resolution photo we add the up-sampled change instead of
 * pasting an up-sampled (blurry) generation:
 *   Y_full = X_full + up(Y - X)       (inside the crop box; outside, the photo's bytes)
 * so down-sampling Y_full gives back Y, the photo keeps its own fine detail
 * everywhere, and wherever M (hence Y - X) is 0 the photo's pixels are unchanged.
 */
import * as tf from '@tensorflow/tfjs'

/** Default mask smoothing: the reference's sigma 0.7 px at 64x64, scaled with the resolution. */
export function defaultMaskSigma(resolution: number): number {
  return (0.7 * resolution) / 64
}

/** Normalised 1-D Gaussian taps, radius ceil(3 sigma). sigma 0 gives [1]. */
export function gaussianTaps(sigma: number): Float32Array {
  if (!(sigma > 0)) return Float32Array.of(1)
  const radius = Math.max(1, Math.ceil(3 * sigma))
  const taps = new Float32Array(2 * radius + 1)
  let sum = 0
  for (let i = -radius; i <= radius; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma))
    taps[i + radius] = v
    sum += v
  }
  for (let i = 0; i < taps.length; i++) taps[i]! /= sum
  return taps
}

/** Separable Gaussian blur of [B, H, W, 1] with reflected borders (scipy's default 'reflect'). */
export function gaussianBlur(m: tf.Tensor4D, sigma: number): tf.Tensor4D {
  const taps = gaussianTaps(sigma)
  if (taps.length === 1) return tf.clone(m)
  return tf.tidy(() => {
    const r = (taps.length - 1) / 2
    // 'symmetric' mirrors the edge pixel too, as scipy.ndimage's 'reflect' does; one
    // mirror can add at most the image's size, so small images are mirrored repeatedly
    let padded = m
    for (let left = r; left > 0; ) {
      const p = Math.min(left, padded.shape[1], padded.shape[2])
      padded = tf.mirrorPad(padded, [[0, 0], [p, p], [p, p], [0, 0]], 'symmetric')
      left -= p
    }
    const kv = tf.tensor4d(taps, [taps.length, 1, 1, 1])
    const kh = tf.tensor4d(taps, [1, taps.length, 1, 1])
    return tf.conv2d(tf.conv2d(padded, kv, 1, 'valid'), kh, 1, 'valid') as tf.Tensor4D
  })
}

/** M = gaussian(min(mean_channels(|G(z) - X_hat|), 1)), [B, R, R, 1]. */
export function editMask(generated: tf.Tensor4D, xHat: tf.Tensor4D, sigma: number): tf.Tensor4D {
  return tf.tidy(() => {
    const m = tf.minimum(tf.mean(tf.abs(tf.sub(generated, xHat)), 3, true), 1) as tf.Tensor4D
    return gaussianBlur(m, sigma)
  })
}

/** Y = (1 - M) X + M G(z) (eq. 1-2 rearranged), and the mask. All [B, R, R, C]. */
export function blendEdit(
  x: tf.Tensor4D,
  xHat: tf.Tensor4D,
  generated: tf.Tensor4D,
  sigma: number,
): { y: tf.Tensor4D; mask: tf.Tensor4D } {
  return tf.tidy(() => {
    const mask = editMask(generated, xHat, sigma)
    const y = tf.add(tf.mul(tf.sub(1, mask), x), tf.mul(mask, generated)) as tf.Tensor4D
    return { y, mask }
  })
}
