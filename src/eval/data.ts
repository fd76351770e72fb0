/**
 * Labelled images for the evaluation and for training the attribute classifier.
 *
 * `--data facesjs` means the faces of `npe dataset facesjs --seed 0` (dataset seed
 * EVAL_DATASET_SEED), rendered on the fly: the same faces the IAN trains on, with the same fixed
 * train / val / test split (splitOf(index)); `--data DIR` is a directory written by
 * `npe dataset` (labels.jsonl + dataset.json), or, for the IAN metrics only (they need no
 * labels), any folder of PNG/JPEG/WebP images (e.g. CelebA), where the split is ignored.
 *
 *  - held-out sets (loadEvalImages): the first n images of a split, in index order;
 *  - classifier training batches (openLabelledSource): facesjs item j of step s is the
 *    train-split face at index hash(seed, s, j) in [0, 2^31) (faces practically never repeat);
 *    a dataset directory is loaded once and cycled in seeded per-epoch permutations.
 * Images are uint8 RGB [count, size, size, 3] (row-major), labels are class-index vectors in
 * ATTRIBUTE_SCHEMA order.
 */
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { attributeVector, faceSeed, facesjsStream, renderFace, type LabelRecord, type Split } from '../data/facesjs.js'
import { listImages, loadFolderImage } from '../data/folder.js'
import { epochPermutation, facesjsBatchIndices } from '../training/data.js'

/** The facesjs dataset seed of `--data facesjs` (the faces of `npe dataset facesjs --seed 0`). */
export const EVAL_DATASET_SEED = 0
const ORDER_SALT = 0x434c5346 // 'CLSF'

export interface LabelledImages {
  /** uint8 RGB [count, size, size, 3]. */
  images: Uint8Array
  count: number
  size: number
  /** One class-index vector per image (ATTRIBUTE_SCHEMA order); absent for unlabelled folders. */
  labels?: number[][]
  /** Why there are no labels (plain folder, labels outside the schema). */
  noLabels?: string
  description: string
}

export interface EvalImagesOptions {
  /** 'facesjs' or a directory. */
  data: string
  split: Split
  n: number
  /** Image side (the model resolution). */
  size: number
  /** Renders / decodes in flight (default 4). */
  concurrency?: number
  onProgress?: (done: number, total: number) => void
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  )
}

/** Run `fn` over `items` with at most `concurrency` in flight; results in input order. */
async function mapLimit<I, O>(items: readonly I[], concurrency: number, fn: (item: I) => Promise<O>): Promise<O[]> {
  const out = new Array<O>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++
      out[i] = await fn(items[i]!)
    }
  }
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), items.length) }, worker))
  return out
}

function concat(images: Uint8Array[], pixels: number): Uint8Array {
  const out = new Uint8Array(images.length * pixels)
  images.forEach((img, i) => out.set(img, i * pixels))
  return out
}

/** The records of a `npe dataset` directory, or undefined when `dir` is not one. */
export async function readDatasetLabels(dir: string): Promise<LabelRecord[] | undefined> {
  const st = await stat(dir).catch(() => undefined)
  if (!st?.isDirectory()) throw new Error(`--data ${dir}: not a directory (use 'facesjs' or a dataset directory)`)
  const labelsPath = join(dir, 'labels.jsonl')
  if (!(await exists(labelsPath)) || !(await exists(join(dir, 'dataset.json')))) return undefined
  const records: LabelRecord[] = []
  ;(await readFile(labelsPath, 'utf8')).split('\n').forEach((line, i) => {
    if (line.trim() === '') return
    let rec: Partial<LabelRecord>
    try {
      rec = JSON.parse(line) as Partial<LabelRecord>
    } catch {
      throw new Error(`${labelsPath}:${i + 1}: not valid JSON`)
    }
    if (typeof rec.file !== 'string' || !['train', 'val', 'test'].includes(rec.split as string) || typeof rec.attributes !== 'object') {
      throw new Error(`${labelsPath}:${i + 1}: expected {file, split, attributes, ...}`)
    }
    records.push(rec as LabelRecord)
  })
  return records
}

function labelsOf(records: readonly LabelRecord[]): { labels?: number[][]; noLabels?: string } {
  try {
    return { labels: records.map((r) => attributeVector(r.attributes)) }
  } catch (err) {
    return { noLabels: `labels do not fit the attribute schema: ${(err as Error).message}` }
  }
}

/** The first n images (and labels) of a split. Fewer than n when the source has fewer. */
export async function loadEvalImages(opts: EvalImagesOptions): Promise<LabelledImages> {
  const { data, split, n, size } = opts
  const concurrency = opts.concurrency ?? 4
  const pixels = size * size * 3
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`n must be a positive integer, got ${n}`)
  if (data === 'facesjs') {
    const images: Uint8Array[] = []
    const labels: number[][] = []
    for await (const item of facesjsStream({ seed: EVAL_DATASET_SEED, size, split, concurrency })) {
      images.push(item.rgb)
      labels.push(attributeVector(item.attributes))
      opts.onProgress?.(images.length, n)
      if (images.length >= n) break
    }
    return {
      images: concat(images, pixels),
      count: images.length,
      size,
      labels,
      description: `facesjs ${split} split (dataset seed ${EVAL_DATASET_SEED}), first ${images.length} faces at ${size}x${size}`,
    }
  }
  const records = await readDatasetLabels(data)
  let files: string[]
  let labelled: { labels?: number[][]; noLabels?: string }
  let description: string
  if (records) {
    const chosen = records.filter((r) => r.split === split).slice(0, n)
    if (chosen.length === 0) throw new Error(`--data ${data}: the dataset has no ${split}-split images`)
    files = chosen.map((r) => join(data, r.file))
    labelled = labelsOf(chosen)
    description = `npe dataset ${data}, ${split} split, first ${chosen.length} images at ${size}x${size}`
  } else {
    files = (await listImages(data)).slice(0, n)
    if (files.length === 0) throw new Error(`--data ${data}: no PNG/JPEG/WebP images in the folder`)
    labelled = { noLabels: `${data} is a plain image folder (no labels.jsonl)` }
    description = `folder ${data} (no splits), first ${files.length} images at ${size}x${size}`
  }
  let done = 0
  const images = await mapLimit(files, concurrency, async (path) => {
    const rgb = await loadFolderImage(path, size)
    opts.onProgress?.(++done, files.length)
    return rgb
  })
  return { images: concat(images, pixels), count: images.length, size, ...labelled, description }
}

// ---------------------------------------------------------------------------------------------
// Classifier training batches

export interface LabelledBatch {
  /** uint8 RGB [B, size, size, 3]. */
  images: Uint8Array
  labels: number[][]
}

export interface LabelledBatchSource {
  readonly description: string
  readonly size: number
  readonly batchSize: number
  /** Training images (Infinity for facesjs on the fly). */
  readonly trainCount: number
  /** The batch of `step`; with `prefetch`, the next step's batch starts loading now. */
  batch(step: number, opts?: { prefetch?: boolean }): Promise<LabelledBatch>
  /** Waits for in-flight work. */
  close(): Promise<void>
}

export interface LabelledSourceOptions {
  size: number
  batchSize: number
  /** Order seed. */
  seed: number
  concurrency?: number
  onLoad?: (done: number, total: number) => void
}

/** facesjs dataset indices (train split) of the classifier batch of `step`: the training order with its own salt. Pure. */
export function classifierBatchIndices(seed: number, step: number, batchSize: number): number[] {
  return facesjsBatchIndices(seed, step, batchSize, ORDER_SALT)
}

/** One batch ahead. */
function prefetching(fetch: (step: number) => Promise<LabelledBatch>) {
  let pending: { step: number; promise: Promise<LabelledBatch> } | undefined
  return {
    get(step: number, prefetch: boolean): Promise<LabelledBatch> {
      const current = pending?.step === step ? pending.promise : fetch(step)
      pending = undefined
      if (prefetch) {
        const promise = fetch(step + 1)
        promise.catch(() => undefined) // surfaced when that step asks for it
        pending = { step: step + 1, promise }
      }
      return current
    },
    async close(): Promise<void> {
      const p = pending?.promise
      pending = undefined
      if (p) await p.catch(() => undefined)
    },
  }
}

/** Training batches (train split) with labels from `--data facesjs` or a dataset directory. */
export async function openLabelledSource(data: string, opts: LabelledSourceOptions): Promise<LabelledBatchSource> {
  const { size, batchSize: B, seed } = opts
  const pixels = size * size * 3
  if (data === 'facesjs') {
    const render = async (index: number) => {
      const face = await renderFace(faceSeed(EVAL_DATASET_SEED, index), size)
      return { rgb: face.rgb, label: attributeVector(face.attributes) }
    }
    const p = prefetching(async (step) => {
      const items = await Promise.all(classifierBatchIndices(seed, step, B).map(render))
      return { images: concat(items.map((i) => i.rgb), pixels), labels: items.map((i) => i.label) }
    })
    return {
      description: `facesjs on the fly (train split of dataset seed ${EVAL_DATASET_SEED}, ${size}x${size})`,
      size,
      batchSize: B,
      trainCount: Infinity,
      batch: (step, o) => p.get(step, o?.prefetch ?? false),
      close: () => p.close(),
    }
  }
  const records = await readDatasetLabels(data)
  if (!records) throw new Error(`--data ${data}: not a npe dataset directory (labels.jsonl and dataset.json are needed to train the classifier)`)
  const train = records.filter((r) => r.split === 'train')
  if (train.length === 0) throw new Error(`--data ${data}: the dataset has no train-split images`)
  const { labels, noLabels } = labelsOf(train)
  if (!labels) throw new Error(`--data ${data}: ${noLabels}`)
  let done = 0
  const images = await mapLimit(train, opts.concurrency ?? 4, async (r) => {
    const rgb = await loadFolderImage(join(data, r.file), size)
    opts.onLoad?.(++done, train.length)
    return rgb
  })
  const n = train.length
  const perms = new Map<number, Uint32Array>()
  const positions = (step: number): number[] =>
    Array.from({ length: B }, (_, j) => {
      const p = step * B + j
      const epoch = Math.floor(p / n)
      let perm = perms.get(epoch)
      if (!perm) {
        perm = epochPermutation(seed, epoch, n)
        perms.set(epoch, perm)
        for (const e of perms.keys()) if (e < epoch - 1) perms.delete(e)
      }
      return perm[p - epoch * n]!
    })
  return {
    description: `npe dataset ${data} (train split, ${n} images at ${size}x${size})`,
    size,
    batchSize: B,
    trainCount: n,
    batch: async (step) => {
      const idx = positions(step)
      return { images: concat(idx.map((i) => images[i]!), pixels), labels: idx.map((i) => labels[i]!) }
    },
    close: async () => undefined,
  }
}
