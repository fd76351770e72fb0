/** Builds the service on a tiny model for route tests (embedded mode unless REDIS_URL is given). */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { loadConfig } from '../../src/config.js'
import { presetConfig } from '../../src/model/config.js'
import { saveCheckpoint } from '../../src/model/checkpoint-dir.js'
import { createIAN, disposeIAN } from '../../src/model/networks.js'
import { createService, type Service } from '../../src/runtime.js'

/** A tiny-16 checkpoint (init std 0.15 so paint steps visibly move the image). */
export async function tinyModelDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'npe-model-'))
  const model = createIAN(presetConfig('tiny-16', { initStd: 0.15 }), 3)
  await saveCheckpoint(dir, model)
  disposeIAN(model)
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}

export async function buildService(env: Record<string, string> = {}): Promise<Service & { modelDir: string }> {
  const model = await tinyModelDir()
  const config = loadConfig({ MODEL_DIR: model.dir, TFJS_BACKEND: 'wasm', LOG_LEVEL: 'silent', BATCH_WAIT_MS: '2', ...env })
  const service = await createService(config, false)
  return {
    ...service,
    modelDir: model.dir,
    async close() {
      await service.close()
      await model.cleanup()
    },
  }
}

/** A PNG photo of w x h with a smooth gradient. */
export async function photoPng(w: number, h: number, opts: { format?: 'png' | 'jpeg' | 'webp' } = {}): Promise<Buffer> {
  const raw = Buffer.alloc(w * h * 3)
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) raw.set([(x * 255) / w, (y * 255) / h, 128], (y * w + x) * 3)
  const img = sharp(raw, { raw: { width: w, height: h, channels: 3 } })
  return (opts.format === 'jpeg' ? img.jpeg() : opts.format === 'webp' ? img.webp() : img.png()).toBuffer()
}

/** A multipart body with an `image` file and optional fields. */
export function multipart(parts: { name: string; filename?: string; contentType?: string; data: Buffer | string }[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----npe${Math.random().toString(16).slice(2)}`
  const chunks: Buffer[] = []
  for (const p of parts) {
    const disp = `form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}`
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n${p.contentType ? `Content-Type: ${p.contentType}\r\n` : ''}\r\n`))
    chunks.push(typeof p.data === 'string' ? Buffer.from(p.data) : p.data, Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return { payload: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }
}

export async function decodeDataUrl(url: string): Promise<{ data: Buffer; width: number; height: number }> {
  const png = Buffer.from(url.replace(/^data:image\/png;base64,/, ''), 'base64')
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height }
}

export async function cleanupDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}
