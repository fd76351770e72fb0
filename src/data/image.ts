/**
 * The project's image codec (sharp): probe, decode with limits, crop/resize, PNG encode,
 * and the pixel <-> model value mapping.
 *
 * Conventions used across the project:
 *  - An RGB image is a `Uint8Array` of `width * height * 3` bytes, row-major, interleaved
 *    R, G, B, 8 bits per channel, sRGB.
 *  - Model inputs are `Float32Array`s in [-1, 1] (v / 127.5 - 1), same NHWC order.
 *
 * Untrusted input (uploads) goes through `probeImage` / `decodeImage`, which only accept PNG,
 * JPEG and WebP, check the byte and pixel limits from the header before any pixel is decoded,
 * and map every failure to an `ImageError` with a stable `code`.
 */
import sharp, { type Metadata, type Sharp } from 'sharp'

export type ImageErrorCode = 'image_unreadable' | 'image_unsupported_type' | 'image_too_many_pixels' | 'image_too_large'

/** An image could not be accepted. `code` is stable and is what callers (the API) map on. */
export class ImageError extends Error {
  readonly code: ImageErrorCode
  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ImageError'
    this.code = code
  }
}

export function isImageError(err: unknown): err is ImageError {
  return err instanceof ImageError
}

export const SUPPORTED_FORMATS = ['png', 'jpeg', 'webp'] as const
export type SupportedFormat = (typeof SUPPORTED_FORMATS)[number]

/** Default pixel limit for decoding (about 64 Mpx: 192 MiB of RGB). */
export const DEFAULT_MAX_PIXELS = 64 * 1024 * 1024

/**
 * libvips aborts on truncated files and on decoder errors, but tolerates benign warnings
 * (many camera JPEGs carry some). Truncated PNG/JPEG/WebP -> 'image_unreadable'.
 */
const FAIL_ON = 'error' as const

export interface ImageInfo {
  format: SupportedFormat
  /** Size after applying the EXIF orientation (what decodeImage returns). */
  width: number
  height: number
  /** Size as stored in the file (before EXIF orientation). */
  storedWidth: number
  storedHeight: number
  /** EXIF orientation 1..8 (1 when absent). */
  orientation: number
  channels: number
  hasAlpha: boolean
  /** libvips pixel depth name, e.g. 'uchar' (8-bit) or 'ushort' (16-bit). */
  depth: string
  /** libvips colour space name, e.g. 'srgb', 'b-w', 'cmyk', 'rgb16'. */
  space: string
  /** Number of frames (animated WebP); decodeImage uses the first. */
  pages: number
  bytes: number
}

export interface RgbImage {
  /** RGB, 3 bytes per pixel, row-major. */
  data: Uint8Array
  width: number
  height: number
}

export interface Box {
  x: number
  y: number
  w: number
  h: number
}

export interface DecodeOptions {
  /** Reject images with more than this many pixels (checked from the header). Default DEFAULT_MAX_PIXELS. */
  maxPixels?: number
  /** Reject inputs larger than this many bytes. Default: no limit. */
  maxBytes?: number
}

function toInput(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
}

function asUint8(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Map a sharp / libvips error to an ImageError. */
function mapSharpError(err: unknown): ImageError {
  if (err instanceof ImageError) return err
  const msg = messageOf(err)
  if (/unsupported image format/i.test(msg)) {
    return new ImageError('image_unsupported_type', 'not a PNG, JPEG or WebP image', { cause: err })
  }
  if (/pixel limit/i.test(msg)) {
    return new ImageError('image_too_many_pixels', 'image has too many pixels', { cause: err })
  }
  return new ImageError('image_unreadable', `image could not be decoded: ${msg}`, { cause: err })
}

function checkBytes(buf: Uint8Array, maxBytes: number | undefined): void {
  if (maxBytes !== undefined && buf.byteLength > maxBytes) {
    throw new ImageError('image_too_large', `image is ${buf.byteLength} bytes, the limit is ${maxBytes}`)
  }
  if (buf.byteLength === 0) throw new ImageError('image_unreadable', 'empty input')
}

/**
 * Read format, size and pixel layout from the header, without decoding pixels.
 * Throws ImageError: 'image_unsupported_type' for anything but PNG/JPEG/WebP (GIF, SVG,
 * TIFF, HEIF, random bytes...), 'image_unreadable' for a corrupt header,
 * 'image_too_large' when `maxBytes` is given and exceeded.
 */
export async function probeImage(buf: Uint8Array, opts: { maxBytes?: number } = {}): Promise<ImageInfo> {
  checkBytes(buf, opts.maxBytes)
  let meta: Metadata
  try {
    // limitInputPixels: false so that huge images can be probed (and rejected by the caller
    // with a precise message); metadata() reads the header only.
    meta = await sharp(toInput(buf), { limitInputPixels: false, failOn: FAIL_ON }).metadata()
  } catch (err) {
    throw mapSharpError(err)
  }
  const format = meta.format as string
  if (!(SUPPORTED_FORMATS as readonly string[]).includes(format)) {
    throw new ImageError('image_unsupported_type', `unsupported image type '${format}': use PNG, JPEG or WebP`)
  }
  const storedWidth = meta.width
  const storedHeight = meta.height
  if (!(storedWidth > 0 && storedHeight > 0)) {
    throw new ImageError('image_unreadable', 'image header has no valid size')
  }
  const orientation = meta.orientation ?? 1
  const swapped = orientation >= 5 && orientation <= 8
  return {
    format: format as SupportedFormat,
    width: meta.autoOrient?.width ?? (swapped ? storedHeight : storedWidth),
    height: meta.autoOrient?.height ?? (swapped ? storedWidth : storedHeight),
    storedWidth,
    storedHeight,
    orientation,
    channels: meta.channels ?? 3,
    hasAlpha: meta.hasAlpha ?? false,
    depth: String(meta.depth ?? 'uchar'),
    space: String(meta.space ?? 'srgb'),
    pages: meta.pages ?? 1,
    bytes: buf.byteLength,
  }
}

/** Throw 'image_too_many_pixels' if the probed image exceeds the limit. */
function checkPixels(info: ImageInfo, maxPixels: number): void {
  const pixels = info.storedWidth * info.storedHeight
  if (pixels > maxPixels) {
    throw new ImageError(
      'image_too_many_pixels',
      `image is ${info.width}x${info.height} (${pixels} pixels), the limit is ${maxPixels}`,
    )
  }
}

/**
 * Decode an untrusted PNG/JPEG/WebP into 8-bit sRGB RGB: applies the EXIF orientation,
 * flattens alpha onto white, converts greyscale / 16-bit / CMYK / ICC-tagged input to
 * 8-bit sRGB. The byte and pixel limits are checked from the header before decoding.
 */
export async function decodeImage(buf: Uint8Array, opts: DecodeOptions = {}): Promise<RgbImage & { info: ImageInfo }> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS
  const info = await probeImage(buf, { maxBytes: opts.maxBytes })
  checkPixels(info, maxPixels)
  try {
    const { data, info: out } = await sharp(toInput(buf), {
      failOn: FAIL_ON,
      limitInputPixels: Math.max(1, Math.floor(maxPixels)),
      autoOrient: true,
      pages: 1,
    })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true })
    if (out.channels !== 3 || data.byteLength !== out.width * out.height * 3) {
      throw new ImageError('image_unreadable', `unexpected decoded layout: ${out.channels} channels`)
    }
    return { data: asUint8(data), width: out.width, height: out.height, info }
  } catch (err) {
    throw mapSharpError(err)
  }
}

function checkRgb(rgb: Uint8Array, width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`invalid image size ${width}x${height}`)
  }
  if (rgb.byteLength !== width * height * 3) {
    throw new RangeError(`RGB buffer has ${rgb.byteLength} bytes, expected ${width * height * 3} for ${width}x${height}`)
  }
}

function rawInput(rgb: Uint8Array, width: number, height: number): Sharp {
  checkRgb(rgb, width, height)
  return sharp(toInput(rgb), { raw: { width, height, channels: 3 } })
}

/** Encode RGB as PNG (lossless; deterministic for the same sharp/libvips build). */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return rawInput(rgb, width, height).png({ compressionLevel: 6, adaptiveFiltering: false }).toBuffer()
}

/** The largest centred square inside a width x height image. */
export function centerSquare(width: number, height: number): Box {
  const s = Math.min(width, height)
  return { x: Math.floor((width - s) / 2), y: Math.floor((height - s) / 2), w: s, h: s }
}

/** Validate a crop box against an image: integer, non-empty, fully inside. */
export function checkBox(box: Box, width: number, height: number): void {
  const { x, y, w, h } = box
  if (![x, y, w, h].every(Number.isInteger) || w <= 0 || h <= 0 || x < 0 || y < 0 || x + w > width || y + h > height) {
    throw new RangeError(`crop box ${JSON.stringify(box)} is not inside the ${width}x${height} image`)
  }
}

/**
 * Crop `box` out of an RGB image and resize it to size x size (Lanczos-3; upsamples small
 * crops). A non-square box is stretched; use a square box to keep the aspect ratio.
 */
export async function cropResize(rgb: Uint8Array, width: number, height: number, box: Box, size: number): Promise<Uint8Array> {
  checkBox(box, width, height)
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`invalid output size ${size}`)
  let img = rawInput(rgb, width, height)
  if (box.x !== 0 || box.y !== 0 || box.w !== width || box.h !== height) {
    img = img.extract({ left: box.x, top: box.y, width: box.w, height: box.h })
  }
  if (box.w !== size || box.h !== size) {
    img = img.resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
  }
  const out = await img.raw().toBuffer()
  return asUint8(out)
}

export interface DecodeCropResizeOptions extends DecodeOptions {
  /**
   * Crop box in the oriented image, or a function of the oriented size giving it
   * (default: centerSquare).
   */
  box?: Box | ((width: number, height: number) => Box)
}

/**
 * Decode an encoded image and crop + resize it to size x size RGB in one sharp pipeline
 * (no full-size RGB copy in JS): the same checks and conversions as decodeImage, then
 * `box` (oriented coordinates) is extracted and resized with Lanczos-3 (small images are
 * upsampled). Returns the RGB and the probed header info.
 */
export async function decodeCropResize(
  buf: Uint8Array,
  size: number,
  opts: DecodeCropResizeOptions = {},
): Promise<{ data: Uint8Array; info: ImageInfo; box: Box }> {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`invalid output size ${size}`)
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS
  const info = await probeImage(buf, { maxBytes: opts.maxBytes })
  checkPixels(info, maxPixels)
  const box =
    typeof opts.box === 'function' ? opts.box(info.width, info.height) : (opts.box ?? centerSquare(info.width, info.height))
  checkBox(box, info.width, info.height)
  try {
    let img = sharp(toInput(buf), {
      failOn: FAIL_ON,
      limitInputPixels: Math.max(1, Math.floor(maxPixels)),
      autoOrient: true,
      pages: 1,
    })
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
    if (box.x !== 0 || box.y !== 0 || box.w !== info.width || box.h !== info.height) {
      img = img.extract({ left: box.x, top: box.y, width: box.w, height: box.h })
    }
    const { data, info: out } = await img
      .resize(size, size, { fit: 'fill', kernel: 'lanczos3' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true })
    if (out.channels !== 3 || out.width !== size || out.height !== size) {
      throw new ImageError('image_unreadable', `unexpected decoded layout ${out.width}x${out.height}x${out.channels}`)
    }
    return { data: asUint8(data), info, box }
  } catch (err) {
    throw mapSharpError(err)
  }
}

export { floatToRgb, rgbToFloat } from './pixels.js'
