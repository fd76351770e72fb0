/**
 * Training batches for `npe train`, with an order that is a pure function of (seed, step):
 * a run resumed from a checkpoint at step s sees exactly the batches an uninterrupted run
 * would have seen from step s on.
 *
 *  - facesjs (on the fly, nothing on disk): item j of the batch of step s is the face at
 *    dataset index `facesjsBatchIndices(seed, s, B)[j]`, a hash of (seed, s, j) re-drawn until
 *    the index is in the train split. Faces are those of `npe dataset facesjs --seed 0` at the
 *    same index (dataset seed FACESJS_DATASET_SEED), over an index space of 2^31 faces, so
 *    batches practically never repeat a face. The next batch is rendered while the current step
 *    runs (sharp renders on libuv threads, the training step on the JS thread).
 *  - a folder: a `npe dataset` directory (labels.jsonl + dataset.json; its train split only)
 *    or any folder of PNG/JPEG/WebP images (all of them). Loaded once into memory as uint8 RGB
 *    at the model resolution. Item j of step s is position p = s * B + j of an endless
 *    sequence of epochs; epoch e = floor(p / n) is a seeded permutation of the n images.
 *
 * Each source also has a fixed validation set for the sample grids: the first images of the
 * val split (facesjs, npe datasets), else the last images of the folder (which it also trains on).
 * Images are uint8 RGB, row-major, `[count, R, R, 3]` flattened.
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { faceSeed, renderFace, splitOf, type LabelRecord, type Split } from '../data/facesjs.js'
import { listImages, loadFolderImage } from '../data/folder.js'
import { Rng, deriveSeed } from '../data/rng.js'

/** The facesjs dataset seed of on-the-fly training: the faces of `npe dataset facesjs --seed 0`. */
export const FACESJS_DATASET_SEED = 0
/** On-the-fly facesjs indices are drawn from [0, 2^31). */
export const FACESJS_INDEX_SPACE = 0x80000000

const ORDER_SALT = 0x4f524452 // 'ORDR'
const EPOCH_SALT = 0x45504f43 // 'EPOC'

export type SourceKind = 'facesjs' | 'npe-dataset' | 'folder'

export interface BatchSource {
  readonly kind: SourceKind
  /** Human-readable: what is trained on. */
  readonly description: string
  /** Image side (the model resolution). */
  readonly resolution: number
  readonly batchSize: number
  /** Training images (Infinity for facesjs on the fly). */
  readonly trainCount: number
  /** Fixed validation images, uint8 [validationCount, R, R, 3]. */
  readonly validation: Uint8Array
  readonly validationCount: number
  /** Dataset items (facesjs indices, or positions in the list of training images) of a step. */
  indices(step: number): number[]
  /**
   * The batch of `step`, uint8 [B, R, R, 3]. With `prefetch`, the next step's batch starts
   * loading now (ask for steps in increasing order to benefit).
   */
  batch(step: number, opts?: { prefetch?: boolean }): Promise<Uint8Array>
  /** Waits for in-flight work; the source is not used afterwards. */
  close(): Promise<void>
}

export interface SourceOptions {
  /** Model resolution R. */
  resolution: number
  /** Batch size B. */
  batchSize: number
  /** Order seed. */
  seed: number
  /** Validation images to keep (default 8). */
  validationCount?: number
  /** Folder images decoded in parallel (default 4). */
  concurrency?: number
  /** Folder loading progress. */
  onLoad?: (done: number, total: number) => void
}

// ---------------------------------------------------------------------------------------------
// Pure ordering

/** facesjs dataset indices of the batch of `step` (train split only). Pure. `salt` separates independent orders. */
export function facesjsBatchIndices(seed: number, step: number, batchSize: number, salt: number = ORDER_SALT): number[] {
  const out: number[] = []
  for (let j = 0; j < batchSize; j++) {
    for (let attempt = 0; ; attempt++) {
      const index = deriveSeed(seed, salt, step, j, attempt) % FACESJS_INDEX_SPACE
      if (splitOf(index) === 'train') {
        out.push(index)
        break
      }
    }
  }
  return out
}

/** The seeded permutation of 0..n-1 for `epoch` (Fisher-Yates). Pure. */
export function epochPermutation(seed: number, epoch: number, n: number): Uint32Array {
  const perm = new Uint32Array(n)
  for (let i = 0; i < n; i++) perm[i] = i
  const rng = new Rng(deriveSeed(seed, EPOCH_SALT, epoch))
  for (let i = n - 1; i > 0; i--) {
    const k = rng.int(i + 1)
    const t = perm[i]!
    perm[i] = perm[k]!
    perm[k] = t
  }
  return perm
}

/**
 * Positions (0..n-1) of the batch of `step` in a list of n images: position p = step * B + j of
 * the epoch sequence, epoch floor(p / n), a fresh seeded permutation per epoch. Pure (the
 * optional cache only saves recomputing permutations).
 */
export function folderBatchIndices(
  seed: number,
  step: number,
  batchSize: number,
  n: number,
  cache?: Map<number, Uint32Array>,
): number[] {
  if (n < 1) throw new RangeError('folderBatchIndices: no images')
  const out: number[] = []
  for (let j = 0; j < batchSize; j++) {
    const p = step * batchSize + j
    const epoch = Math.floor(p / n)
    let perm = cache?.get(epoch)
    if (!perm) {
      perm = epochPermutation(seed, epoch, n)
      if (cache) {
        cache.set(epoch, perm)
        for (const e of cache.keys()) if (e < epoch - 1) cache.delete(e)
      }
    }
    out.push(perm[p - epoch * n]!)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Sources

/** One batch ahead: `get(step)` returns the prefetched promise when there is one. */
class Prefetcher {
  private readonly pending = new Map<number, Promise<Uint8Array>>()

  constructor(private readonly fetch: (step: number) => Promise<Uint8Array>) {}

  get(step: number, prefetch: boolean): Promise<Uint8Array> {
    const current = this.pending.get(step) ?? this.fetch(step)
    this.pending.delete(step)
    for (const [k, p] of this.pending) {
      if (k !== step + 1) {
        this.pending.delete(k)
        p.catch(() => undefined)
      }
    }
    if (prefetch && !this.pending.has(step + 1)) {
      const next = this.fetch(step + 1)
      next.catch(() => undefined) // surfaced when that step asks for it
      this.pending.set(step + 1, next)
    }
    return current
  }

  async close(): Promise<void> {
    const all = [...this.pending.values()]
    this.pending.clear()
    await Promise.allSettled(all)
  }
}

function concat(images: Uint8Array[], pixels: number): Uint8Array {
  const out = new Uint8Array(images.length * pixels)
  images.forEach((img, i) => out.set(img, i * pixels))
  return out
}

/** Faces rendered on the fly (train split for batches, val split for validation). */
export async function facesjsSource(opts: SourceOptions): Promise<BatchSource> {
  const { resolution: R, batchSize: B, seed } = opts
  const pixels = R * R * 3
  const render = async (index: number): Promise<Uint8Array> => (await renderFace(faceSeed(FACESJS_DATASET_SEED, index), R)).rgb
  const validationCount = opts.validationCount ?? 8
  const valIndices: number[] = []
  for (let i = 0; valIndices.length < validationCount; i++) if (splitOf(i) === 'val') valIndices.push(i)
  const validation = concat(await Promise.all(valIndices.map(render)), pixels)
  const indices = (step: number) => facesjsBatchIndices(seed, step, B)
  // All B renders start at once: their synchronous part (facesjs SVG) runs now, the
  // rasterisation on sharp's threads, overlapping the training step that follows.
  const prefetcher = new Prefetcher(async (step) => concat(await Promise.all(indices(step).map(render)), pixels))
  return {
    kind: 'facesjs',
    description: `facesjs on the fly (train split of dataset seed ${FACESJS_DATASET_SEED}, rendered at ${R}x${R})`,
    resolution: R,
    batchSize: B,
    trainCount: Infinity,
    validation,
    validationCount,
    indices,
    batch: (step, o) => prefetcher.get(step, o?.prefetch ?? false),
    close: () => prefetcher.close(),
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/** Run `fn` over `items` with at most `concurrency` in flight; results in input order. */
async function mapLimit<I, O>(items: readonly I[], concurrency: number, fn: (item: I, i: number) => Promise<O>): Promise<O[]> {
  const out = new Array<O>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!, i)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
  return out
}

function parseLabels(text: string, path: string): LabelRecord[] {
  const records: LabelRecord[] = []
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    let rec: Partial<LabelRecord>
    try {
      rec = JSON.parse(line) as Partial<LabelRecord>
    } catch {
      throw new Error(`${path}:${i + 1}: not valid JSON`)
    }
    if (typeof rec.file !== 'string' || !['train', 'val', 'test'].includes(rec.split as string)) {
      throw new Error(`${path}:${i + 1}: expected {file, split, ...}`)
    }
    records.push(rec as LabelRecord)
  })
  return records
}

/**
 * The training and validation files of a directory: a `npe dataset` (labels.jsonl and
 * dataset.json present; train split / first val images) or a plain folder (all images / last ones).
 */
export async function folderFiles(
  dir: string,
  validationCount = 8,
): Promise<{ kind: 'npe-dataset' | 'folder'; train: string[]; validation: string[] }> {
  const st = await stat(dir).catch(() => undefined)
  if (!st?.isDirectory()) throw new Error(`--data ${dir}: not a directory (use 'facesjs' or a folder of images)`)
  const labelsPath = join(dir, 'labels.jsonl')
  if ((await exists(labelsPath)) && (await exists(join(dir, 'dataset.json')))) {
    const records = parseLabels(await readFile(labelsPath, 'utf8'), labelsPath)
    const of = (split: Split) => records.filter((r) => r.split === split).map((r) => join(dir, r.file))
    const train = of('train')
    if (train.length === 0) throw new Error(`--data ${dir}: the dataset has no train-split images`)
    const val = of('val')
    const held = val.length > 0 ? val : of('test')
    return { kind: 'npe-dataset', train, validation: (held.length > 0 ? held : train.slice(-validationCount)).slice(0, validationCount) }
  }
  const files = await listImages(dir)
  if (files.length === 0) throw new Error(`--data ${dir}: no PNG/JPEG/WebP images in the folder`)
  return { kind: 'folder', train: files, validation: files.slice(-validationCount) }
}

/** A folder of images (or a `npe dataset` directory) in memory. */
export async function folderSource(dir: string, opts: SourceOptions): Promise<BatchSource> {
  const { resolution: R, batchSize: B, seed } = opts
  const pixels = R * R * 3
  const validationCount = opts.validationCount ?? 8
  const files = await folderFiles(dir, validationCount)
  const n = files.train.length
  let done = 0
  const images = await mapLimit(files.train, opts.concurrency ?? 4, async (path) => {
    const rgb = await loadFolderImage(path, R)
    opts.onLoad?.(++done, n)
    return rgb
  })
  const byPath = new Map(files.train.map((p, i) => [p, images[i]!]))
  const valImages = await Promise.all(files.validation.map(async (p) => byPath.get(p) ?? (await loadFolderImage(p, R))))
  // Fewer validation images than asked (tiny folders): repeat them.
  const validation = concat(
    Array.from({ length: validationCount }, (_, i) => valImages[i % valImages.length]!),
    pixels,
  )
  const cache = new Map<number, Uint32Array>()
  const indices = (step: number) => folderBatchIndices(seed, step, B, n, cache)
  const what = files.kind === 'npe-dataset' ? `npe dataset ${dir} (train split, ${n} images)` : `folder ${dir} (${n} images)`
  return {
    kind: files.kind,
    description: `${what} at ${R}x${R}`,
    resolution: R,
    batchSize: B,
    trainCount: n,
    validation,
    validationCount,
    indices,
    batch: async (step) => concat(indices(step).map((i) => images[i]!), pixels),
    close: async () => undefined,
  }
}

/** `--data facesjs` or a directory. */
export function openSource(data: string, opts: SourceOptions): Promise<BatchSource> {
  return data === 'facesjs' ? facesjsSource(opts) : folderSource(data, opts)
}
