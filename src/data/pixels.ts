/** Pixel conversions between bytes and the models' [-1, 1] floats (pure; no sharp). */

/** 0..255 -> [-1, 1] (v / 127.5 - 1). */
export function rgbToFloat(rgb: Uint8Array, out: Float32Array = new Float32Array(rgb.length)): Float32Array {
  if (out.length !== rgb.length) throw new RangeError('rgbToFloat: output length mismatch')
  for (let i = 0; i < rgb.length; i++) out[i] = (rgb[i] as number) / 127.5 - 1
  return out
}

/** [-1, 1] -> 0..255, clamped and rounded (NaN -> 0). Inverse of rgbToFloat. */
export function floatToRgb(f: ArrayLike<number>, out: Uint8Array = new Uint8Array(f.length)): Uint8Array {
  if (out.length !== f.length) throw new RangeError('floatToRgb: output length mismatch')
  for (let i = 0; i < f.length; i++) {
    const v = Math.round(((f[i] as number) + 1) * 127.5)
    out[i] = v > 255 ? 255 : v >= 0 ? v : 0 // NaN fails both comparisons -> 0
  }
  return out
}
