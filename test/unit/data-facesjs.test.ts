import t from 'tap'
import { mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { svgsIndex } from 'facesjs'
import {
  ATTRIBUTE_SCHEMA,
  HAIR_SHADES,
  HAIR_STYLES,
  SPLITS,
  attributeVector,
  faceSeed,
  facesjsStream,
  generateFace,
  renderFace,
  splitOf,
  visibleHair,
  writeDataset,
  type DatasetManifest,
  type LabelRecord,
} from '../../src/data/facesjs.js'
import { decodeImage } from '../../src/data/image.js'
import { Rng, deriveSeed, withSeededMathRandom } from '../../src/data/rng.js'

const originalRandom = Math.random
const root = await mkdtemp(join(tmpdir(), 'npe-data-facesjs-'))
t.teardown(() => rm(root, { recursive: true, force: true }))

async function readDataset(dir: string): Promise<{ files: Map<string, Buffer>; labels: LabelRecord[]; manifest: DatasetManifest; labelsText: string; manifestText: string }> {
  const files = new Map<string, Buffer>()
  for (const name of (await readdir(join(dir, 'images'))).sort()) files.set(name, await readFile(join(dir, 'images', name)))
  const labelsText = await readFile(join(dir, 'labels.jsonl'), 'utf8')
  const manifestText = await readFile(join(dir, 'dataset.json'), 'utf8')
  const labels = labelsText.trim().split('\n').map((l) => JSON.parse(l) as LabelRecord)
  return { files, labels, manifest: JSON.parse(manifestText) as DatasetManifest, labelsText, manifestText }
}

t.test('rng: seeded, ranges, normal, Math.random swap', async (t) => {
  const a = new Rng(42)
  const b = new Rng(42)
  const xs = Array.from({ length: 5 }, () => a.next())
  t.same(xs, Array.from({ length: 5 }, () => b.next()), 'same seed, same sequence')
  t.notSame(xs, Array.from({ length: 5 }, () => new Rng(43).next()), 'other seed differs')
  const r = new Rng(1)
  let mean = 0
  let sq = 0
  const n = 20000
  for (let i = 0; i < n; i++) {
    const u = r.next()
    if (u < 0 || u >= 1) t.fail(`next() out of [0,1): ${u}`)
    const k = r.int(7)
    if (!Number.isInteger(k) || k < 0 || k >= 7) t.fail(`int(7) out of range: ${k}`)
    const z = r.normal()
    mean += z
    sq += z * z
  }
  mean /= n
  const std = Math.sqrt(sq / n - mean * mean)
  t.ok(Math.abs(mean) < 0.03, `normal mean ~0 (${mean.toFixed(4)})`)
  t.ok(Math.abs(std - 1) < 0.03, `normal std ~1 (${std.toFixed(4)})`)
  t.not(deriveSeed(1, 2), deriveSeed(2, 1), 'derived seeds depend on the order')
  t.equal(deriveSeed(1, 2), deriveSeed(1, 2))

  const original = Math.random
  const s1 = withSeededMathRandom(7, () => [Math.random(), Math.random()])
  const s2 = withSeededMathRandom(7, () => [Math.random(), Math.random()])
  t.same(s1, s2, 'seeded Math.random repeats')
  t.equal(Math.random, original, 'restored')
  t.throws(() =>
    withSeededMathRandom(7, () => {
      throw new Error('boom')
    }),
  )
  t.equal(Math.random, original, 'restored after a throw')
})

t.test('splits: deterministic, ~90/5/5 over 1000 indices', async (t) => {
  const counts = { train: 0, val: 0, test: 0 }
  for (let i = 0; i < 1000; i++) {
    const s = splitOf(i)
    counts[s]++
    if (splitOf(i) !== s) t.fail(`splitOf(${i}) not deterministic`)
  }
  t.ok(counts.train >= 870 && counts.train <= 930, `train ${counts.train}`)
  t.ok(counts.val >= 30 && counts.val <= 75, `val ${counts.val}`)
  t.ok(counts.test >= 30 && counts.test <= 75, `test ${counts.test}`)
  t.same(SPLITS, ['train', 'val', 'test'])
})

t.test('attributes are consistent with the face and within the schema', async (t) => {
  const hats = new Set(['hat', 'hat2', 'hat3', 'santa-hat'])
  const seen = ATTRIBUTE_SCHEMA.map(() => new Set<number>())
  let bad = 0
  for (let i = 0; i < 400; i++) {
    const { face, attributes: a, background } = generateFace(faceSeed(3, i))
    const v = attributeVector(a)
    t.equal(v.length, ATTRIBUTE_SCHEMA.length)
    v.forEach((k, j) => {
      if (!(Number.isInteger(k) && k >= 0 && k < ATTRIBUTE_SCHEMA[j]!.numClasses)) bad++
      seen[j]!.add(k)
    })
    const ok =
      a.glasses === (face.glasses.id !== 'none') &&
      a.glassesId === face.glasses.id &&
      a.facialHair === (face.facialHair.id !== 'none') &&
      a.hat === hats.has(face.accessories.id) &&
      a.hairId === face.hair.id &&
      a.hairStyle === visibleHair(face.hair.id, face.accessories.id) &&
      (!a.hat || ['short', 'short-fade', 'none'].includes(a.hairStyle)) &&
      HAIR_STYLES.includes(a.hairStyle) &&
      (a.hat || a.hairStyle !== 'none') &&
      HAIR_SHADES[a.hairColor].includes(face.hair.color) &&
      a.skinColor === face.body.color &&
      a.mouthId === face.mouth.id &&
      a.fatness === face.fatness &&
      a.background === background &&
      (a.gender === 'male' || !a.facialHair)
    if (!ok) {
      bad++
      t.fail(`face ${i} inconsistent: ${JSON.stringify({ a, face })}`)
    }
  }
  t.equal(bad, 0, 'all vectors in range and all labels consistent')
  // every class of every binary / small target occurs in 400 faces
  ATTRIBUTE_SCHEMA.forEach((s, j) => {
    if (s.numClasses <= 5) t.equal(seen[j]!.size, s.numClasses, `${s.name}: all ${s.numClasses} classes occur`)
  })
  t.same(
    ATTRIBUTE_SCHEMA.map((s) => [s.name, s.numClasses]),
    [
      ['gender', 2],
      ['skinTone', 3],
      ['hairColor', 5],
      ['longHair', 2],
      ['glasses', 2],
      ['facialHair', 2],
      ['hat', 2],
      ['smiling', 2],
      ['hairStyle', svgsIndex.hair.length + 1],
    ],
  )
  t.throws(() => attributeVector({ ...generateFace(1).attributes, hairColor: 'purple' as 'red' }), RangeError)
})

t.test('renderFace is deterministic and seed-dependent', async (t) => {
  const a = await renderFace(123, 32, { png: true })
  const b = await renderFace(123, 32, { png: true })
  const c = await renderFace(124, 32)
  t.equal(a.rgb.length, 32 * 32 * 3)
  t.ok(Buffer.from(a.rgb).equals(Buffer.from(b.rgb)), 'same pixels')
  t.ok(a.png && b.png && a.png.equals(b.png), 'same PNG bytes')
  t.notOk(Buffer.from(a.rgb).equals(Buffer.from(c.rgb)), 'another seed differs')
  t.same(a.attributes, b.attributes)
  t.equal(c.png, undefined, 'no PNG unless asked')
  t.equal(Math.random, originalRandom, 'Math.random is restored after rendering')
  // the corners are background, the centre is not
  const bg = a.background
  const hex = (o: number): string =>
    '#' + [a.rgb[o]!, a.rgb[o + 1]!, a.rgb[o + 2]!].map((v) => v.toString(16).padStart(2, '0')).join('')
  t.equal(hex(0), bg, 'top-left corner is the background colour')
  t.not(hex((16 * 32 + 16) * 3), bg, 'centre is the face')
})

t.test('writeDataset: deterministic, matches renderFace and the stream, resumable', async (t) => {
  const n = 6
  const size = 32
  const dirA = join(root, 'a')
  const dirB = join(root, 'b')
  const dirC = join(root, 'c')
  const progress: number[] = []
  const resA = await writeDataset({ n, size, seed: 7, out: dirA, onProgress: (p) => progress.push(p.done) })
  await writeDataset({ n, size, seed: 7, out: dirB, concurrency: 1 })
  await writeDataset({ n, size, seed: 8, out: dirC })
  t.same(progress, [1, 2, 3, 4, 5, 6], 'progress per image, in order')
  t.equal(resA.written, n)
  const A = await readDataset(dirA)
  const B = await readDataset(dirB)
  const C = await readDataset(dirC)
  t.same([...A.files.keys()], ['000000.png', '000001.png', '000002.png', '000003.png', '000004.png', '000005.png'])
  for (const [name, buf] of A.files) t.ok(buf.equals(B.files.get(name)!), `${name}: same bytes for the same seed`)
  t.equal(A.labelsText, B.labelsText, 'same labels.jsonl')
  t.equal(A.manifestText, B.manifestText, 'same dataset.json')
  const differing = [...A.files].filter(([name, buf]) => !buf.equals(C.files.get(name)!)).length
  t.equal(differing, n, 'another seed: every image differs')
  t.not(A.labelsText, C.labelsText)

  // manifest
  t.match(A.manifest, { generator: 'facesjs', generatorVersion: '5.0.3', n, size, seed: 7, complete: true })
  t.equal(A.manifest.splits.train + A.manifest.splits.val + A.manifest.splits.test, n)
  t.same(A.manifest.attributeSchema, JSON.parse(JSON.stringify(ATTRIBUTE_SCHEMA)))

  // labels <-> renderFace <-> stream
  const stream: { index: number; rgb: Uint8Array; seed: number }[] = []
  for await (const item of facesjsStream({ seed: 7, size, end: n })) stream.push(item)
  t.same(stream.map((s) => s.index), [0, 1, 2, 3, 4, 5])
  for (const [i, rec] of A.labels.entries()) {
    t.same([rec.index, rec.file, rec.seed, rec.split], [i, `images/00000${i}.png`, faceSeed(7, i), splitOf(i)])
    const r = await renderFace(rec.seed, size, { png: true })
    t.ok(r.png!.equals(A.files.get(rec.file.slice('images/'.length))!), `renderFace(seed of #${i}) gives the file's bytes`)
    t.same(r.attributes, rec.attributes, `labels of #${i}`)
    const dec = await decodeImage(A.files.get(rec.file.slice('images/'.length))!)
    t.ok(Buffer.from(dec.data).equals(Buffer.from(stream[i]!.rgb)), `stream item ${i} equals the file`)
  }

  // resume: one image missing, one truncated -> those two are re-rendered, the rest kept
  await unlink(join(dirA, 'images', '000002.png'))
  const f4 = join(dirA, 'images', '000004.png')
  await writeFile(f4, (await readFile(f4)).subarray(0, 40))
  const resumed = await writeDataset({ n, size, seed: 7, out: dirA })
  t.same([resumed.written, resumed.skipped], [2, 4], 'resumed: 2 written, 4 kept')
  const A2 = await readDataset(dirA)
  for (const [name, buf] of A2.files) t.ok(buf.equals(B.files.get(name)!), `${name}: identical after resume`)
  t.equal(A2.labelsText, B.labelsText)
  t.equal(A2.manifestText, B.manifestText)
  // extending n continues from where it stopped
  const extended = await writeDataset({ n: n + 2, size, seed: 7, out: dirA })
  t.same([extended.written, extended.skipped], [2, n])
  // another seed or size into the same directory is refused
  await t.rejects(writeDataset({ n, size: 16, seed: 7, out: dirA }), /different dataset/)
  await t.rejects(writeDataset({ n, size, seed: 9, out: dirA }), /different dataset/)
})

t.test('facesjsStream: split filter and start', async (t) => {
  const items: { index: number; split: string }[] = []
  for await (const it of facesjsStream({ seed: 5, size: 16, split: 'val', end: 200 })) items.push(it)
  t.ok(items.length > 0, `${items.length} val items in the first 200`)
  t.ok(items.every((it) => it.split === 'val' && splitOf(it.index) === 'val'))
  t.same(
    items.map((it) => it.index),
    Array.from({ length: 200 }, (_, i) => i).filter((i) => splitOf(i) === 'val'),
  )
  // an endless stream can be consumed partially
  const first: number[] = []
  for await (const it of facesjsStream({ seed: 5, size: 16, start: 10 })) {
    first.push(it.index)
    if (first.length === 3) break
  }
  t.same(first, [10, 11, 12])
})
