/**
 * Checkpoint (de)serialisation, independent of where the bytes live.
 *
 * A checkpoint is a small JSON document plus binary blobs:
 *   checkpoint.json  format, formatVersion, model config, seed, step, metadata,
 *                    a tfjs weights manifest for weights.bin, and (optionally)
 *                    the optimiser state with a manifest for optimizer.bin
 *   weights.bin      every parameter and batch-norm statistic (float32)
 *   optimizer.bin    Adam's m and v slots (training checkpoints only)
 * Each blob's byte length and SHA-256 are recorded; a mismatch, an unknown
 * format version, or weights that do not fit the config are CheckpointErrors.
 */
import * as tf from '@tensorflow/tfjs'
import { parseModelConfig, type ModelConfig } from './config.js'
import { createIAN, disposeIAN, type IAN } from './networks.js'
import { Adam, createTrainer, type Trainer } from './train.js'

export const CHECKPOINT_FORMAT = 'npe-ian-checkpoint'
export const CHECKPOINT_FORMAT_VERSION = 1

export type CheckpointErrorCode = 'checkpoint_missing' | 'checkpoint_version' | 'checkpoint_config' | 'checkpoint_corrupt' | 'checkpoint_mismatch'

export class CheckpointError extends Error {
  override name = 'CheckpointError'
  constructor(
    readonly code: CheckpointErrorCode,
    message: string,
  ) {
    super(message)
  }
}

export interface BlobInfo {
  file: string
  bytes: number
  sha256: string
  /** tfjs weights manifest (one group, one path). */
  manifest: tf.io.WeightsManifestConfig
}

export interface CheckpointJson {
  format: typeof CHECKPOINT_FORMAT
  formatVersion: number
  config: ModelConfig
  /** Seed the parameters were initialised with. */
  seed: number
  /** Completed training steps. */
  step: number
  createdAt: string
  /** Free-form: dataset, wall time, backend, metrics... */
  metadata: Record<string, unknown>
  weights: BlobInfo
  optimizer?: BlobInfo & {
    trainerSeed: number
    state: Record<string, { iterations: number; learningRate: number }>
  }
}

export type Digest = (bytes: Uint8Array) => string

export interface SerializedCheckpoint {
  json: CheckpointJson
  blobs: Record<string, Uint8Array>
}

async function encodeBlob(file: string, named: [string, tf.Tensor][], digest: Digest): Promise<{ info: BlobInfo; bytes: Uint8Array }> {
  const map: tf.NamedTensorMap = Object.fromEntries(named)
  const { data, specs } = await tf.io.encodeWeights(map)
  const bytes = new Uint8Array(data)
  return { info: { file, bytes: bytes.byteLength, sha256: digest(bytes), manifest: [{ paths: [file], weights: specs }] }, bytes }
}

/** Serialises a model (and, for resumable training checkpoints, its trainer). */
export async function serializeCheckpoint(
  model: IAN,
  opts: { trainer?: Trainer; step?: number; metadata?: Record<string, unknown>; digest: Digest; now?: Date },
): Promise<SerializedCheckpoint> {
  const weights = await encodeBlob('weights.bin', model.params.entries(), opts.digest)
  const json: CheckpointJson = {
    format: CHECKPOINT_FORMAT,
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    config: model.config,
    seed: model.params.seed,
    step: opts.trainer?.step ?? opts.step ?? 0,
    createdAt: (opts.now ?? new Date()).toISOString(),
    metadata: opts.metadata ?? {},
    weights: weights.info,
  }
  const blobs: Record<string, Uint8Array> = { 'weights.bin': weights.bytes }
  if (opts.trainer) {
    const { optGE, optD } = opts.trainer
    const optimizer = await encodeBlob('optimizer.bin', [...optGE.namedSlots(), ...optD.namedSlots()], opts.digest)
    json.optimizer = {
      ...optimizer.info,
      trainerSeed: opts.trainer.seed,
      state: Object.fromEntries([optGE, optD].map((o) => [o.name, { iterations: o.iterations, learningRate: o.learningRate }])),
    }
    blobs['optimizer.bin'] = optimizer.bytes
  }
  return { json, blobs }
}

function decodeBlob(info: BlobInfo, blobs: Record<string, Uint8Array>, digest: Digest): tf.NamedTensorMap {
  const bytes = blobs[info.file]
  if (!bytes) throw new CheckpointError('checkpoint_corrupt', `checkpoint file ${info.file} is missing`)
  if (bytes.byteLength !== info.bytes) {
    throw new CheckpointError('checkpoint_corrupt', `${info.file} has ${bytes.byteLength} bytes, the manifest says ${info.bytes}`)
  }
  if (digest(bytes) !== info.sha256) {
    throw new CheckpointError('checkpoint_corrupt', `${info.file} does not match its SHA-256 (corrupted or replaced)`)
  }
  const specs = info.manifest.flatMap((g) => g.weights)
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer
  return tf.io.decodeWeights(copy, specs)
}

function checkJson(raw: unknown): CheckpointJson {
  const json = raw as Partial<CheckpointJson> | null
  if (!json || typeof json !== 'object' || json.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError('checkpoint_corrupt', `not an IAN checkpoint (expected format '${CHECKPOINT_FORMAT}')`)
  }
  if (json.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      'checkpoint_version',
      `checkpoint format version ${String(json.formatVersion)} is not supported (this build reads version ${CHECKPOINT_FORMAT_VERSION})`,
    )
  }
  if (!json.weights || typeof json.weights.file !== 'string') throw new CheckpointError('checkpoint_corrupt', 'checkpoint has no weights entry')
  return json as CheckpointJson
}

export interface LoadedCheckpoint {
  model: IAN
  /** Present when the checkpoint has optimiser state and `withTrainer` was asked for. */
  trainer?: Trainer
  json: CheckpointJson
}

/**
 * Rebuilds a model from a checkpoint. The config is validated, a fresh model
 * is built from it, and every parameter must be present in the file with the
 * shape the config implies (and nothing else): otherwise 'checkpoint_mismatch'.
 */
export function deserializeCheckpoint(
  raw: unknown,
  blobs: Record<string, Uint8Array>,
  opts: { digest: Digest; withTrainer?: boolean },
): LoadedCheckpoint {
  const json = checkJson(raw)
  let config: ModelConfig
  try {
    config = parseModelConfig(json.config)
  } catch (err) {
    throw new CheckpointError('checkpoint_config', (err as Error).message)
  }
  const tensors = decodeBlob(json.weights, blobs, opts.digest)
  const model = createIAN(config, json.seed)
  try {
    const expected = model.params.names()
    const missing = expected.filter((n) => !(n in tensors))
    const extra = Object.keys(tensors).filter((n) => !model.params.has(n))
    const wrong = expected.filter((n) => n in tensors && !tf.util.arraysEqual(tensors[n]!.shape, model.params.byName(n)!.shape))
    if (missing.length || extra.length || wrong.length) {
      const describe = (label: string, list: string[]) => (list.length ? `${label}: ${list.slice(0, 5).join(', ')}${list.length > 5 ? ` (+${list.length - 5})` : ''}` : '')
      throw new CheckpointError(
        'checkpoint_mismatch',
        `weights do not match the model config: ${[
          describe('missing', missing),
          describe('unexpected', extra),
          describe('wrong shape', wrong.map((n) => `${n} [${tensors[n]!.shape}] vs [${model.params.byName(n)!.shape}]`)),
        ]
          .filter(Boolean)
          .join('; ')}`,
      )
    }
    for (const name of expected) model.params.assign(name, tensors[name]!)
    model.params.frozen = true
    let trainer: Trainer | undefined
    if (opts.withTrainer && json.optimizer) {
      const slots = decodeBlob(json.optimizer, blobs, opts.digest)
      try {
        trainer = restoreTrainer(model, json, slots)
      } finally {
        tf.dispose(slots)
      }
    }
    return { model, trainer, json }
  } catch (err) {
    disposeIAN(model)
    throw err
  } finally {
    tf.dispose(tensors)
  }
}

function restoreTrainer(model: IAN, json: CheckpointJson, slots: tf.NamedTensorMap): Trainer {
  const opt = json.optimizer!
  const trainer = createTrainer(model, opt.trainerSeed)
  trainer.step = json.step
  try {
    for (const adam of [trainer.optGE, trainer.optD] as Adam[]) {
      const state = opt.state[adam.name]
      if (!state) throw new CheckpointError('checkpoint_corrupt', `optimizer state for ${adam.name} is missing`)
      adam.iterations = state.iterations
      adam.learningRate = state.learningRate
      const prefix = `${adam.name}/`
      for (const key of Object.keys(slots)) {
        if (!key.startsWith(prefix) || !key.endsWith('/m')) continue
        const param = key.slice(prefix.length, -2)
        const variable = model.params.byName(param)
        const m = slots[key]!
        const v = slots[`${prefix}${param}/v`]
        if (!variable || !v || !tf.util.arraysEqual(variable.shape, m.shape)) {
          throw new CheckpointError('checkpoint_mismatch', `optimizer slot ${key} does not match a parameter of the model`)
        }
        adam.restoreSlot(param, m, v)
      }
    }
  } catch (err) {
    trainer.optGE.dispose()
    trainer.optD.dispose()
    throw err
  }
  return trainer
}
