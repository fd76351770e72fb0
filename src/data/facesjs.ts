/**
 * Procedural labelled portraits from facesjs (cartoon faces drawn as SVG), rendered with
 * sharp/librsvg and framed on the head. A stand-in for CelebA that needs no download:
 * every face is a pure function of a 32-bit seed, so a dataset is defined by
 * (generator version, seed, size, n) and any face can be regenerated on its own.
 *
 * Sampling scheme (DATASET_VERSION 1), per face seed:
 *  - rng = Rng(deriveSeed(seed, 0)); gender = female / male with p = 0.5 each;
 *  - facesjs `generate(undefined, { gender })` with Math.random seeded from deriveSeed(seed, 1)
 *    (facesjs draws race, skin colour, every feature id and size from Math.random);
 *  - then, from rng, a few overrides that balance the classifier targets (facesjs alone gives
 *    ~80% black hair, 10% glasses, 11% hats): hair colour class uniform over
 *    black/brown/blonde/red/grey, then a shade within it; glasses with p = 0.25; a hat with
 *    p = 0.2, another accessory (headband, eye black) with p = 0.1; a light background
 *    colour from BACKGROUNDS. Skin tone, facial hair (males only, ~50%) and mouth follow facesjs.
 *  - under a hat, facesjs's renderer draws some hair styles as 'short' / 'short-fade' and hides
 *    the others; the face object keeps the generated id (`hairId`), the labels describe what is
 *    drawn (`hairStyle`, see visibleHair).
 * Changing any of this changes the images: bump DATASET_VERSION.
 */
import { createRequire } from 'node:module'
import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { faceToSvgString, generate, svgsIndex } from 'facesjs'
import type { FaceConfig, Gender } from 'facesjs'
import sharp from 'sharp'
import { encodePng } from './image.js'
import { Rng, deriveSeed, toSeed, withSeededMathRandom } from './rng.js'

export const GENERATOR = 'facesjs'
/** Version of our sampling / framing / labelling scheme (not of facesjs). */
export const DATASET_VERSION = 1

function readFacesjsVersion(): string {
  try {
    const require = createRequire(import.meta.url)
    const entry = require.resolve('facesjs') // .../facesjs/build/index.js
    const pkg = require(join(entry, '..', '..', 'package.json')) as { version?: string }
    return pkg.version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

export const FACESJS_VERSION: string = readFacesjsVersion()

// ---------------------------------------------------------------------------------------------
// Palettes and label vocabularies

/** Light, plain background colours. */
export const BACKGROUNDS = ['#f2f2f2', '#e9e4da', '#dfe8ef', '#e4eede', '#f1e4e4', '#e8e3f0'] as const

export const HAIR_COLORS = ['black', 'brown', 'blonde', 'red', 'grey'] as const
export type HairColorClass = (typeof HAIR_COLORS)[number]

/** Shades per hair colour class (facesjs's own palettes, plus reds and greys it lacks). */
export const HAIR_SHADES: Record<HairColorClass, readonly string[]> = {
  black: ['#272421', '#0f0902', '#1c1008', '#2c1608'],
  brown: ['#3d2314', '#5a3825', '#6b4a33'],
  blonde: ['#cc9966', '#e9c67b', '#d7bf91'],
  red: ['#b55239', '#a33b22', '#c8683d'],
  grey: ['#8c8c8c', '#b3b3b3', '#d6d6d6'],
}

export const SKIN_TONES = ['light', 'medium', 'dark'] as const
export type SkinTone = (typeof SKIN_TONES)[number]

export const GENDERS = ['female', 'male'] as const

/** Hair ids as facesjs knows them, plus 'none' (no hair drawn: hidden under a hat). */
export const HAIR_STYLES: readonly string[] = [...svgsIndex.hair, 'none']

const HATS = new Set(['hat', 'hat2', 'hat3', 'santa-hat'])
const OTHER_ACCESSORIES = ['eye-black', 'headband', 'headband-high'] as const
const GLASSES = svgsIndex.glasses.filter((id) => id !== 'none')

/** facesjs's renderer (display.js) replaces these hair styles under a hat... */
const HAT_TO_SHORT = new Set([
  'afro', 'afro2', 'curly', 'curly2', 'curly3', 'faux-hawk', 'hair', 'high', 'juice', 'messy-short', 'messy',
  'middle-part', 'parted', 'shaggy1', 'shaggy2', 'short3', 'spike', 'spike2', 'spike3', 'spike4',
])
const HAT_TO_SHORT_FADE = new Set(['blowoutFade', 'curlyFade1', 'curlyFade2', 'dreads', 'fauxhawk-fade', 'tall-fade'])
/** ...and hides every other style. */

/** Styles whose hair reaches the jaw or hangs below it (all the female* styles except the bun). */
const LONG_HAIR = new Set([...svgsIndex.hair.filter((id) => id.startsWith('female') && id !== 'female8'), 'longHair'])

/** Mouths that read as smiling at 64 px (checked visually). */
const SMILING_MOUTHS = new Set(['mouth2', 'mouth3', 'mouth7', 'mouth8', 'smile', 'smile-closed', 'smile2', 'smile3', 'smile4'])

/**
 * The hair style facesjs's renderer actually draws for a generated hair id and accessory
 * (display.js: under a hat, these styles become 'short' / 'short-fade', the others are not
 * drawn). Apply it to generated ids only: the renderer would hide a literal 'short' too.
 */
export function visibleHair(hairId: string, accessoryId: string): string {
  if (!HATS.has(accessoryId)) return hairId
  if (HAT_TO_SHORT.has(hairId)) return 'short'
  if (HAT_TO_SHORT_FADE.has(hairId)) return 'short-fade'
  return 'none'
}

function luma(hex: string): number {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex)
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`)
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h as string, 16)) as [number, number, number]
  return 0.299 * r + 0.587 * g + 0.114 * b
}

/** Skin colour -> tone class by luma (facesjs skins: light 192..227, medium 120..148, dark 67..82). */
export function skinToneOf(hex: string): SkinTone {
  const y = luma(hex)
  return y >= 170 ? 'light' : y >= 100 ? 'medium' : 'dark'
}

/** Hair colour hex -> class (exact for our palette; nearest shade for other colours). */
export function hairColorOf(hex: string): HairColorClass {
  const h = hex.toLowerCase()
  let best: HairColorClass = 'black'
  let bestD = Infinity
  for (const cls of HAIR_COLORS) {
    for (const shade of HAIR_SHADES[cls]) {
      if (shade === h) return cls
      const d = colorDistance(shade, h)
      if (d < bestD) {
        bestD = d
        best = cls
      }
    }
  }
  return best
}

function colorDistance(a: string, b: string): number {
  let d = 0
  for (let i = 1; i < 7; i += 2) d += (parseInt(a.slice(i, i + 2), 16) - parseInt(b.slice(i, i + 2), 16)) ** 2
  return d
}

// ---------------------------------------------------------------------------------------------
// Attributes

/** Flat labels of one face: the classifier targets first, then raw facesjs ids and values. */
export interface FaceAttributes {
  gender: Gender
  skinTone: SkinTone
  hairColor: HairColorClass
  /** Visible hair id (HAIR_STYLES): visibleHair(hairId, accessoryId); 'none' when a hat hides it. */
  hairStyle: string
  longHair: boolean
  glasses: boolean
  facialHair: boolean
  hat: boolean
  smiling: boolean
  // raw
  skinColor: string
  hairColorHex: string
  /** The generated hair id (what facesjs draws without a hat). */
  hairId: string
  hairBgId: string
  glassesId: string
  facialHairId: string
  accessoryId: string
  mouthId: string
  headId: string
  eyeId: string
  eyebrowId: string
  noseId: string
  earId: string
  bodyId: string
  jerseyId: string
  eyeLineId: string
  smileLineId: string
  miscLineId: string
  fatness: number
  background: string
}

export interface AttributeTarget {
  name: keyof FaceAttributes
  kind: 'binary' | 'categorical'
  /** Class names; the class index is the position. Binary targets are ['no', 'yes']. */
  classes: readonly string[]
  numClasses: number
}

function target(name: keyof FaceAttributes, classes: readonly string[], kind: AttributeTarget['kind'] = 'categorical'): AttributeTarget {
  return { name, kind, classes, numClasses: classes.length }
}
const BINARY = ['no', 'yes'] as const

/** Classifier targets (the trait-reconstruction metric uses these), in vector order. */
export const ATTRIBUTE_SCHEMA: readonly AttributeTarget[] = [
  target('gender', GENDERS),
  target('skinTone', SKIN_TONES),
  target('hairColor', HAIR_COLORS),
  target('longHair', BINARY, 'binary'),
  target('glasses', BINARY, 'binary'),
  target('facialHair', BINARY, 'binary'),
  target('hat', BINARY, 'binary'),
  target('smiling', BINARY, 'binary'),
  target('hairStyle', HAIR_STYLES),
]

/** Class index per ATTRIBUTE_SCHEMA target. Throws on a value outside the schema. */
export function attributeVector(attrs: FaceAttributes): number[] {
  return ATTRIBUTE_SCHEMA.map((t) => {
    const v = attrs[t.name]
    const idx = t.kind === 'binary' ? (v === true ? 1 : v === false ? 0 : -1) : t.classes.indexOf(String(v))
    if (idx < 0) throw new RangeError(`attribute ${t.name}=${JSON.stringify(v)} is not in the schema`)
    return idx
  })
}

/** Labels of a facesjs face object (as generated; gender is read from the eye set, which facesjs keeps per gender). */
export function faceAttributes(face: FaceConfig, background: string): FaceAttributes {
  const hairStyle = visibleHair(face.hair.id, face.accessories.id)
  return {
    gender: face.eye.id.startsWith('female') ? 'female' : 'male',
    skinTone: skinToneOf(face.body.color),
    hairColor: hairColorOf(face.hair.color),
    hairStyle,
    longHair: face.hairBg.id !== 'none' || LONG_HAIR.has(hairStyle),
    glasses: face.glasses.id !== 'none',
    facialHair: face.facialHair.id !== 'none',
    hat: HATS.has(face.accessories.id),
    smiling: SMILING_MOUTHS.has(face.mouth.id),
    skinColor: face.body.color,
    hairColorHex: face.hair.color,
    hairId: face.hair.id,
    hairBgId: face.hairBg.id,
    glassesId: face.glasses.id,
    facialHairId: face.facialHair.id,
    accessoryId: face.accessories.id,
    mouthId: face.mouth.id,
    headId: face.head.id,
    eyeId: face.eye.id,
    eyebrowId: face.eyebrow.id,
    noseId: face.nose.id,
    earId: face.ear.id,
    bodyId: face.body.id,
    jerseyId: face.jersey.id,
    eyeLineId: face.eyeLine.id,
    smileLineId: face.smileLine.id,
    miscLineId: face.miscLine.id,
    fatness: face.fatness,
    background,
  }
}

// ---------------------------------------------------------------------------------------------
// Generation and rendering

export interface GeneratedFace {
  seed: number
  face: FaceConfig
  background: string
  attributes: FaceAttributes
}

/** The face for a seed (pure, synchronous, no rendering). See the module comment for the scheme. */
export function generateFace(seed: number): GeneratedFace {
  const s = toSeed(seed)
  const rng = new Rng(deriveSeed(s, 0))
  const gender: Gender = rng.bool(0.5) ? 'female' : 'male'
  const face = withSeededMathRandom(deriveSeed(s, 1), () => generate(undefined, { gender }))
  // Balance the classifier targets.
  const hairClass = rng.pick(HAIR_COLORS)
  face.hair.color = rng.pick(HAIR_SHADES[hairClass])
  face.glasses.id = rng.bool(0.25) ? rng.pick(GLASSES) : 'none'
  const a = rng.next()
  face.accessories.id = a < 0.2 ? rng.pick([...HATS]) : a < 0.3 ? rng.pick(OTHER_ACCESSORIES) : 'none'
  const background = rng.pick(BACKGROUNDS)
  return { seed: s, face, background, attributes: faceAttributes(face, background) }
}

export interface ViewBox {
  x: number
  y: number
  size: number
}

/**
 * The head framing, in facesjs canvas units. The canvas is 400 x 600; the head spans about
 * x 45..355, hair tops sit at y ~40..100 (tall styles and hats reach ~10), the chin at ~500
 * and the shoulders start below it. A 500-unit square from (-50, 20): the head (hair to chin)
 * fills ~85% of the height, centred; hats and tall hair keep their tops; a sliver of the
 * shoulders shows in the bottom corners. Chosen by looking at rendered grids.
 */
export const HEAD_VIEW: Readonly<ViewBox> = Object.freeze({ x: -50, y: 20, size: 500 })

/**
 * Render supersampling factor: librsvg draws the view box at size * SUPERSAMPLE pixels
 * (Lanczos-3 down when > 1). librsvg's coverage anti-aliasing already gives clean edges at
 * the target size; 2x looked only marginally crisper at 64 px and rendered ~1.6x slower.
 */
export const SUPERSAMPLE = 1

/** SVG of the face cropped to HEAD_VIEW at `px` x `px` pixels, with a background rect. */
export function faceSvg(face: FaceConfig, px: number, background: string, view: ViewBox = HEAD_VIEW): string {
  // faceToSvgString mutates the face it draws (hair under hats); give it a copy.
  const svg = faceToSvgString(structuredClone(face))
  const { x, y, size } = view
  const m = /<svg\b[^>]*>/.exec(svg)
  if (!m) throw new Error('facesjs returned no <svg> element')
  const tag = m[0]
    .replace(/\swidth="[^"]*"/, ` width="${px}"`)
    .replace(/\sheight="[^"]*"/, ` height="${px}"`)
    .replace(/\sviewBox="[^"]*"/, ` viewBox="${x} ${y} ${size} ${size}"`)
    .replace(/\spreserveAspectRatio="[^"]*"/, ' preserveAspectRatio="none"')
  if (!tag.includes(`viewBox="${x} ${y}`) || !tag.includes(`width="${px}"`)) {
    throw new Error('unexpected facesjs SVG header; cannot set the view box')
  }
  const bg = `<rect x="${x - 1}" y="${y - 1}" width="${size + 2}" height="${size + 2}" fill="${background}"/>`
  return tag + bg + svg.slice(m.index + m[0].length)
}

/** Rasterise a generated face to size x size RGB. */
export async function rasterizeFace(g: GeneratedFace, size: number): Promise<Uint8Array> {
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`invalid size ${size}`)
  const px = size * SUPERSAMPLE
  let img = sharp(Buffer.from(faceSvg(g.face, px, g.background)), { density: 72 })
    .flatten({ background: g.background })
    .removeAlpha()
  if (px !== size) img = img.resize(size, size, { kernel: 'lanczos3', fit: 'fill' })
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true })
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new Error(`facesjs render came out ${info.width}x${info.height}x${info.channels}`)
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

export interface RenderedFace extends GeneratedFace {
  size: number
  /** size x size RGB, row-major. */
  rgb: Uint8Array
  /** The PNG encoding of `rgb`, when asked for (exactly what writeDataset writes). */
  png?: Buffer
}

/** Generate and render the face for `seed` at size x size. */
export async function renderFace(seed: number, size: number, opts: { png?: boolean } = {}): Promise<RenderedFace> {
  const g = generateFace(seed)
  const rgb = await rasterizeFace(g, size)
  const png = opts.png ? await encodePng(rgb, size, size) : undefined
  return { ...g, size, rgb, ...(png ? { png } : {}) }
}

// ---------------------------------------------------------------------------------------------
// Indexing: seeds and splits

export type Split = 'train' | 'val' | 'test'
export const SPLITS: readonly Split[] = ['train', 'val', 'test']
/** Split fractions; the split of an index does not depend on the dataset seed. */
export const SPLIT_FRACTIONS: Readonly<Record<Split, number>> = { train: 0.9, val: 0.05, test: 0.05 }
const SPLIT_SALT = 0x53504c54 // 'SPLT'

/** The fixed split of dataset index `index` (hash of the index: ~90/5/5). */
export function splitOf(index: number): Split {
  const u = deriveSeed(SPLIT_SALT, index) / 0x100000000
  return u < SPLIT_FRACTIONS.train ? 'train' : u < SPLIT_FRACTIONS.train + SPLIT_FRACTIONS.val ? 'val' : 'test'
}

/** The face seed of item `index` of the dataset with seed `seed`. */
export function faceSeed(seed: number, index: number): number {
  return deriveSeed(seed, index)
}

// ---------------------------------------------------------------------------------------------
// Streaming (training) and writing (datasets on disk)

export interface StreamItem {
  index: number
  seed: number
  split: Split
  rgb: Uint8Array
  attributes: FaceAttributes
}

export interface StreamOptions {
  seed: number
  size: number
  /** Only yield items of this split (others are skipped without rendering). Default: all. */
  split?: Split
  /** First dataset index (default 0). */
  start?: number
  /** Stop before this dataset index (default: never, an endless stream). */
  end?: number
  /** Renders in flight (default 4). Items are still yielded in index order. */
  concurrency?: number
}

/** Run `fn` over `items` with bounded concurrency, yielding results in input order. */
async function* ordered<I, O>(items: Iterable<I>, concurrency: number, fn: (item: I) => Promise<O>): AsyncGenerator<O> {
  const it = items[Symbol.iterator]()
  const pending: Promise<O>[] = []
  const fill = (): void => {
    while (pending.length < concurrency) {
      const r = it.next()
      if (r.done) return
      const p = fn(r.value)
      p.catch(() => undefined) // handled when awaited; avoid unhandled-rejection noise meanwhile
      pending.push(p)
    }
  }
  fill()
  while (pending.length > 0) {
    const value = await (pending.shift() as Promise<O>)
    fill()
    yield value
  }
}

function* indices(start: number, end: number, split: Split | undefined): Generator<number> {
  for (let i = start; i < end; i++) if (split === undefined || splitOf(i) === split) yield i
}

/**
 * Faces rendered on the fly, never touching disk. Item i has seed faceSeed(seed, i) and
 * split splitOf(i), so the stream is identical to a written dataset with the same seed.
 */
export async function* facesjsStream(opts: StreamOptions): AsyncGenerator<StreamItem> {
  const { seed, size, split } = opts
  const start = opts.start ?? 0
  const end = opts.end ?? Number.MAX_SAFE_INTEGER
  const concurrency = Math.max(1, opts.concurrency ?? 4)
  yield* ordered(indices(start, end, split), concurrency, async (index) => {
    const s = faceSeed(seed, index)
    const g = generateFace(s)
    const rgb = await rasterizeFace(g, size)
    return { index, seed: s, split: splitOf(index), rgb, attributes: g.attributes }
  })
}

export interface LabelRecord {
  file: string
  index: number
  split: Split
  seed: number
  attributes: FaceAttributes
}

export interface DatasetManifest {
  generator: typeof GENERATOR
  generatorVersion: string
  datasetVersion: number
  n: number
  size: number
  seed: number
  /** Pixel format of the images. */
  format: 'png-rgb8'
  images: string
  labels: string
  splits: Record<Split, number>
  splitFractions: Record<Split, number>
  attributeSchema: readonly AttributeTarget[]
  /** Class counts per target over the whole dataset, in schema order. */
  classCounts: Record<string, number[]>
  complete: boolean
}

export interface WriteProgress {
  done: number
  total: number
  /** Files already present and valid (resumed). */
  skipped: number
  elapsedMs: number
}

export interface WriteDatasetOptions {
  n: number
  size: number
  seed: number
  out: string
  onProgress?: (p: WriteProgress) => void
  /** Renders in flight (default: the CPU count, clamped to 4..8). */
  concurrency?: number
}

export interface WriteDatasetResult {
  manifest: DatasetManifest
  written: number
  skipped: number
  elapsedMs: number
}

function fileDigits(n: number): number {
  return Math.max(6, String(Math.max(0, n - 1)).length)
}

function fileName(index: number, n: number): string {
  return `images/${String(index).padStart(fileDigits(n), '0')}.png`
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** A file written earlier that is a complete PNG of the right size. */
async function isValidImage(path: string, size: number): Promise<boolean> {
  try {
    const st = await stat(path)
    if (!st.isFile() || st.size === 0) return false
    const { info } = await sharp(path, { failOn: 'error' }).raw().toBuffer({ resolveWithObject: true })
    return info.width === size && info.height === size
  } catch {
    return false
  }
}

async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, data)
  await rename(tmp, path)
}

/**
 * Write a facesjs dataset: `out/images/000000.png ...`, `out/labels.jsonl` (one LabelRecord per
 * line, index order) and `out/dataset.json` (DatasetManifest). Deterministic: the same
 * (seed, size, n) gives the same bytes. Resumable: existing valid images of the same
 * (generator version, seed, size) are kept and not re-rendered (their labels are regenerated,
 * which is cheap); images are written atomically (temp file + rename). A directory holding a
 * dataset with another seed, size or scheme version is refused. With a smaller n than a
 * previous run, images past n are left on disk but not listed.
 */
export async function writeDataset(opts: WriteDatasetOptions): Promise<WriteDatasetResult> {
  const { n, size, out, onProgress } = opts
  const seed = toSeed(opts.seed)
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`)
  if (!Number.isInteger(size) || size < 1 || size > 4096) throw new RangeError(`invalid size ${size}`)
  const concurrency = Math.max(1, opts.concurrency ?? Math.min(8, Math.max(4, availableParallelism())))
  const t0 = Date.now()

  await mkdir(join(out, 'images'), { recursive: true })
  const manifestPath = join(out, 'dataset.json')
  const previous = (await readJson(manifestPath)) as Partial<DatasetManifest> | undefined
  if (previous !== undefined) {
    const same =
      previous.generator === GENERATOR &&
      previous.generatorVersion === FACESJS_VERSION &&
      previous.datasetVersion === DATASET_VERSION &&
      previous.seed === seed &&
      previous.size === size
    if (!same) {
      throw new Error(
        `${out} already holds a different dataset (${previous.generator} ${previous.generatorVersion} v${previous.datasetVersion}, ` +
          `seed ${previous.seed}, size ${previous.size}); use another --out directory`,
      )
    }
  }

  const splits: Record<Split, number> = { train: 0, val: 0, test: 0 }
  const classCounts: Record<string, number[]> = Object.fromEntries(
    ATTRIBUTE_SCHEMA.map((t) => [t.name, new Array<number>(t.numClasses).fill(0)]),
  )
  const base: Omit<DatasetManifest, 'splits' | 'classCounts' | 'complete'> = {
    generator: GENERATOR,
    generatorVersion: FACESJS_VERSION,
    datasetVersion: DATASET_VERSION,
    n,
    size,
    seed,
    format: 'png-rgb8',
    images: `images/%0${fileDigits(n)}d.png`,
    labels: 'labels.jsonl',
    splitFractions: { ...SPLIT_FRACTIONS },
    attributeSchema: ATTRIBUTE_SCHEMA,
  }
  // Mark the directory as ours (incomplete) before writing images, so a resume can check it.
  await writeAtomic(manifestPath, JSON.stringify({ ...base, splits, classCounts, complete: false }, null, 2) + '\n')

  const labelsPath = join(out, 'labels.jsonl')
  const labelsTmp = `${labelsPath}.tmp-${process.pid}`
  const labels = await open(labelsTmp, 'w')
  let written = 0
  let skipped = 0
  let done = 0
  try {
    const items = ordered(indices(0, n, undefined), concurrency, async (index): Promise<LabelRecord & { fresh: boolean }> => {
      const s = faceSeed(seed, index)
      const file = fileName(index, n)
      const path = join(out, file)
      const g = generateFace(s)
      let fresh = false
      if (!(await isValidImage(path, size))) {
        const rgb = await rasterizeFace(g, size)
        await writeAtomic(path, await encodePng(rgb, size, size))
        fresh = true
      }
      return { file, index, split: splitOf(index), seed: s, attributes: g.attributes, fresh }
    })
    let buffered = ''
    for await (const { fresh, ...rec } of items) {
      if (fresh) written++
      else skipped++
      done++
      splits[rec.split]++
      const vec = attributeVector(rec.attributes)
      ATTRIBUTE_SCHEMA.forEach((t, k) => {
        ;(classCounts[t.name] as number[])[vec[k] as number]++
      })
      buffered += JSON.stringify(rec) + '\n'
      if (buffered.length > 1 << 16) {
        await labels.write(buffered)
        buffered = ''
      }
      onProgress?.({ done, total: n, skipped, elapsedMs: Date.now() - t0 })
    }
    if (buffered) await labels.write(buffered)
    await labels.close()
  } catch (err) {
    await labels.close().catch(() => undefined)
    await rm(labelsTmp, { force: true })
    throw err
  }
  await rename(labelsTmp, labelsPath)
  const manifest: DatasetManifest = { ...base, splits, classCounts, complete: true }
  await writeAtomic(manifestPath, JSON.stringify(manifest, null, 2) + '\n')
  return { manifest, written, skipped, elapsedMs: Date.now() - t0 }
}
