/**
 * Checkpoints on disk: a directory with checkpoint.json, weights.bin and
 * (training checkpoints) optimizer.bin. Writes are atomic: the files go to a
 * temporary sibling directory that then replaces the target.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import {
  CheckpointError,
  deserializeCheckpoint,
  serializeCheckpoint,
  type LoadedCheckpoint,
} from './checkpoint.js'
import type { IAN } from './networks.js'
import type { Trainer } from './train.js'

export const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

export async function saveCheckpoint(
  dir: string,
  model: IAN,
  opts: { trainer?: Trainer; step?: number; metadata?: Record<string, unknown> } = {},
): Promise<void> {
  const { json, blobs } = await serializeCheckpoint(model, { ...opts, digest: sha256 })
  const tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`)
  await rm(tmp, { recursive: true, force: true })
  await mkdir(tmp, { recursive: true })
  for (const [file, bytes] of Object.entries(blobs)) await writeFile(join(tmp, file), bytes)
  await writeFile(join(tmp, 'checkpoint.json'), JSON.stringify(json, null, 2) + '\n')
  const old = `${tmp}.old`
  await rm(old, { recursive: true, force: true })
  await rename(dir, old).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
  })
  await rename(tmp, dir)
  await rm(old, { recursive: true, force: true })
}

export async function loadCheckpoint(dir: string, opts: { withTrainer?: boolean } = {}): Promise<LoadedCheckpoint> {
  let text: string
  try {
    text = await readFile(join(dir, 'checkpoint.json'), 'utf8')
  } catch {
    throw new CheckpointError('checkpoint_missing', `no checkpoint at ${dir} (checkpoint.json not found)`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new CheckpointError('checkpoint_corrupt', `${join(dir, 'checkpoint.json')} is not valid JSON`)
  }
  const json = raw as { weights?: { file?: unknown }; optimizer?: { file?: unknown } }
  const files = [json.weights?.file, opts.withTrainer ? json.optimizer?.file : undefined].filter(
    (f): f is string => typeof f === 'string' && basename(f) === f,
  )
  const blobs: Record<string, Uint8Array> = {}
  for (const file of files) {
    try {
      blobs[file] = new Uint8Array(await readFile(join(dir, file)))
    } catch {
      throw new CheckpointError('checkpoint_corrupt', `checkpoint file ${join(dir, file)} is missing`)
    }
  }
  return deserializeCheckpoint(raw, blobs, { digest: sha256, withTrainer: opts.withTrainer })
}
