import t from 'tap'
import sharp from 'sharp'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { presetConfig } from '../../src/model/config.js'
import { createIAN } from '../../src/model/networks.js'
import { saveCheckpoint } from '../../src/model/checkpoint-dir.js'
import { run as edit } from '../../src/cli/commands/edit.js'
import { run as sample } from '../../src/cli/commands/sample.js'
import { parseBox, parseHexColor, parsePoints } from '../../src/editor/parse.js'

const dir = await mkdtemp(join(tmpdir(), 'npe-edit-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const modelDir = join(dir, 'model')
await saveCheckpoint(modelDir, createIAN(presetConfig('tiny-16', { initStd: 0.15 }), 3))

// a 90x61 gradient photo
const W = 90
const H = 61
const raw = Buffer.alloc(W * H * 3)
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) raw.set([x * 2, y * 3, 128], (y * W + x) * 3)
const input = join(dir, 'in.png')
await writeFile(input, await sharp(raw, { raw: { width: W, height: H, channels: 3 } }).png().toBuffer())

// keep the command's stderr out of the TAP stream
const quiet = () => {
  const write = process.stderr.write
  process.stderr.write = (() => true) as typeof process.stderr.write
  return () => {
    process.stderr.write = write
  }
}

t.test('parsers', async (t) => {
  t.same(parseHexColor('#FF8000'), [255, 128, 0])
  t.same(parseHexColor('00ff10'), [0, 255, 16])
  t.equal(parseHexColor('#ff80'), undefined)
  t.equal(parseHexColor('red'), undefined)
  t.same(parseBox('1,2,30,40'), { x: 1, y: 2, w: 30, h: 40 })
  t.equal(parseBox('1,2,3'), undefined)
  t.equal(parseBox('1,2,-3,4'), undefined)
  t.same(parsePoints('1,2; 3.5,4'), [{ x: 1, y: 2 }, { x: 3.5, y: 4 }])
  t.equal(parsePoints('1,2;3'), undefined)
  t.equal(parsePoints(''), undefined)
})

t.test('npe edit: a non-square photo larger than the model keeps its size; outside the crop is untouched', async (t) => {
  const out = join(dir, 'out.png')
  const restore = quiet()
  const code = await edit(['--model', modelDir, '--image', input, '--out', out, '--crop', '20,5,50,50', '--stroke', '30,20;40,30;50,40', '--radius', '8', '--color', '#ff0000', '--backend', 'wasm'])
  restore()
  t.equal(code, 0)
  const { data, info } = await sharp(await readFile(out)).raw().toBuffer({ resolveWithObject: true })
  t.equal(info.width, W)
  t.equal(info.height, H)
  t.equal(info.channels, 3)
  let outside = 0
  let inside = 0
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3
      const d = Math.abs(data[i]! - raw[i]!) + Math.abs(data[i + 1]! - raw[i + 1]!) + Math.abs(data[i + 2]! - raw[i + 2]!)
      if (x >= 20 && x < 70 && y >= 5 && y < 55) inside += d
      else outside += d
    }
  }
  t.equal(outside, 0, 'pixels outside the crop are byte-identical')
  t.ok(inside > 0, 'the crop changed')
})

t.test('npe edit: bad input is a usage error (exit 2) or a clear failure (exit 1)', async (t) => {
  const restore = quiet()
  const results = [
    await edit(['--model', modelDir, '--image', input, '--out', join(dir, 'x.png'), '--stroke', '1,2;3', '--radius', '2']),
    await edit(['--model', modelDir, '--image', input, '--out', join(dir, 'x.png'), '--stroke', '1,2', '--radius', '2', '--color', 'blue']),
    await edit(['--model', modelDir, '--image', input, '--out', join(dir, 'x.png'), '--stroke', '1,2', '--radius', '0']),
    await edit(['--model', modelDir, '--image', input, '--out', join(dir, 'x.png'), '--stroke', '1,2', '--radius', '2', '--crop', '80,0,50,50', '--backend', 'wasm']),
    await edit(['--model', join(dir, 'nope'), '--image', input, '--out', join(dir, 'x.png'), '--stroke', '1,2', '--radius', '2', '--backend', 'wasm']),
    await edit(['--model', modelDir, '--image', join(dir, 'model', 'checkpoint.json'), '--out', join(dir, 'x.png'), '--stroke', '1,2', '--radius', '2', '--backend', 'wasm']),
  ]
  restore()
  t.same(results, [2, 2, 2, 1, 1, 1])
})

t.test('npe sample writes a grid', async (t) => {
  const out = join(dir, 'grid.png')
  const restore = quiet()
  const code = await sample(['--model', modelDir, '--n', '6', '--seed', '4', '--columns', '3', '--out', out, '--backend', 'wasm'])
  restore()
  t.equal(code, 0)
  const meta = await sharp(await readFile(out)).metadata()
  t.equal(meta.width, 2 + 3 * 18)
  t.equal(meta.height, 2 + 2 * 18)
})
