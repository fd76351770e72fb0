import t from 'tap'
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import {
  ImageError,
  centerSquare,
  cropResize,
  decodeCropResize,
  decodeImage,
  encodePng,
  floatToRgb,
  probeImage,
  rgbToFloat,
} from '../../src/data/image.js'
import { folderCropBox, listImages, loadFolderImage } from '../../src/data/folder.js'

/** Deterministic noise RGB (compresses badly, so truncation always cuts pixel data). */
function noise(width: number, height: number, channels = 3): Buffer {
  const b = Buffer.alloc(width * height * channels)
  let s = 12345
  for (let i = 0; i < b.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    b[i] = s >>> 24
  }
  return b
}

const px = (rgb: Uint8Array, width: number, x: number, y: number): number[] => {
  const o = (y * width + x) * 3
  return [rgb[o]!, rgb[o + 1]!, rgb[o + 2]!]
}

/** The ImageError code a promise rejects with ('resolved' / 'not an ImageError: ...' otherwise). */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (err) {
    return err instanceof ImageError ? err.code : `not an ImageError: ${String(err)}`
  }
}

const dir = await mkdtemp(join(tmpdir(), 'npe-data-image-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))

t.test('rgbToFloat / floatToRgb', async (t) => {
  const f = rgbToFloat(Uint8Array.from([0, 127, 128, 255]))
  t.equal(f[0], -1)
  t.equal(f[3], 1)
  t.ok(Math.abs(f[1]! - (127 / 127.5 - 1)) < 1e-7, '127 -> -0.0039')
  t.ok(Math.abs(f[2]! - (128 / 127.5 - 1)) < 1e-7, '128 -> +0.0039')
  t.same(Array.from(floatToRgb([-1, 0, 1, 2, -3, NaN, -0.999, 0.999])), [0, 128, 255, 255, 0, 0, 0, 255])
  const all = Uint8Array.from({ length: 256 }, (_, i) => i)
  t.same(floatToRgb(rgbToFloat(all)), all, 'round trip of every byte value')
})

t.test('centerSquare and cropResize', async (t) => {
  t.same(centerSquare(178, 218), { x: 0, y: 20, w: 178, h: 178 })
  t.same(centerSquare(300, 100), { x: 100, y: 0, w: 100, h: 100 })
  // 4x4 image, pixel value = index; a 2x2 crop at (2,1) with size 2 is an exact copy.
  const rgb = Uint8Array.from({ length: 4 * 4 * 3 }, (_, i) => i)
  const crop = await cropResize(rgb, 4, 4, { x: 2, y: 1, w: 2, h: 2 }, 2)
  t.same(px(crop, 2, 0, 0), px(rgb, 4, 2, 1))
  t.same(px(crop, 2, 1, 1), px(rgb, 4, 3, 2))
  const up = await cropResize(rgb, 4, 4, centerSquare(4, 4), 9)
  t.equal(up.length, 9 * 9 * 3, 'upsampling')
  await t.rejects(cropResize(rgb, 4, 4, { x: 3, y: 0, w: 2, h: 2 }, 2), RangeError, 'box outside the image')
  await t.rejects(cropResize(rgb.subarray(1), 4, 4, { x: 0, y: 0, w: 2, h: 2 }, 2), RangeError, 'wrong buffer length')
})

t.test('encodePng / decodeImage round trip is lossless', async (t) => {
  const rgb = noise(23, 17)
  const png = await encodePng(rgb, 23, 17)
  const info = await probeImage(png)
  t.match(info, { format: 'png', width: 23, height: 17, channels: 3, hasAlpha: false })
  const dec = await decodeImage(png)
  t.equal(dec.width, 23)
  t.equal(dec.height, 17)
  t.ok(Buffer.from(dec.data).equals(rgb), 'same pixels')
  t.ok(Buffer.from(await encodePng(rgb, 23, 17)).equals(png), 'deterministic bytes')
})

t.test('greyscale PNG -> RGB with equal channels', async (t) => {
  const g = noise(10, 6, 1)
  const png = await sharp(g, { raw: { width: 10, height: 6, channels: 1 } }).toColourspace('b-w').png().toBuffer()
  const info = await probeImage(png)
  t.equal(info.channels, 1)
  const dec = await decodeImage(png)
  t.equal(dec.data.length, 10 * 6 * 3)
  t.same(px(dec.data, 10, 3, 2), [g[2 * 10 + 3], g[2 * 10 + 3], g[2 * 10 + 3]])
})

t.test('RGBA with transparency is flattened onto white', async (t) => {
  // 4x1: opaque red, transparent, half-transparent red, opaque blue
  const rgba = Buffer.from([255, 0, 0, 255, 10, 20, 30, 0, 255, 0, 0, 128, 0, 0, 255, 255])
  const png = await sharp(rgba, { raw: { width: 4, height: 1, channels: 4 } }).png().toBuffer()
  t.equal((await probeImage(png)).hasAlpha, true)
  const dec = await decodeImage(png)
  t.same(px(dec.data, 4, 0, 0), [255, 0, 0])
  t.same(px(dec.data, 4, 1, 0), [255, 255, 255], 'transparent -> white')
  const half = px(dec.data, 4, 2, 0)
  t.equal(half[0], 255)
  t.ok(Math.abs(half[1]! - 127) <= 2 && Math.abs(half[2]! - 127) <= 2, `half alpha red over white ~ (255,127,127): ${half}`)
  t.same(px(dec.data, 4, 3, 0), [0, 0, 255])
  // and through the folder loader
  const f = join(dir, 'alpha.png')
  await writeFile(f, png)
  const small = await loadFolderImage(f, 1)
  t.equal(small.length, 3)
})

t.test('16-bit PNG -> 8-bit', async (t) => {
  const rgb = noise(8, 8)
  const png16 = await sharp(rgb, { raw: { width: 8, height: 8, channels: 3 } }).toColourspace('rgb16').png().toBuffer()
  const info = await probeImage(png16)
  t.equal(info.depth, 'ushort', '16-bit source')
  const dec = await decodeImage(png16)
  t.equal(dec.data.length, 8 * 8 * 3)
  let maxDiff = 0
  for (let i = 0; i < rgb.length; i++) maxDiff = Math.max(maxDiff, Math.abs(dec.data[i]! - rgb[i]!))
  t.ok(maxDiff <= 1, `8-bit values survive a 16-bit round trip (max diff ${maxDiff})`)
})

t.test('CMYK JPEG -> sRGB', async (t) => {
  const jpg = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#ff0000' } })
    .toColourspace('cmyk')
    .jpeg()
    .toBuffer()
  t.equal((await probeImage(jpg)).space, 'cmyk')
  const dec = await decodeImage(jpg)
  const [r, g, b] = px(dec.data, 16, 8, 8)
  t.ok(r! > 200 && g! < 80 && b! < 80, `still red: ${[r, g, b]}`)
})

t.test('tiny 3x5 image', async (t) => {
  const rgb = noise(3, 5)
  const png = await encodePng(rgb, 3, 5)
  const dec = await decodeImage(png)
  t.same([dec.width, dec.height], [3, 5])
  const f = join(dir, 'tiny.png')
  await writeFile(f, png)
  const up = await loadFolderImage(f, 16)
  t.equal(up.length, 16 * 16 * 3, 'upsampled to 16x16')
})

t.test('large 4000x3000 image: resized correctly, rejected by the pixel limit without decoding', async (t) => {
  // left half black, right half white
  const white = await sharp({ create: { width: 2000, height: 3000, channels: 3, background: '#ffffff' } }).png().toBuffer()
  const jpg = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#000000' } })
    .composite([{ input: white, left: 2000, top: 0 }])
    .jpeg({ quality: 90 })
    .toBuffer()
  const info = await probeImage(jpg)
  t.same([info.width, info.height, info.format], [4000, 3000, 'jpeg'])
  const f = join(dir, 'large.jpg')
  await writeFile(f, jpg)
  const rgb = await loadFolderImage(f, 64)
  t.equal(rgb.length, 64 * 64 * 3)
  // centre square is x 500..3500: the edge sits in the middle of the output
  t.ok(px(rgb, 64, 5, 32)[0]! < 10, 'left is black')
  t.ok(px(rgb, 64, 58, 32)[0]! > 245, 'right is white')
  t.ok(px(rgb, 64, 29, 10)[0]! < 30 && px(rgb, 64, 34, 10)[0]! > 225, 'edge at the centre')

  t.equal(await codeOf(decodeImage(jpg, { maxPixels: 1_000_000 })), 'image_too_many_pixels', 'decodeImage maxPixels')
  t.equal(await codeOf(loadFolderImage(f, 64, { maxPixels: 1_000_000 })), 'image_too_many_pixels', 'loadFolderImage maxPixels')
  // Proof that the check happens before decoding: a file with a valid 4000x3000 header but
  // no pixel data is reported as too many pixels, not as unreadable.
  const headerOnly = jpg.subarray(0, 2000)
  t.equal(await codeOf(decodeImage(headerOnly, { maxPixels: 1_000_000 })), 'image_too_many_pixels', 'header only, limit')
  t.equal(await codeOf(decodeImage(headerOnly)), 'image_unreadable', 'header only, no limit')
  t.equal(await codeOf(decodeImage(jpg, { maxBytes: 1000 })), 'image_too_large', 'maxBytes')
})

t.test('EXIF orientation 6: width and height swap, content rotated', async (t) => {
  // stored 40 wide x 20 high: left half red, right half blue
  const raw = Buffer.alloc(40 * 20 * 3)
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 40; x++) raw[(y * 40 + x) * 3 + (x < 20 ? 0 : 2)] = 255
  const jpg = await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toBuffer()
  const info = await probeImage(jpg)
  t.same([info.orientation, info.storedWidth, info.storedHeight, info.width, info.height], [6, 40, 20, 20, 40])
  const dec = await decodeImage(jpg)
  t.same([dec.width, dec.height], [20, 40], 'swapped')
  // rotated 90 degrees clockwise: the stored left (red) half is now on top
  const top = px(dec.data, 20, 10, 5)
  const bottom = px(dec.data, 20, 10, 34)
  t.ok(top[0]! > 200 && top[2]! < 60, `top is red: ${top}`)
  t.ok(bottom[2]! > 200 && bottom[0]! < 60, `bottom is blue: ${bottom}`)
  const sq = await decodeCropResize(jpg, 10)
  t.same(sq.box, { x: 0, y: 10, w: 20, h: 20 }, 'centre square in oriented coordinates')
})

t.test('broken and unsupported inputs', async (t) => {
  const png = await encodePng(noise(64, 64), 64, 64)
  const truncated = png.subarray(0, png.length >> 1)
  t.equal((await probeImage(truncated)).width, 64, 'the header of a truncated PNG is still readable')
  t.equal(await codeOf(decodeImage(truncated)), 'image_unreadable', 'truncated PNG')
  const jpg = await sharp(noise(64, 64), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer()
  t.equal(await codeOf(decodeImage(jpg.subarray(0, jpg.length >> 1))), 'image_unreadable', 'truncated JPEG')
  t.match(await codeOf(decodeImage(noise(500, 1))), /^(image_unreadable|image_unsupported_type)$/, 'random bytes')
  t.match(await codeOf(probeImage(Buffer.from('hello, not an image'))), /^(image_unreadable|image_unsupported_type)$/, 'text')
  t.equal(await codeOf(decodeImage(new Uint8Array(0))), 'image_unreadable', 'empty')
  const gif = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).gif().toBuffer()
  t.equal(await codeOf(decodeImage(gif)), 'image_unsupported_type', 'GIF')
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
  t.equal(await codeOf(decodeImage(svg)), 'image_unsupported_type', 'SVG')
  const webp = await sharp(noise(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).webp({ lossless: true }).toBuffer()
  const dec = await decodeImage(webp)
  t.same([dec.width, dec.height], [8, 8], 'WebP is supported')
  t.ok(Buffer.from(dec.data).equals(noise(8, 8)), 'lossless WebP pixels')
})

t.test('listImages and folder crops', async (t) => {
  const d = join(dir, 'folder')
  await mkdir(join(d, 'sub'), { recursive: true })
  const png = await encodePng(noise(4, 4), 4, 4)
  for (const name of ['b.png', 'a.JPG', 'c.webp', 'd.jpeg', 'notes.txt', '.hidden.png', 'sub/e.png']) {
    await writeFile(join(d, name), png)
  }
  t.same(
    (await listImages(d)).map((p) => p.slice(d.length + 1)),
    ['a.JPG', 'b.png', 'c.webp', 'd.jpeg'],
  )
  t.same(
    (await listImages(d, { recursive: true })).map((p) => p.slice(d.length + 1)),
    ['a.JPG', 'b.png', 'c.webp', 'd.jpeg', 'sub/e.png'],
  )
  // aligned CelebA (178x218)
  t.same(folderCropBox(178, 218), { x: 0, y: 20, w: 178, h: 178 })
  t.same(folderCropBox(178, 218, { cropSize: 108 }), { x: 35, y: 55, w: 108, h: 108 })
  t.same(folderCropBox(178, 218, { cropTop: 30 }), { x: 0, y: 30, w: 178, h: 178 })
  t.same(folderCropBox(178, 218, { cropTop: 100 }), { x: 0, y: 40, w: 178, h: 178 }, 'clamped')
  // cropTop picks the rows: a 178x218 image whose rows 30.. are white, above black
  const white = await sharp({ create: { width: 178, height: 188, channels: 3, background: '#fff' } }).png().toBuffer()
  const celeb = await sharp({ create: { width: 178, height: 218, channels: 3, background: '#000' } })
    .composite([{ input: white, left: 0, top: 30 }])
    .jpeg({ quality: 95 })
    .toBuffer()
  const f = join(d, 'celeb.jpg')
  await writeFile(f, celeb)
  const shifted = await loadFolderImage(f, 16, { cropTop: 30 })
  t.ok(px(shifted, 16, 8, 0)[0]! > 240, 'cropTop 30: the top row is white')
  const centred = await loadFolderImage(f, 16)
  t.ok(px(centred, 16, 8, 0)[0]! < 40, 'default centre crop (y = 20): the top row is black')
  await writeFile(join(d, 'broken.png'), png.subarray(0, 30))
  await t.rejects(loadFolderImage(join(d, 'broken.png'), 16), { code: 'image_unreadable', message: /broken\.png/ })
})
