/**
 * The attribute classifier on disk: a directory with
 *   classifier.json  format, formatVersion, config, seed, step, the attribute schema of its
 *                    heads (names and class names), metrics (held-out accuracy...), metadata,
 *                    a tfjs weights manifest for weights.bin with its byte size and SHA-256
 *   weights.bin      every parameter and batch-norm statistic (float32, tf.io.encodeWeights)
 * Writes are atomic (a temporary sibling directory replaces the target). Unknown versions,
 * corrupted files and weights that do not fit the config fail with a ClassifierError and a
 * stable `code`.
 */
import * as tf from '@tensorflow/tfjs'
import { createHash } from 'node:crypto'
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { createClassifier, disposeClassifier, parseClassifierConfig, type AttributeClassifier, type ClassifierConfig, type ClassifierTarget } from './classifier.js'

export const CLASSIFIER_FORMAT = 'npe-attribute-classifier'
export const CLASSIFIER_FORMAT_VERSION = 1

export type ClassifierErrorCode = 'classifier_missing' | 'classifier_version' | 'classifier_config' | 'classifier_corrupt' | 'classifier_mismatch'

export class ClassifierError extends Error {
  override name = 'ClassifierError'
  constructor(
    readonly code: ClassifierErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export interface ClassifierJson {
  format: typeof CLASSIFIER_FORMAT
  formatVersion: number
  config: ClassifierConfig
  /** Seed the parameters were initialised with. */
  seed: number
  /** Completed training steps. */
  step: number
  createdAt: string
  /** The heads: target names and class names, in output order. */
  attributeSchema: ClassifierTarget[]
  /** Held-out evaluation (free-form: split, n, per-attribute accuracy...). */
  metrics: Record<string, unknown>
  /** Free-form: data, command, wall time, backend... */
  metadata: Record<string, unknown>
  weights: { file: string; bytes: number; sha256: string; manifest: tf.io.WeightsManifestConfig }
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** Saves the classifier to `dir` (replacing it atomically). */
export async function saveClassifier(
  dir: string,
  c: AttributeClassifier,
  opts: { step?: number; metrics?: Record<string, unknown>; metadata?: Record<string, unknown>; now?: Date } = {},
): Promise<ClassifierJson> {
  const { data, specs } = await tf.io.encodeWeights(Object.fromEntries(c.params.entries()))
  const bytes = new Uint8Array(data)
  const json: ClassifierJson = {
    format: CLASSIFIER_FORMAT,
    formatVersion: CLASSIFIER_FORMAT_VERSION,
    config: c.config,
    seed: c.params.seed,
    step: opts.step ?? 0,
    createdAt: (opts.now ?? new Date()).toISOString(),
    attributeSchema: c.targets.map((t) => ({ name: t.name, classes: [...t.classes] })),
    metrics: opts.metrics ?? {},
    metadata: opts.metadata ?? {},
    weights: { file: 'weights.bin', bytes: bytes.byteLength, sha256: sha256(bytes), manifest: [{ paths: ['weights.bin'], weights: specs }] },
  }
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  await writeFile(join(tmp, 'weights.bin'), bytes)
  await writeFile(join(tmp, 'classifier.json'), JSON.stringify(json, null, 2) + '\n')
  // Keep files that are not ours (e.g. REPORT.md) across a re-save.
  const old = `${tmp}.old`
  await rm(old, { recursive: true, force: true })
  await rename(dir, old).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
  })
  await copyOthers(old, tmp)
  await rename(tmp, dir)
  await rm(old, { recursive: true, force: true })
  return json
}

/** Copies the files of `from` other than classifier.json and weights.bin (missing `from`: nothing). */
async function copyOthers(from: string, to: string): Promise<void> {
  const entries = await readdir(from, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    if (e.isFile() && e.name !== 'classifier.json' && e.name !== 'weights.bin') await copyFile(join(from, e.name), join(to, e.name))
  }
}

export interface LoadedClassifier {
  classifier: AttributeClassifier
  json: ClassifierJson
}

function checkJson(raw: unknown): ClassifierJson {
  const json = raw as Partial<ClassifierJson> | null
  if (!json || typeof json !== 'object' || json.format !== CLASSIFIER_FORMAT) {
    throw new ClassifierError('classifier_corrupt', `not an attribute classifier (expected format '${CLASSIFIER_FORMAT}')`)
  }
  if (json.formatVersion !== CLASSIFIER_FORMAT_VERSION) {
    throw new ClassifierError(
      'classifier_version',
      `classifier format version ${String(json.formatVersion)} is not supported (this build reads version ${CLASSIFIER_FORMAT_VERSION})`,
    )
  }
  if (!json.weights || typeof json.weights.file !== 'string' || basename(json.weights.file) !== json.weights.file) {
    throw new ClassifierError('classifier_corrupt', 'classifier.json has no valid weights entry')
  }
  const schema = json.attributeSchema
  if (
    !Array.isArray(schema) ||
    !schema.every((t) => t && typeof t.name === 'string' && Array.isArray(t.classes) && t.classes.every((c) => typeof c === 'string'))
  ) {
    throw new ClassifierError('classifier_corrupt', 'classifier.json has no valid attributeSchema')
  }
  return json as ClassifierJson
}

/** Loads a classifier saved by saveClassifier. Every parameter must be present with its shape. */
export async function loadClassifier(dir: string): Promise<LoadedClassifier> {
  let text: string
  try {
    text = await readFile(join(dir, 'classifier.json'), 'utf8')
  } catch {
    throw new ClassifierError('classifier_missing', `no attribute classifier at ${dir} (classifier.json not found)`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new ClassifierError('classifier_corrupt', `${join(dir, 'classifier.json')} is not valid JSON`)
  }
  const json = checkJson(raw)
  let config: ClassifierConfig
  try {
    config = parseClassifierConfig(json.config)
  } catch (err) {
    throw new ClassifierError('classifier_config', (err as Error).message)
  }
  let bytes: Uint8Array
  try {
    bytes = new Uint8Array(await readFile(join(dir, json.weights.file)))
  } catch {
    throw new ClassifierError('classifier_corrupt', `classifier file ${join(dir, json.weights.file)} is missing`)
  }
  if (bytes.byteLength !== json.weights.bytes) {
    throw new ClassifierError('classifier_corrupt', `${json.weights.file} has ${bytes.byteLength} bytes, classifier.json says ${json.weights.bytes}`)
  }
  if (sha256(bytes) !== json.weights.sha256) {
    throw new ClassifierError('classifier_corrupt', `${json.weights.file} does not match its SHA-256 (corrupted or replaced)`)
  }
  const specs = json.weights.manifest.flatMap((g) => g.weights)
  const tensors = tf.io.decodeWeights(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, specs)
  let classifier: AttributeClassifier | undefined
  try {
    try {
      classifier = createClassifier(config, json.attributeSchema, json.seed)
    } catch (err) {
      throw new ClassifierError('classifier_config', (err as Error).message)
    }
    const expected = classifier.params.names()
    const missing = expected.filter((n) => !(n in tensors))
    const extra = Object.keys(tensors).filter((n) => !classifier!.params.has(n))
    const wrong = expected.filter((n) => n in tensors && !tf.util.arraysEqual(tensors[n]!.shape, classifier!.params.byName(n)!.shape))
    if (missing.length || extra.length || wrong.length) {
      const list = (label: string, l: string[]) => (l.length ? `${label}: ${l.slice(0, 5).join(', ')}${l.length > 5 ? ` (+${l.length - 5})` : ''}` : '')
      throw new ClassifierError(
        'classifier_mismatch',
        `weights do not match the classifier config: ${[list('missing', missing), list('unexpected', extra), list('wrong shape', wrong)].filter(Boolean).join('; ')}`,
      )
    }
    for (const name of expected) classifier.params.assign(name, tensors[name]!)
    classifier.params.frozen = true
    return { classifier, json }
  } catch (err) {
    if (classifier) disposeClassifier(classifier)
    throw err
  } finally {
    tf.dispose(tensors)
  }
}
