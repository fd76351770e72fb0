/**
 * Held-out accuracy of the attribute classifier, per attribute, next to the majority-class
 * baseline (always answering the most frequent class of the evaluated set).
 */
import * as tf from '@tensorflow/tfjs'
import { ATTRIBUTE_SCHEMA, type AttributeTarget } from '../data/facesjs.js'
import { rgbToFloat } from '../data/image.js'
import { predictClasses, type AttributeClassifier } from './classifier.js'
import type { LabelledImages } from './data.js'
import { attributeAccuracy, mean, type AttributeAccuracy } from './metrics.js'

export interface ClassifierEvaluation {
  /** What was evaluated (split, n, source). */
  data: string
  count: number
  perAttribute: Record<string, AttributeAccuracy & { classes: number }>
  /** Unweighted means over the attributes. */
  meanAccuracy: number
  meanMajority: number
}

/** Float tensor [count, size, size, 3] in [-1, 1] of images [start, start + count) of a uint8 set. */
export function imageBatch(images: Uint8Array, size: number, start: number, count: number): tf.Tensor4D {
  const pixels = size * size * 3
  const data = rgbToFloat(images.subarray(start * pixels, (start + count) * pixels))
  return tf.tensor4d(data, [count, size, size, 3])
}

/** Throws unless the classifier's heads are exactly the targets and classes of `schema`. */
export function checkClassifierSchema(c: AttributeClassifier, schema: readonly AttributeTarget[] = ATTRIBUTE_SCHEMA): void {
  const same =
    c.targets.length === schema.length &&
    c.targets.every((t, k) => t.name === schema[k]!.name && t.classes.length === schema[k]!.classes.length && t.classes.every((cl, i) => cl === schema[k]!.classes[i]))
  if (!same) {
    throw new Error(
      `the classifier's heads (${c.targets.map((t) => `${t.name} ${t.classes.length}`).join(', ')}) are not this build's attribute schema ` +
        `(${schema.map((t) => `${t.name} ${t.numClasses}`).join(', ')}); retrain it`,
    )
  }
}

export async function evaluateClassifier(
  c: AttributeClassifier,
  set: LabelledImages,
  opts: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<ClassifierEvaluation> {
  if (!set.labels) throw new Error(`cannot measure accuracy: ${set.noLabels ?? 'the images have no labels'}`)
  checkClassifierSchema(c)
  const B = opts.batchSize ?? 64
  const preds: number[][] = c.targets.map(() => [])
  for (let start = 0; start < set.count; start += B) {
    const b = Math.min(B, set.count - start)
    const x = imageBatch(set.images, set.size, start, b)
    try {
      const p = await predictClasses(c, x)
      p.forEach((arr, k) => preds[k]!.push(...arr))
    } finally {
      x.dispose()
    }
    opts.onProgress?.(start + b, set.count)
  }
  const perAttribute: ClassifierEvaluation['perAttribute'] = {}
  c.targets.forEach((t, k) => {
    const labels = set.labels!.map((row) => row[k]!)
    perAttribute[t.name] = { ...attributeAccuracy(preds[k]!, labels, t.classes.length), classes: t.classes.length }
  })
  const rows = Object.values(perAttribute)
  return {
    data: set.description,
    count: set.count,
    perAttribute,
    meanAccuracy: mean(rows.map((r) => r.accuracy)),
    meanMajority: mean(rows.map((r) => r.majority)),
  }
}
