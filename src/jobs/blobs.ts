/**
 * Short-lived binary blobs (uploads on their way to a worker, interpolation
 * frames on their way back): memory and Redis adapters of one small port.
 */
import type { Redis } from 'ioredis'

export interface BlobStore {
  put(key: string, value: Uint8Array, ttlMs: number): Promise<void>
  get(key: string): Promise<Uint8Array | undefined>
  delete(key: string): Promise<void>
  close(): Promise<void>
}

export function createMemoryBlobStore(now: () => number = Date.now): BlobStore {
  const blobs = new Map<string, { value: Uint8Array; expires: number }>()
  return {
    async put(key, value, ttlMs) {
      for (const [k, b] of blobs) if (b.expires <= now()) blobs.delete(k)
      blobs.set(key, { value: value.slice(), expires: now() + ttlMs })
    },
    async get(key) {
      const b = blobs.get(key)
      return b && b.expires > now() ? b.value.slice() : undefined
    },
    async delete(key) {
      blobs.delete(key)
    },
    async close() {
      blobs.clear()
    },
  }
}

export function createRedisBlobStore(redis: Redis, prefix: string): BlobStore {
  const k = (key: string) => `${prefix}:blob:${key}`
  return {
    async put(key, value, ttlMs) {
      await redis.set(k(key), Buffer.from(value.buffer, value.byteOffset, value.byteLength), 'PX', ttlMs)
    },
    async get(key) {
      const v = await redis.getBuffer(k(key))
      return v ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : undefined
    },
    async delete(key) {
      await redis.del(k(key))
    },
    async close() {},
  }
}

/** Packs an RGB image with its size: [u32 width][u32 height][rgb...]. */
export function packImage(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(8 + rgb.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, width, true)
  view.setUint32(4, height, true)
  out.set(rgb, 8)
  return out
}

export function unpackImage(buf: Uint8Array): { rgb: Uint8Array; width: number; height: number } {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const width = view.getUint32(0, true)
  const height = view.getUint32(4, true)
  if (buf.length !== 8 + width * height * 3) throw new Error('packed image has the wrong length')
  return { rgb: buf.subarray(8), width, height }
}
