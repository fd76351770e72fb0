/**
 * Kernels that training needs but @tensorflow/tfjs-backend-wasm 4.22 does not
 * provide, registered for the 'wasm' backend by registerWasmTrainingKernels().
 *
 * - Conv2DBackpropFilter: the gradient of conv2d (and of conv2dTranspose) with
 *   respect to its filter. Without it every convnet training step on wasm fails
 *   with "Kernel 'Conv2DBackpropFilter' not registered for backend 'wasm'".
 *   A training-like computation over everything our networks use (conv2d,
 *   conv2dTranspose, leakyRelu, elu, relu, moments, rsqrt, abs, exp,
 *   logSoftmax, softmax cross-entropy, matMul, sum, concat, slice, pad, tile,
 *   sigmoid, tanh, clipByValue, resizeBilinear, expandDims, eye, stack, ...)
 *   needs no other missing kernel.
 * - DepthwiseConv2dNativeBackpropFilter / DepthwiseConv2dNativeBackpropInput
 *   (gradients of depthwiseConv2d and separableConv2d) and UnsortedSegmentSum
 *   (gradient of gather): also absent on wasm; supplied so that those ops can
 *   be trained too.
 *
 * The kernels are written with public tfjs ops, which run on the active
 * backend (wasm) while the kernel executes; the engine does not record them on
 * the gradient tape (kernel depth > 0), and everything intermediate is
 * disposed by a tidy. Only dataFormat NHWC and dilations 1 are supported (the
 * tfjs gradients of conv2d and depthwiseConv2d refuse dilations > 1 anyway).
 *
 * Two wasm 4.22 bugs met on the way (not worked around here): the OneHot kernel
 * returns garbage for dtype 'float32' (it writes integer bits; use the int32
 * default and cast), and Conv2D with a numeric `pad` and a non-square filter
 * overruns its output buffer and corrupts the wasm heap (tfjs sizes a
 * numeric-pad output from the filter height and stride for both axes).
 */
import * as tf from '@tensorflow/tfjs'

/** Marks kernel functions registered by this module (shared by every copy of it). */
const MARK = Symbol.for('neural-photo-editor.wasm-training-kernel')

type Attrs = Record<string, unknown>
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }

/**
 * A tensor over the data of `info`. Kernel inputs are normally Tensors and are
 * used as they are (the caller owns them; a tidy does not dispose them); a bare
 * TensorInfo gets a new Tensor that holds its own reference to the data, so
 * disposing it leaves the caller's data alive.
 */
function asTensor(info: tf.TensorInfo, backend: tf.KernelBackend): tf.Tensor {
  if ((info as Partial<tf.Tensor>).rank != null) return info as tf.Tensor
  const t = tf.engine().makeTensorFromTensorInfo(info, backend)
  backend.incRef(info.dataId)
  return t
}

/**
 * The rows [start, start + length) of axis `axis` of x, where indices outside
 * [0, x.shape[axis]) read as zero (padding before/after, cropping otherwise).
 */
function window(x: tf.Tensor4D, axis: 1 | 2, start: number, length: number): tf.Tensor4D {
  const size = x.shape[axis]
  const padBefore = Math.max(0, -start)
  const padAfter = Math.max(0, start + length - size)
  const from = Math.max(0, start)
  const to = Math.min(size, start + length)
  let y = x
  if (from > 0 || to < size) {
    const begin: [number, number, number, number] = [0, 0, 0, 0]
    const extent: [number, number, number, number] = [-1, -1, -1, -1]
    begin[axis] = from
    extent[axis] = Math.max(0, to - from)
    y = tf.slice(y, begin, extent)
  }
  if (padBefore > 0 || padAfter > 0) {
    const paddings: [number, number][] = [
      [0, 0],
      [0, 0],
      [0, 0],
      [0, 0],
    ]
    paddings[axis] = [padBefore, padAfter]
    y = tf.pad(y, paddings)
  }
  return y
}

/**
 * Conv2DBackpropFilter: dW[kh, kw, ci, co] =
 *   sum over n, oh, ow of xPadded[n, oh*sh + kh, ow*sw + kw, ci] * dy[n, oh, ow, co].
 *
 * That is a 'valid' conv2d of x with batch and channel axes swapped
 * ([ci, H, W, n]) by dy as a filter ([oh, ow, n, co]), with stride 1 and the
 * forward stride as the dilation; its output is [ci, kh, kw, co] once x is
 * padded (or cropped) to exactly (oh-1)*sh + kh rows and (ow-1)*sw + kw
 * columns, starting at -padTop / -padLeft as tfjs computes them.
 */
function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args
  const attrs = (args.attrs ?? {}) as Attrs
  const x = inputs['x']
  const dy = inputs['dy']
  if (x == null || dy == null) throw new Error('Conv2DBackpropFilter (wasm): inputs x and dy are required')
  const strides = attrs['strides'] as [number, number] | number
  const pad = attrs['pad'] as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding
  const dataFormat = (attrs['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC'
  const dimRoundingMode = attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined
  const filterShape = attrs['filterShape'] as [number, number, number, number]
  if (dataFormat !== 'NHWC') {
    throw new Error(`Conv2DBackpropFilter (wasm): dataFormat '${dataFormat}' is not supported; use 'NHWC'`)
  }
  if (x.shape.length !== 4 || dy.shape.length !== 4) {
    throw new Error(`Conv2DBackpropFilter (wasm): x and dy must be rank 4, got [${x.shape}] and [${dy.shape}]`)
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  )
  const { batchSize, outHeight, outWidth, outChannels, strideHeight, strideWidth, filterHeight, filterWidth } = info
  if (dy.shape[0] !== batchSize || dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== outChannels) {
    throw new Error(
      `Conv2DBackpropFilter (wasm): dy has shape [${dy.shape}], expected [${[batchSize, outHeight, outWidth, outChannels]}]`,
    )
  }
  return tf.tidy(() => {
    const xt = asTensor(x, backend) as tf.Tensor4D
    const dyt = asTensor(dy, backend) as tf.Tensor4D
    if (outHeight === 0 || outWidth === 0 || batchSize === 0) return tf.zeros(info.filterShape, 'float32')
    const rows = (outHeight - 1) * strideHeight + filterHeight
    const cols = (outWidth - 1) * strideWidth + filterWidth
    const xp = window(window(xt, 1, -info.padInfo.top, rows), 2, -info.padInfo.left, cols)
    const xT = tf.transpose(xp, [3, 1, 2, 0]) // [ci, rows, cols, n]
    const dyT = tf.transpose(dyt, [1, 2, 0, 3]) // [oh, ow, n, co]
    const g = tf.conv2d(xT, dyT, 1, 'valid', 'NHWC', [strideHeight, strideWidth]) // [ci, kh, kw, co]
    return tf.transpose(g, [1, 2, 0, 3])
  })
}

/**
 * Conv2DBackpropInput (the input gradient of conv2d, and conv2dTranspose's
 * forward): wasm 4.22 ships a direct loop that is 5-10x slower than its
 * XNNPACK Conv2D, so we replace it with
 *   dx = conv2d_valid(window(dilate(dy, stride)), rot180(W) with in/out swapped)
 * where dilate puts stride-1 zeros between dy's rows/columns and the window
 * starts at padTop - (kh - 1) (resp. left) and spans H + kh - 1 rows
 * (W + kw - 1 columns): dx[i] = sum_k dyd[i + padTop - k] W[k].
 */
function dilate(x: tf.Tensor4D, sh: number, sw: number): tf.Tensor4D {
  if (sh === 1 && sw === 1) return x
  const [b, h, w, c] = x.shape
  const spread = tf.pad(tf.reshape(x, [b, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ])
  return tf.slice(tf.reshape(spread, [b, h * sh, w * sw, c]) as tf.Tensor4D, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c])
}

function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args
  const attrs = (args.attrs ?? {}) as Attrs
  const dy = inputs['dy']
  const filter = inputs['filter']
  if (dy == null || filter == null) throw new Error('Conv2DBackpropInput (wasm): inputs dy and filter are required')
  const dataFormat = (attrs['dataFormat'] as 'NHWC' | 'NCHW' | undefined) ?? 'NHWC'
  if (dataFormat !== 'NHWC') {
    throw new Error(`Conv2DBackpropInput (wasm): dataFormat '${dataFormat}' is not supported; use 'NHWC'`)
  }
  const inputShape = attrs['inputShape'] as [number, number, number, number]
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  )
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels, strideHeight, strideWidth, filterHeight, filterWidth } = info
  if (dy.shape[0] !== batchSize || dy.shape[1] !== outHeight || dy.shape[2] !== outWidth || dy.shape[3] !== outChannels) {
    throw new Error(
      `Conv2DBackpropInput (wasm): dy has shape [${dy.shape}], expected [${[batchSize, outHeight, outWidth, outChannels]}]`,
    )
  }
  return tf.tidy(() => {
    const dyt = asTensor(dy, backend) as tf.Tensor4D
    const w = asTensor(filter, backend) as tf.Tensor4D
    if (outHeight === 0 || outWidth === 0 || batchSize === 0) return tf.zeros(inputShape, 'float32')
    const dyd = dilate(dyt, strideHeight, strideWidth)
    const rows = window(dyd, 1, info.padInfo.top - (filterHeight - 1), inHeight + filterHeight - 1)
    const padded = window(rows, 2, info.padInfo.left - (filterWidth - 1), inWidth + filterWidth - 1)
    // rot180 = reversing the flattened taps, done as a matMul with the anti-identity
    // (wasm's multi-axis Reverse and Gather are several times slower here)
    const [kh, kw, ci, co] = w.shape
    const K = kh * kw
    const anti = new Float32Array(K * K)
    for (let i = 0; i < K; i++) anti[i * K + (K - 1 - i)] = 1
    const rotated = tf.reshape(tf.matMul(tf.tensor2d(anti, [K, K]), tf.reshape(w, [K, ci * co])), [kh, kw, ci, co])
    const flipped = tf.transpose(rotated, [0, 1, 3, 2]) // [kh, kw, out, in]
    const dx = tf.conv2d(padded, flipped as tf.Tensor4D, 1, 'valid')
    if (dx.shape[3] !== inChannels) throw new Error('Conv2DBackpropInput (wasm): internal shape error')
    return dx
  })
}

function requireDilationsOne(kernel: string, dilations: unknown): void {
  const d = dilations == null ? [1, 1] : typeof dilations === 'number' ? [dilations, dilations] : (dilations as number[])
  if (d.some((v) => v !== 1)) throw new Error(`${kernel} (wasm): dilations [${d}] are not supported; only 1`)
}

/**
 * DepthwiseConv2dNativeBackpropFilter: dW[kh, kw, c, m] =
 *   sum over n, oh, ow of xPadded[n, oh*sh + kh, ow*sw + kw, c] * dy[n, oh, ow, c*M + m].
 *
 * A 'valid' depthwise conv of x laid out as one image with channels (c, n)
 * ([1, rows, cols, C*N]) by dy as a filter ([oh, ow, C*N, M]), stride 1,
 * dilation = forward stride; the output [1, kh, kw, C*N*M] is summed over n.
 */
function depthwiseConv2DBackpropFilter(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args
  const attrs = (args.attrs ?? {}) as Attrs
  const x = inputs['x']
  const dy = inputs['dy']
  const name = 'DepthwiseConv2dNativeBackpropFilter'
  if (x == null || dy == null) throw new Error(`${name} (wasm): inputs x and dy are required`)
  requireDilationsOne(name, attrs['dilations'])
  const filterShape = attrs['filterShape'] as [number, number, number, number]
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    true,
  )
  const { batchSize: n, inChannels: c, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info
  const m = filterShape[3]
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(`${name} (wasm): dy has shape [${dy.shape}], expected [${info.outShape}]`)
  }
  return tf.tidy(() => {
    const xt = asTensor(x, backend) as tf.Tensor4D
    const dyt = asTensor(dy, backend) as tf.Tensor4D
    if (outHeight === 0 || outWidth === 0 || n === 0) return tf.zeros(filterShape, 'float32')
    const rows = (outHeight - 1) * strideHeight + filterHeight
    const cols = (outWidth - 1) * strideWidth + filterWidth
    const xp = window(window(xt, 1, -info.padInfo.top, rows), 2, -info.padInfo.left, cols)
    const image = tf.reshape(tf.transpose(xp, [1, 2, 3, 0]), [1, rows, cols, c * n]) as tf.Tensor4D // channel index c*N + n
    const dy5 = tf.reshape(dyt, [n, outHeight, outWidth, c, m])
    const filt = tf.reshape(tf.transpose(dy5, [1, 2, 3, 0, 4]), [outHeight, outWidth, c * n, m])
    const g = tf.depthwiseConv2d(image, filt as tf.Tensor4D, 1, 'valid', 'NHWC', [strideHeight, strideWidth]) // [1, kh, kw, (c*N + n)*M + m]
    return tf.sum(tf.reshape(g, [filterHeight, filterWidth, c, n, m]), 3)
  })
}

/**
 * DepthwiseConv2dNativeBackpropInput: dx[n, i, j, c] =
 *   sum over kh, kw, m of dyUp[n, i + top - kh, j + left - kw, c*M + m] * W[kh, kw, c, m],
 * where dyUp is dy with (stride - 1) zeros inserted between rows and columns.
 *
 * A 'valid' depthwise conv (multiplier 1) of dyUp, zero-extended by
 * filter - 1 - top before and as needed after, by the spatially reversed
 * filter ([kh, kw, C*M, 1]), summed over m.
 */
function depthwiseConv2DBackpropInput(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args
  const attrs = (args.attrs ?? {}) as Attrs
  const dy = inputs['dy']
  const filter = inputs['filter']
  const name = 'DepthwiseConv2dNativeBackpropInput'
  if (dy == null || filter == null) throw new Error(`${name} (wasm): inputs dy and filter are required`)
  requireDilationsOne(name, attrs['dilations'])
  const inputShape = attrs['inputShape'] as [number, number, number, number]
  const filterShape = filter.shape as [number, number, number, number]
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filterShape,
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as 'valid' | 'same' | number | tf.backend_util.ExplicitPadding,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
    true,
  )
  const { batchSize: n, inHeight, inWidth, inChannels: c, outHeight, outWidth, strideHeight, strideWidth, filterHeight, filterWidth } = info
  const m = filterShape[3]
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(`${name} (wasm): dy has shape [${dy.shape}], expected [${info.outShape}]`)
  }
  return tf.tidy(() => {
    const dyt = asTensor(dy, backend) as tf.Tensor4D
    const ft = asTensor(filter, backend) as tf.Tensor4D
    if (outHeight === 0 || outWidth === 0 || n === 0) return tf.zeros(inputShape, 'float32')
    let up: tf.Tensor4D = dyt
    if (strideHeight > 1 || strideWidth > 1) {
      // [n, oh, 1, ow, 1, C*M] -> zero-pad the unit axes to the strides -> [n, oh*sh, ow*sw, C*M]
      const d6 = tf.reshape(dyt, [n, outHeight, 1, outWidth, 1, c * m])
      const p6 = tf.pad(d6, [[0, 0], [0, 0], [0, strideHeight - 1], [0, 0], [0, strideWidth - 1], [0, 0]])
      up = tf.reshape(p6, [n, outHeight * strideHeight, outWidth * strideWidth, c * m])
    }
    const rows = inHeight + filterHeight - 1
    const cols = inWidth + filterWidth - 1
    const upPadded = window(window(up, 1, info.padInfo.top - (filterHeight - 1), rows), 2, info.padInfo.left - (filterWidth - 1), cols)
    const flipped = tf.reshape(tf.reverse(ft, [0, 1]), [filterHeight, filterWidth, c * m, 1])
    const g = tf.depthwiseConv2d(upPadded, flipped as tf.Tensor4D, 1, 'valid') // [n, H, W, C*M]
    return tf.sum(tf.reshape(g, [n, inHeight, inWidth, c, m]), 4)
  })
}

/**
 * UnsortedSegmentSum (the gradient of gather): out[s, ...] = sum of x[i, ...]
 * over the i with segmentIds[i] == s; ids outside [0, numSegments) are
 * dropped. Computed as oneHot(ids)^T x with one matMul.
 */
function unsortedSegmentSum(args: KernelArgs): tf.TensorInfo {
  const { inputs, backend } = args
  const attrs = (args.attrs ?? {}) as Attrs
  const x = inputs['x']
  const segmentIds = inputs['segmentIds']
  if (x == null || segmentIds == null) throw new Error('UnsortedSegmentSum (wasm): inputs x and segmentIds are required')
  const numSegments = attrs['numSegments'] as number
  const idsRank = segmentIds.shape.length
  if (!tf.util.arraysEqual(x.shape.slice(0, idsRank), segmentIds.shape)) {
    throw new Error(`UnsortedSegmentSum (wasm): segmentIds shape [${segmentIds.shape}] must prefix x shape [${x.shape}]`)
  }
  const rest = x.shape.slice(idsRank)
  const k = tf.util.sizeFromShape(segmentIds.shape)
  const d = tf.util.sizeFromShape(rest)
  return tf.tidy(() => {
    const xt = asTensor(x, backend)
    const ids = tf.cast(tf.reshape(asTensor(segmentIds, backend), [k]), 'int32')
    // int32 then cast: the wasm OneHot kernel writes integer bits into float32 outputs
    const oneHot = tf.cast(tf.oneHot(ids, numSegments), 'float32') // [k, S]
    const x2 = tf.reshape(xt.dtype === 'float32' ? xt : tf.cast(xt, 'float32'), [k, d])
    const out = tf.reshape(tf.matMul(oneHot, x2, true, false), [numSegments, ...rest])
    return xt.dtype === 'float32' ? out : tf.cast(out, xt.dtype)
  })
}

const KERNELS: { kernelName: string; kernelFunc: tf.KernelFunc; replace?: boolean }[] = [
  { kernelName: 'Conv2DBackpropFilter', kernelFunc: conv2DBackpropFilter as tf.KernelFunc },
  // wasm has this one, but a slow direct loop: replaced (see conv2DBackpropInput)
  { kernelName: 'Conv2DBackpropInput', kernelFunc: conv2DBackpropInput as tf.KernelFunc, replace: true },
  { kernelName: 'DepthwiseConv2dNativeBackpropFilter', kernelFunc: depthwiseConv2DBackpropFilter as tf.KernelFunc },
  { kernelName: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: depthwiseConv2DBackpropInput as tf.KernelFunc },
  { kernelName: 'UnsortedSegmentSum', kernelFunc: unsortedSegmentSum as tf.KernelFunc },
]
for (const k of KERNELS) Object.defineProperty(k.kernelFunc, MARK, { value: true })

/** Names of the kernels this module can supply for the wasm backend. */
export const WASM_TRAINING_KERNELS: readonly string[] = KERNELS.map((k) => k.kernelName)

function isOurs(kernelName: string): boolean {
  const k = tf.getKernel(kernelName, 'wasm')
  return k != null && (k.kernelFunc as unknown as Record<symbol, unknown>)[MARK] === true
}

/**
 * Registers, for the 'wasm' backend, each kernel of WASM_TRAINING_KERNELS
 * that the wasm backend lacks, and replaces wasm's slow Conv2DBackpropInput
 * (other kernels wasm already has are left alone).
 * Idempotent: returns the names of the kernels on 'wasm' that come from this
 * module, the same list on every call. Does not need the wasm backend to be
 * loaded or active.
 */
export function registerWasmTrainingKernels(): string[] {
  for (const { kernelName, kernelFunc, replace } of KERNELS) {
    if (replace && tf.getKernel(kernelName, 'wasm') != null && !isOurs(kernelName)) tf.unregisterKernel(kernelName, 'wasm')
    if (tf.getKernel(kernelName, 'wasm') == null) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc })
  }
  return KERNELS.map((k) => k.kernelName).filter(isOurs)
}

/**
 * The cpu backend's Conv2DBackpropFilter is a direct loop, orders of magnitude
 * slower than expressing it as its Conv2D (a 5x5 stride-2 filter gradient at
 * 64x64x32, batch 16: minutes instead of seconds), so initBackend('cpu')
 * installs the Conv2D-based kernel there. Its Conv2DBackpropInput is kept: on
 * cpu the dilated-input formulation costs ~3x more than the native loop (it
 * multiplies the inserted zeros), which only XNNPACK's speed makes worth it on
 * wasm. Idempotent; returns the kernel names installed.
 */
export function registerCpuConvGradients(): string[] {
  const names = ['Conv2DBackpropFilter']
  for (const { kernelName, kernelFunc } of KERNELS.filter((k) => names.includes(k.kernelName))) {
    const existing = tf.getKernel(kernelName, 'cpu')
    if (existing && (existing.kernelFunc as unknown as Record<symbol, unknown>)[MARK] === true) continue
    if (existing) tf.unregisterKernel(kernelName, 'cpu')
    tf.registerKernel({ kernelName, backendName: 'cpu', kernelFunc })
  }
  return names
}
