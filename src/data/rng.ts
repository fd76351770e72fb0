/**
 * A small seeded PRNG (sfc32, seeded through splitmix32) for reproducible data generation.
 *
 * Not cryptographic. The same seed always yields the same sequence, on every platform,
 * because everything is done in 32-bit integer arithmetic (Math.imul, >>> 0).
 */

/** splitmix32 step: a good 32-bit mixer, used to seed sfc32 and to derive sub-seeds. */
function splitmix32(state: number): [value: number, next: number] {
  const next = (state + 0x9e3779b9) | 0
  let z = next
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad)
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97)
  z = z ^ (z >>> 15)
  return [z >>> 0, next]
}

/** Normalise any finite number (including negatives and non-integers) to a uint32 seed. */
export function toSeed(seed: number): number {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`)
  if (Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff) return seed >>> 0
  // Fold larger / negative / fractional numbers deterministically.
  const hi = Math.floor(seed / 0x100000000)
  const lo = seed - hi * 0x100000000
  return (Math.floor(lo) ^ Math.imul(hi | 0, 0x85ebca6b)) >>> 0
}

/**
 * Derive a well-mixed uint32 sub-seed from a seed and any number of integer keys
 * (e.g. `deriveSeed(datasetSeed, index)`): independent streams for different keys.
 */
export function deriveSeed(seed: number, ...keys: number[]): number {
  let [h, s] = splitmix32(toSeed(seed))
  for (const k of keys) {
    ;[h, s] = splitmix32((s ^ Math.imul(toSeed(k) ^ h, 0x9e3779b1)) | 0)
  }
  return h
}

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number
  private spare: number | undefined

  constructor(seed: number) {
    let s = toSeed(seed)
    let v: number
    ;[v, s] = splitmix32(s)
    this.a = v
    ;[v, s] = splitmix32(s)
    this.b = v
    ;[v, s] = splitmix32(s)
    this.c = v
    this.d = 1
    // Warm up: discard the first outputs, as recommended for sfc32.
    for (let i = 0; i < 12; i++) this.uint32()
  }

  /** Next uint32 (sfc32). */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** Uniform float in [0, 1) (32 bits of precision). */
  next(): number {
    return this.uint32() / 0x100000000
  }

  /** Uniform float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next()
  }

  /** Uniform integer in [0, n). `n` must be a positive integer (at most 2^32). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`int(n): n must be a positive integer, got ${n}`)
    return Math.floor(this.next() * n)
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.next() < p
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick() from an empty array')
    return items[this.int(items.length)] as T
  }

  /** Standard normal deviate (Box-Muller, polar form; caches the second value). */
  normal(mean = 0, std = 1): number {
    if (this.spare !== undefined) {
      const v = this.spare
      this.spare = undefined
      return mean + std * v
    }
    let u: number
    let v: number
    let s: number
    do {
      u = this.next() * 2 - 1
      v = this.next() * 2 - 1
      s = u * u + v * v
    } while (s >= 1 || s === 0)
    const m = Math.sqrt((-2 * Math.log(s)) / s)
    this.spare = v * m
    return mean + std * u * m
  }

  /** Fill an array with standard normal deviates. */
  normals(n: number, out: Float32Array = new Float32Array(n)): Float32Array {
    for (let i = 0; i < n; i++) out[i] = this.normal()
    return out
  }
}

/** Convenience constructor. */
export function rng(seed: number): Rng {
  return new Rng(seed)
}

/**
 * Run `fn` with `Math.random` replaced by a generator seeded from `seed`, and always restore
 * the original afterwards (also when `fn` throws). For third-party code that draws from
 * Math.random (facesjs). `fn` must be synchronous: the replacement is global, so an await
 * inside would leak it to other code.
 */
export function withSeededMathRandom<T>(seed: number, fn: () => T): T {
  const r = new Rng(seed)
  const original = Math.random
  Math.random = () => r.next()
  try {
    const result = fn()
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      throw new TypeError('withSeededMathRandom: fn must be synchronous (got a thenable)')
    }
    return result
  } finally {
    Math.random = original
  }
}
