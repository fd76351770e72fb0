/**
 * Image-folder datasets (e.g. CelebA): list the images of a directory and load each one as a
 * square RGB crop at model resolution, through the project's codec (image.ts).
 *
 * CelebA: the aligned set `img_align_celeba/` (202,599 JPEGs of 178 x 218, faces aligned by
 * the eyes) is used unchanged, no preprocessing step:
 *  - default: the centred square, 178 x 178 at y = 20, resized to `size` (Lanczos-3). The
 *    whole head with some background and hair, like the IAN's 64 x 64 CelebA.
 *  - a tighter face crop, the common DCGAN convention: `{ cropSize: 108 }` (108 x 108 centred,
 *    i.e. x = 35, y = 55), or move the square with `cropTop` (e.g. `{ cropTop: 40 }` puts the
 *    178-pixel square at y = 40, more chin, less hair).
 * Labels (list_attr_celeba.txt) are not read here.
 */
import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { DEFAULT_MAX_PIXELS, ImageError, decodeCropResize, type Box } from './image.js'

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.webp']

export function isImageFile(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase())
}

/**
 * Paths (dir joined with the name) of the PNG/JPEG/WebP files directly in `dir` (by extension,
 * case-insensitive; hidden files skipped), sorted by name (code-unit order, so zero-padded
 * names like CelebA's 000001.jpg come out in numeric order). With `recursive`, files in
 * sub-directories too, as relative paths sorted as a whole.
 */
export async function listImages(dir: string, opts: { recursive?: boolean } = {}): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: opts.recursive ?? false })
  const names: string[] = []
  for (const e of entries) {
    if (!e.isFile() || e.name.startsWith('.') || !isImageFile(e.name)) continue
    // Node 20: Dirent.parentPath (path in older 20.x) is the directory the entry was found in.
    const parent = (e as { parentPath?: string; path?: string }).parentPath ?? (e as { path?: string }).path ?? dir
    names.push(join(parent, e.name))
  }
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

export interface FolderImageOptions {
  /** Side of the square crop in source pixels (default: the shorter side). */
  cropSize?: number
  /** Top edge of the square in source pixels (default: centred vertically). Clamped to fit. */
  cropTop?: number
  /** Pixel limit checked from the header before decoding (default DEFAULT_MAX_PIXELS, ~64 Mpx). */
  maxPixels?: number
}

/** The square crop box for an image of width x height (after EXIF orientation). */
export function folderCropBox(width: number, height: number, opts: FolderImageOptions = {}): Box {
  const side = Math.max(1, Math.min(width, height, Math.floor(opts.cropSize ?? Math.min(width, height))))
  const x = Math.floor((width - side) / 2)
  const centredY = Math.floor((height - side) / 2)
  const y = Math.min(height - side, Math.max(0, Math.floor(opts.cropTop ?? centredY)))
  return { x, y, w: side, h: side }
}

/**
 * Load one image file as size x size RGB (Uint8Array, row-major): EXIF orientation applied,
 * alpha flattened onto white, greyscale / 16-bit / CMYK converted to 8-bit sRGB, the square
 * crop (folderCropBox) resized with Lanczos-3 (images smaller than `size` are upsampled).
 * The header is probed first, so huge images are rejected (ImageError
 * 'image_too_many_pixels') before any decoding; other failures are ImageErrors too
 * ('image_unreadable', 'image_unsupported_type'), with the path in the message.
 */
export async function loadFolderImage(path: string, size: number, opts: FolderImageOptions = {}): Promise<Uint8Array> {
  const buf = await readFile(path)
  try {
    const { data } = await decodeCropResize(buf, size, {
      maxPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
      box: (width, height) => folderCropBox(width, height, opts),
    })
    return data
  } catch (err) {
    if (err instanceof ImageError) throw new ImageError(err.code, `${path}: ${err.message}`, { cause: err })
    throw err
  }
}

