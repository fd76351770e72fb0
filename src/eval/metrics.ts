/**
 * The reconstruction and sample-quality measures of the paper's Table 2 (section 5.2), as pure
 * functions of plain arrays. Images are NHWC float32 in [-1, 1] (the model's units), `count`
 * images of `values / count` numbers each.
 *
 * Definitions (X a real image with D = R*R*3 values, X^ = G(E(X)) its reconstruction):
 *  - pixel MSE  = mean over images of (1/D) sum (X - X^)^2        ("pixel L2", [-1, 1] units)
 *  - pixel MAE  = mean over images of (1/D) sum |X - X^|          ("pixel L1", [-1, 1] units)
 *  - pixel RMSE = mean over images of sqrt((1/D) sum (X - X^)^2)  = ||X - X^||_2 / sqrt(D):
 *    our reading of the paper's "pixel-wise L2 distance" (0.192 for the IAN, 0.295 for the
 *    VAE/GAN): a per-image L2 distance normalised by the number of values, in [-1, 1] units.
 *    The paper does not define it; the MSE of a reconstruction that good would be ~0.04.
 *  - feature L2 = mean over images of ||h(X) - h(X^)||_2, h the classifier's last hidden layer
 *    (the paper: the final layer of its CelebA attribute DenseNet; 4.33 vs 4.86).
 *  - trait reconstruction error = fraction of (image, attribute) pairs where the classifier's
 *    predicted class on X^ differs from its prediction on X; per attribute and overall (the
 *    paper: binary 40-attribute vectors y(X) vs y(G(E(X))), "percent error").
 *  - inception score per attribute head k: IS_k = exp(E_x KL(p_k(y|x) || p_k(y))), with p_k(y)
 *    the mean of p_k(y|x) over the samples (Salimans et al. 2016, the classifier in place of
 *    Inception). Combined over heads as the product  prod_k IS_k = exp(E_x sum_k KL_k): the
 *    inception score of the factorised joint label (y_1..y_K) with per-head marginals. It is
 *    what a 40-head binary classifier turns into scores "in the thousands" (each head is in
 *    [1, 2], 2^40 at most), so it is our reading of the paper's 3627 vs 1389. It lies in
 *    [1, prod_k C_k]. The geometric mean over heads (prod IS_k)^(1/K) is reported too: it does
 *    not depend on how many heads the classifier has.
 *
 * Not in the paper, for the artefacts of small, briefly trained generators (speckle, checkerboard):
 *  - high-frequency energy of an image: sum over interior pixels and channels of the squared
 *    4-neighbour Laplacian 4 x(i,j) - x(i-1,j) - x(i+1,j) - x(i,j-1) - x(i,j+1). Reported as the
 *    ratio (sum over reconstructions) / (sum over their originals): 1 is as sharp as the data,
 *    below 1 blurred, far above 1 speckled.
 *  - checkerboard power: sum over channels of |sum_ij (-1)^(i+j) x(i,j)|^2 / (H W), the power at
 *    the (pi, pi) frequency, where a transposed conv's uneven overlap leaves its pattern; also as
 *    a ratio of reconstructions to originals.
 */

export interface PixelErrors {
  /** Per image: mean squared difference. */
  mse: Float64Array
  /** Per image: mean absolute difference. */
  mae: Float64Array
  /** Per image: root mean squared difference. */
  rmse: Float64Array
}

function checkCount(values: number, count: number, what: string): number {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`${what}: count must be a positive integer, got ${count}`)
  if (values % count !== 0) throw new RangeError(`${what}: ${values} values do not split into ${count} items`)
  return values / count
}

/** Values per image of `count` square NHWC images of `size` x `size` x `channels`, checked. */
function checkSquareImages(x: ArrayLike<number>, count: number, size: number, channels: number, what: string): number {
  const D = checkCount(x.length, count, what)
  if (D !== size * size * channels) throw new RangeError(`${what}: ${D} values per image are not ${size}x${size}x${channels}`)
  return D
}

/** Per image (NHWC, `count` square images of `size` x `size` x `channels`): high-frequency energy. */
export function highFrequencyEnergy(x: ArrayLike<number>, count: number, size: number, channels = 3): Float64Array {
  const D = checkSquareImages(x, count, size, channels, 'highFrequencyEnergy')
  const out = new Float64Array(count)
  const at = (base: number, i: number, j: number, c: number) => x[base + (i * size + j) * channels + c] as number
  for (let n = 0; n < count; n++) {
    const base = n * D
    let e = 0
    for (let i = 1; i < size - 1; i++) {
      for (let j = 1; j < size - 1; j++) {
        for (let c = 0; c < channels; c++) {
          const lap = 4 * at(base, i, j, c) - at(base, i - 1, j, c) - at(base, i + 1, j, c) - at(base, i, j - 1, c) - at(base, i, j + 1, c)
          e += lap * lap
        }
      }
    }
    out[n] = e
  }
  return out
}

/** Per image: power at the (pi, pi) frequency, summed over channels (see the header). */
export function checkerboardPower(x: ArrayLike<number>, count: number, size: number, channels = 3): Float64Array {
  const D = checkSquareImages(x, count, size, channels, 'checkerboardPower')
  const out = new Float64Array(count)
  for (let n = 0; n < count; n++) {
    let p = 0
    for (let c = 0; c < channels; c++) {
      let s = 0
      for (let i = 0; i < size; i++) for (let j = 0; j < size; j++) s += ((i + j) % 2 === 0 ? 1 : -1) * (x[n * D + (i * size + j) * channels + c] as number)
      p += (s * s) / (size * size)
    }
    out[n] = p
  }
  return out
}

/** Per-image pixel errors between x and y (same layout, `count` images). */
export function pixelErrors(x: ArrayLike<number>, y: ArrayLike<number>, count: number): PixelErrors {
  if (x.length !== y.length) throw new RangeError(`pixelErrors: ${x.length} vs ${y.length} values`)
  const D = checkCount(x.length, count, 'pixelErrors')
  const mse = new Float64Array(count)
  const mae = new Float64Array(count)
  const rmse = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    let sq = 0
    let abs = 0
    for (let j = i * D; j < (i + 1) * D; j++) {
      const d = (x[j] as number) - (y[j] as number)
      sq += d * d
      abs += Math.abs(d)
    }
    mse[i] = sq / D
    mae[i] = abs / D
    rmse[i] = Math.sqrt(sq / D)
  }
  return { mse, mae, rmse }
}

/** Per-item Euclidean distances between rows of a and b ([count, H] each). */
export function featureDistances(a: ArrayLike<number>, b: ArrayLike<number>, count: number): Float64Array {
  if (a.length !== b.length) throw new RangeError(`featureDistances: ${a.length} vs ${b.length} values`)
  const H = checkCount(a.length, count, 'featureDistances')
  const out = new Float64Array(count)
  for (let i = 0; i < count; i++) {
    let sq = 0
    for (let j = i * H; j < (i + 1) * H; j++) {
      const d = (a[j] as number) - (b[j] as number)
      sq += d * d
    }
    out[i] = Math.sqrt(sq)
  }
  return out
}

/** Per-item Euclidean norms of the rows of a ([count, H]). */
export function rowNorms(a: ArrayLike<number>, count: number): Float64Array {
  return featureDistances(a, new Float64Array(a.length), count)
}

export function mean(values: ArrayLike<number>): number {
  if (values.length === 0) return NaN
  let s = 0
  for (let i = 0; i < values.length; i++) s += values[i] as number
  return s / values.length
}

/** Sample standard deviation (n - 1); 0 for fewer than two values. */
export function std(values: ArrayLike<number>): number {
  if (values.length < 2) return 0
  const m = mean(values)
  let s = 0
  for (let i = 0; i < values.length; i++) s += ((values[i] as number) - m) ** 2
  return Math.sqrt(s / (values.length - 1))
}

/** Number of positions where a and b differ (same length). */
export function countMismatches(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`countMismatches: ${a.length} vs ${b.length} predictions`)
  let n = 0
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++
  return n
}

export interface TraitError {
  /** Fraction of all (image, attribute) pairs whose prediction changed. */
  overall: number
  /** Fraction of images whose prediction changed, per attribute. */
  perAttribute: Record<string, number>
}

/**
 * Trait reconstruction error from predicted class indices on the originals (`predX`) and on
 * the reconstructions (`predY`): one array of per-image class indices per attribute.
 */
export function traitError(names: readonly string[], predX: readonly ArrayLike<number>[], predY: readonly ArrayLike<number>[]): TraitError {
  if (predX.length !== names.length || predY.length !== names.length) {
    throw new RangeError(`traitError: ${names.length} attributes, got ${predX.length} and ${predY.length} prediction arrays`)
  }
  const perAttribute: Record<string, number> = {}
  let wrong = 0
  let total = 0
  names.forEach((name, k) => {
    const m = countMismatches(predX[k]!, predY[k]!)
    const n = predX[k]!.length
    perAttribute[name] = n > 0 ? m / n : NaN
    wrong += m
    total += n
  })
  return { overall: total > 0 ? wrong / total : NaN, perAttribute }
}

/**
 * E_x KL(p(y|x) || p(y)) for a table of class probabilities `probs` [count, C] (rows sum to
 * ~1), with p(y) the mean row. Terms with p(y|x) = 0 contribute 0.
 */
export function meanKlToMarginal(probs: ArrayLike<number>, count: number): number {
  const C = checkCount(probs.length, count, 'meanKlToMarginal')
  const marginal = new Float64Array(C)
  for (let i = 0; i < count; i++) for (let c = 0; c < C; c++) marginal[c]! += probs[i * C + c] as number
  for (let c = 0; c < C; c++) marginal[c]! /= count
  let kl = 0
  for (let i = 0; i < count; i++) {
    for (let c = 0; c < C; c++) {
      const p = probs[i * C + c] as number
      if (p > 0) kl += p * (Math.log(p) - Math.log(marginal[c]!))
    }
  }
  return kl / count
}

/** Inception score exp(E_x KL(p(y|x) || p(y))) of one probability table [count, C]. */
export function inceptionScore(probs: ArrayLike<number>, count: number): number {
  return Math.exp(meanKlToMarginal(probs, count))
}

export interface MeanStd {
  mean: number
  std: number
}

export interface InceptionScores {
  /** Per attribute head: IS_k over each split, mean and std over the splits. */
  perHead: Record<string, MeanStd>
  /** prod_k IS_k per split (= exp of the summed KLs), mean and std over the splits. */
  product: MeanStd
  /** (prod_k IS_k)^(1/K) per split, mean and std over the splits. */
  geometricMean: MeanStd
  /** The largest possible product: prod_k C_k. */
  maxProduct: number
  splits: number
  count: number
}

/**
 * Inception scores per head and combined, the Salimans et al. way: the `count` samples are cut
 * into `splits` equal consecutive groups (the remainder is dropped), each group is scored on
 * its own, and the mean and standard deviation over the groups are reported. `tables[k]` is
 * head k's probabilities [count, C_k].
 */
export function inceptionScores(names: readonly string[], tables: readonly ArrayLike<number>[], count: number, splits = 10): InceptionScores {
  if (tables.length !== names.length) throw new RangeError(`inceptionScores: ${names.length} heads, ${tables.length} tables`)
  if (!Number.isInteger(splits) || splits < 1) throw new RangeError(`splits must be a positive integer, got ${splits}`)
  const s = Math.min(splits, count)
  const per = Math.floor(count / s)
  const classes = tables.map((t, k) => checkCount(t.length, count, `inceptionScores(${names[k]})`))
  const perSplit: number[][] = names.map(() => [])
  const logProducts: number[] = []
  for (let g = 0; g < s; g++) {
    let logProduct = 0
    tables.forEach((t, k) => {
      const C = classes[k]!
      const kl = meanKlToMarginal(slice(t, g * per * C, (g + 1) * per * C), per)
      perSplit[k]!.push(Math.exp(kl))
      logProduct += kl
    })
    logProducts.push(logProduct)
  }
  const perHead: Record<string, MeanStd> = {}
  names.forEach((name, k) => (perHead[name] = { mean: mean(perSplit[k]!), std: std(perSplit[k]!) }))
  const products = logProducts.map(Math.exp)
  const geo = logProducts.map((l) => Math.exp(l / names.length))
  return {
    perHead,
    product: { mean: mean(products), std: std(products) },
    geometricMean: { mean: mean(geo), std: std(geo) },
    maxProduct: classes.reduce((a, b) => a * b, 1),
    splits: s,
    count: s * per,
  }
}

function slice(a: ArrayLike<number>, start: number, end: number): ArrayLike<number> {
  if (ArrayBuffer.isView(a)) return (a as unknown as Float32Array).subarray(start, end)
  return Array.prototype.slice.call(a, start, end) as number[]
}

export interface AttributeAccuracy {
  /** Fraction of images whose predicted class equals the label. */
  accuracy: number
  /** Accuracy of always predicting the most frequent label of the evaluated set. */
  majority: number
  /** That most frequent class index. */
  majorityClass: number
  count: number
}

/** Accuracy of predictions against labels, and the majority-class baseline on the same labels. */
export function attributeAccuracy(pred: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number): AttributeAccuracy {
  if (pred.length !== labels.length) throw new RangeError(`attributeAccuracy: ${pred.length} predictions, ${labels.length} labels`)
  const n = labels.length
  const counts = new Array<number>(numClasses).fill(0)
  for (let i = 0; i < n; i++) counts[labels[i] as number]! += 1
  let majorityClass = 0
  for (let c = 1; c < numClasses; c++) if (counts[c]! > counts[majorityClass]!) majorityClass = c
  return {
    accuracy: n > 0 ? (n - countMismatches(pred, labels)) / n : NaN,
    majority: n > 0 ? counts[majorityClass]! / n : NaN,
    majorityClass,
    count: n,
  }
}
