/**
 * The browser editor (web/) in real Chromium: Debian's /usr/bin/chromium driven
 * by playwright-core, against the embedded service (tiny-16 untrained model) on
 * a random port of 127.0.0.1. Upload + crop, a brush stroke (changed under the
 * stroke, not outside the crop, at most one request in flight, points merged),
 * undo / redo, latent canvas, wheel, download, update, sample, interpolation,
 * an API error in #error, and the narrow layout. Screenshots go to
 * test-artifacts/e2e/. Run alone: npx tap test/e2e/browser.test.ts
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config.js'
import { createService } from '../../src/runtime.js'
import { tinyModelDir } from '../helpers/service.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const WEB_ROOT = fileURLToPath(new URL('../../web', import.meta.url))
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/e2e/', import.meta.url))
const W = 120
const H = 90

/** A 120x90 portrait: a face (skin, hair, eyes, mouth) left of centre on a blue-grey backdrop. */
async function portraitPng(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}">
    <rect width="${W}" height="${H}" fill="#6f86a0"/>
    <rect y="70" width="${W}" height="20" fill="#3d4a5c"/>
    <ellipse cx="62" cy="38" rx="26" ry="30" fill="#2e1d12"/>
    <rect x="44" y="62" width="36" height="28" rx="10" fill="#a2614a"/>
    <ellipse cx="62" cy="46" rx="19" ry="24" fill="#e0ac8a"/>
    <path d="M40 34 Q62 6 84 34 Q72 22 62 24 Q50 22 40 34 Z" fill="#2e1d12"/>
    <ellipse cx="54" cy="44" rx="3.5" ry="2.5" fill="#fff"/><circle cx="54" cy="44" r="1.8" fill="#2a3b55"/>
    <ellipse cx="70" cy="44" rx="3.5" ry="2.5" fill="#fff"/><circle cx="70" cy="44" r="1.8" fill="#2a3b55"/>
    <path d="M50 38 L58 37 M66 37 L74 38" stroke="#3b2416" stroke-width="1.5"/>
    <path d="M62 46 L60 54 L64 54" stroke="#b57c62" stroke-width="1.2" fill="none"/>
    <path d="M55 59 Q62 64 69 59" stroke="#9c3b3b" stroke-width="2" fill="none"/>
  </svg>`
  return sharp(Buffer.from(svg)).png().toBuffer()
}

async function rawOf(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height }
}

/** Sum of |a - b| over the pixels of a box (RGB). */
function diffIn(a: Buffer, b: Buffer, width: number, box: { x0: number; y0: number; x1: number; y1: number }): number {
  let sum = 0
  for (let y = Math.max(0, box.y0); y < box.y1; y++) {
    for (let x = Math.max(0, box.x0); x < Math.min(width, box.x1); x++) {
      for (let c = 0; c < 3; c++) sum += Math.abs(a[(y * width + x) * 3 + c]! - b[(y * width + x) * 3 + c]!)
    }
  }
  return sum
}

t.test('the page\'s modules type-check against the generated OpenAPI types (tsc -p web)', async (t) => {
  const tsc = fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url))
  const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(process.execPath, [tsc, '-p', WEB_ROOT], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` })
    })
  })
  t.equal(result.code, 0, result.out || 'no type errors')
})

if (!existsSync(CHROMIUM)) {
  t.fail(
    `Chromium is missing at ${CHROMIUM}: the browser test needs Debian's chromium (apt-get install -y chromium; .ci/run installs it). ` +
      'Set CHROMIUM_PATH to use another build.',
  )
} else {
  t.test('the editor in Chromium', run)
}

async function run(t: Test): Promise<void> {
  const { chromium } = await import('playwright-core')
  await mkdir(ARTIFACTS, { recursive: true })

  const model = await tinyModelDir()
  const config = loadConfig({ MODEL_DIR: model.dir, TFJS_BACKEND: 'wasm', LOG_LEVEL: 'silent', BATCH_WAIT_MS: '2' })
  const service = await createService(config, false, { webRoot: WEB_ROOT })
  // the tiny model answers an edit in a few ms, faster than Chromium delivers pointer events;
  // a slower model (as a real one on a busy CPU) is what makes the page merge points: hold /edit for a while
  let editDelayMs = 0
  service.app.addHook('preHandler', async (request) => {
    if (editDelayMs > 0 && request.url === '/edit') await new Promise((resolve) => setTimeout(resolve, editDelayMs))
  })
  await service.app.listen({ port: 0, host: '127.0.0.1' })
  const base = `http://127.0.0.1:${(service.app.server.address() as AddressInfo).port}`
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true })
  const page = await context.newPage()
  page.setDefaultTimeout(20_000)
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(String(err)))
  page.on('console', (msg) => {
    // failed requests (the 415 below) are logged by Chromium itself; anything else is the page's fault
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) pageErrors.push(msg.text())
  })

  // every API request the page makes, and how many are in flight at once
  const API = /^\/(encode|edit|sample|sessions|interpolate)(\/|$|\?)/
  const calls: { method: string; path: string; body: any }[] = []
  let inFlight = 0
  let maxInFlight = 0
  page.on('request', (req) => {
    const path = new URL(req.url()).pathname
    if (!API.test(path)) return
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    let body: unknown = null
    try {
      body = req.postDataJSON()
    } catch {
      body = null // multipart
    }
    calls.push({ method: req.method(), path, body })
  })
  const settled = (req: { url(): string }) => {
    if (API.test(new URL(req.url()).pathname)) inFlight--
  }
  page.on('requestfinished', settled)
  page.on('requestfailed', settled)

  const idle = () => page.waitForFunction(() => document.body.dataset.idle === 'true')
  const sessionImage = async (id: string) => {
    const res = await fetch(`${base}/sessions/${id}/image`)
    t.equal(res.status, 200, 'GET /sessions/{id}/image')
    return rawOf(Buffer.from(await res.arrayBuffer()))
  }
  /** The page's output canvas, RGB. */
  const canvasPixels = async () => {
    const { w, h, px } = await page.evaluate(() => {
      const c = document.getElementById('output') as HTMLCanvasElement
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data
      const rgb: number[] = []
      for (let i = 0; i < d.length; i += 4) rgb.push(d[i]!, d[i + 1]!, d[i + 2]!)
      return { w: c.width, h: c.height, px: rgb }
    })
    return { width: w, height: h, data: Buffer.from(px) }
  }
  /** Page coordinates of a photo pixel on the output canvas. */
  const onOutput = async (x: number, y: number) => {
    const box = (await page.locator('#output').boundingBox())!
    return { x: box.x + ((x + 0.5) / W) * box.width, y: box.y + ((y + 0.5) / H) * box.height }
  }
  const shot = async (name: string) => {
    await page.evaluate(() => window.scrollTo(0, 0))
    await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true })
  }

  const photo = await portraitPng()
  await page.goto(base)
  await page.waitForFunction(() => document.body.dataset.ready === 'true')
  t.teardown(async () => {
    await browser.close()
    await service.close()
    await model.cleanup()
  })

  t.test('the page loads from / and reads the model from /readyz', async (t) => {
    t.match(await page.locator('#model-info').textContent(), /model 16×16, z 16/, 'model info from /readyz')
    t.ok(await page.locator('#error').isHidden(), 'no error on load')
    t.match(await page.title(), /Neural Photo Editor/)
  })

  let sessionId = ''
  let crop = { x: 0, y: 0, size: 0 }
  let before: Awaited<ReturnType<typeof rawOf>>

  t.test('upload with the file picker and place the crop with the mouse', async (t) => {
    await page.setInputFiles('#file', { name: 'portrait.png', mimeType: 'image/png', buffer: photo })
    await page.locator('#crop-stage').waitFor({ state: 'visible' })
    const value = async () => ({
      x: Number(await page.inputValue('#crop-x')),
      y: Number(await page.inputValue('#crop-y')),
      size: Number(await page.inputValue('#crop-size')),
    })
    t.same(await value(), { x: 15, y: 0, size: 90 }, 'starts on the centred square (the API default)')
    const stage = (await page.locator('#crop-stage').boundingBox())!
    const k = stage.width / W // CSS px per photo px
    // shrink from the bottom-right corner by ~26 px, then move the square right and down
    const se = (await page.locator('#crop-box .handle.se').boundingBox())!
    await page.mouse.move(se.x + se.width / 2, se.y + se.height / 2)
    await page.mouse.down()
    await page.mouse.move(se.x + se.width / 2 - 26 * k, se.y + se.height / 2 - 26 * k, { steps: 6 })
    await page.mouse.up()
    const box = (await page.locator('#crop-box').boundingBox())!
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
    await page.mouse.down()
    await page.mouse.move(box.x + box.width / 2 + 22 * k, box.y + box.height / 2 + 12 * k, { steps: 6 })
    await page.mouse.up()
    crop = await value()
    t.ok(Math.abs(crop.size - 64) <= 2, `resized by the corner (size ${crop.size})`)
    t.ok(Math.abs(crop.x - 37) <= 2 && Math.abs(crop.y - 12) <= 2, `moved by dragging (${crop.x},${crop.y})`)
    t.ok(crop.x + crop.size <= W && crop.y + crop.size <= H, 'inside the photo')
    await shot('1-crop')

    await page.click('#encode')
    await page.waitForFunction(() => !!document.body.dataset.session)
    await idle()
    sessionId = await page.evaluate(() => document.body.dataset.session!)
    t.match(sessionId, /^[0-9a-f]{32}$/)
    const encode = calls.find((c) => c.path === '/encode')
    t.ok(encode, 'POST /encode sent')
    const info = await (await fetch(`${base}/sessions/${sessionId}`)).json()
    t.same(info.crop, { x: crop.x, y: crop.y, w: crop.size, h: crop.size }, 'the session has the crop placed on the page')
    t.same([info.width, info.height], [W, H])
    t.ok(await page.locator('#error').isHidden(), 'no error')

    const out = await canvasPixels()
    before = await sessionImage(sessionId)
    t.same([out.width, out.height], [W, H], 'output canvas at the photo size')
    t.equal(diffIn(out.data, before.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'the page shows the API image')
    const shown = (await page.locator('#output').boundingBox())!
    t.ok(shown.width * (crop.size / W) >= 4 * 16, `the crop is shown at least 4x the model resolution (${Math.round(shown.width)} px wide output)`)
    const rec = await page.evaluate(() => {
      const c = document.getElementById('reconstruction') as HTMLCanvasElement
      return { w: c.width, h: c.height, css: c.getBoundingClientRect().width, empty: c.dataset.empty }
    })
    t.same([rec.w, rec.h], [16, 16], 'reconstruction at model resolution')
    t.ok(rec.css >= 4 * 16, `shown at least 4x (${Math.round(rec.css)} px)`)
    t.notOk(rec.empty, 'reconstruction drawn')
    t.notOk(await page.evaluate(() => (document.getElementById('original') as HTMLCanvasElement).dataset.empty), 'original drawn')
  })

  let after: Awaited<ReturnType<typeof rawOf>>
  t.test('a stroke changes the image under it, not outside the crop; at most one request in flight', async (t) => {
    await page.fill('#color', '#ff2020')
    await page.locator('#brush').fill('4')
    const cx = crop.x + crop.size / 2
    const cy = crop.y + crop.size / 2
    const from = await onOutput(cx - 12, cy)
    const to = await onOutput(cx + 12, cy)
    const callsBefore = calls.length
    maxInFlight = 0
    editDelayMs = 60
    await page.mouse.move(from.x, from.y)
    await page.mouse.down()
    t.ok(await page.locator('#busy').isVisible(), '#busy shows while the edit runs')
    await page.mouse.move(to.x, to.y, { steps: 16 })
    await page.mouse.up()
    await idle()
    editDelayMs = 0
    t.ok(await page.locator('#busy').isHidden(), '#busy hidden when done')
    const edits = calls.slice(callsBefore).filter((c) => c.path === '/edit')
    const points = edits.reduce((n, c) => n + c.body.stroke.points.length, 0)
    t.equal(points, 17, 'every brush event is one point (down + 16 moves)')
    t.ok(edits.length >= 1 && edits.length < points, `points merged while a request was in flight (${edits.length} requests for ${points} points)`)
    t.equal(maxInFlight, 1, 'never more than one request in flight')
    t.ok(edits.every((c) => c.body.sessionId === sessionId && c.body.color === '#ff2020' && c.body.mode === 'color'), 'colour and mode sent')
    t.ok(edits.every((c) => Math.abs(c.body.stroke.radius - (4 * crop.size) / 16) < 0.01), 'brush radius in photo pixels')

    after = await sessionImage(sessionId)
    const r = (4 * crop.size) / 16
    const under = diffIn(after.data, before.data, W, { x0: Math.floor(cx - 12 - r), y0: Math.floor(cy - r), x1: Math.ceil(cx + 12 + r), y1: Math.ceil(cy + r) })
    t.ok(under > 0, `changed under the stroke (sum |diff| ${under})`)
    let outside = 0
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if (x >= crop.x && x < crop.x + crop.size && y >= crop.y && y < crop.y + crop.size) continue
        for (let c = 0; c < 3; c++) outside += Math.abs(after.data[(y * W + x) * 3 + c]! - before.data[(y * W + x) * 3 + c]!)
      }
    }
    t.equal(outside, 0, 'nothing changed outside the crop')
    const out = await canvasPixels()
    t.equal(diffIn(out.data, after.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'the page shows the edited image')
    t.ok(await page.locator('#undo').isEnabled(), 'undo enabled')
    await page.mouse.move(to.x - 30, to.y - 20) // leave the brush cursor on the image for the screenshot
    await shot('2-stroke')
  })

  t.test('undo restores the image before the stroke; redo brings it back', async (t) => {
    await page.click('#undo')
    await idle()
    const undone = await sessionImage(sessionId)
    t.equal(diffIn(undone.data, before.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'pixels equal to before the stroke')
    t.equal(diffIn((await canvasPixels()).data, before.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'and the page shows them')
    t.ok(await page.locator('#redo').isEnabled(), 'redo enabled')
    await page.click('#redo')
    await idle()
    t.equal(diffIn((await sessionImage(sessionId)).data, after.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'redo: the stroke again')
    t.ok(await page.locator('#error').isHidden(), 'no error')
  })

  t.test('zoom to the crop: larger, the crop in view, brush points still in photo pixels', async (t) => {
    const toggle = page.locator('#view-toggle')
    t.ok(await toggle.isVisible(), 'offered when the crop is smaller than the photo')
    const whole = (await page.locator('#output').boundingBox())!
    await toggle.click()
    const zoomed = (await page.locator('#output').boundingBox())!
    t.ok(zoomed.width > whole.width * 1.2, `zoomed in (${Math.round(whole.width)} -> ${Math.round(zoomed.width)} px)`)
    const v = (await page.locator('#output-view').boundingBox())!
    const k = zoomed.width / W
    const c = { x0: zoomed.x + crop.x * k, y0: zoomed.y + crop.y * k, x1: zoomed.x + (crop.x + crop.size) * k, y1: zoomed.y + (crop.y + crop.size) * k }
    t.ok(c.x0 >= v.x - 1 && c.y0 >= v.y - 1 && c.x1 <= v.x + v.width + 1 && c.y1 <= v.y + v.height + 1, 'the whole crop is in view')
    const callsBefore = calls.length
    const cx = crop.x + crop.size / 2
    const cy = crop.y + crop.size / 2
    await page.mouse.click(zoomed.x + (cx + 0.5) * k, zoomed.y + (cy + 0.5) * k)
    await idle()
    const edit = calls.slice(callsBefore).find((c) => c.path === '/edit')
    const p = edit?.body.stroke.points[0]
    t.ok(p && Math.abs(p.x - (cx + 0.5)) < 0.6 && Math.abs(p.y - (cy + 0.5)) < 0.6, `a click maps to the photo pixel under it (${p?.x}, ${p?.y})`)
    await page.click('#undo')
    await idle()
    t.equal(diffIn((await sessionImage(sessionId)).data, after.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'undone')
    await toggle.click()
    const back = (await page.locator('#output').boundingBox())!
    t.ok(Math.abs(back.width - whole.width) < 1, 'back to the whole photo')
  })

  t.test('latent canvas: dragging over tiles pushes z up, Shift-drag down', async (t) => {
    const z0 = (await (await fetch(`${base}/sessions/${sessionId}`)).json()).latent as number[]
    await page.locator('#latent').scrollIntoViewIfNeeded()
    const box = (await page.locator('#latent').boundingBox())!
    const cols = Math.ceil(Math.sqrt(16))
    const tile = (i: number) => ({ x: box.x + ((i % cols) + 0.5) * (box.width / cols), y: box.y + (Math.floor(i / cols) + 0.5) * (box.height / cols) })
    const callsBefore = calls.length
    await page.mouse.move(tile(0).x, tile(0).y)
    await page.mouse.down()
    await page.mouse.move(tile(3).x, tile(3).y, { steps: 12 })
    await page.mouse.up()
    await page.keyboard.down('Shift')
    await page.mouse.move(tile(12).x, tile(12).y)
    await page.mouse.down()
    await page.mouse.up()
    await page.keyboard.up('Shift')
    await idle()
    const puts = calls.slice(callsBefore).filter((c) => c.method === 'PUT' && c.path === `/sessions/${sessionId}/latent`)
    t.ok(puts.length >= 1, `PUT /sessions/{id}/latent sent (${puts.length})`)
    t.ok(puts.every((c) => Array.isArray(c.body.entries) && c.body.entries.length >= 1), 'with entries')
    const z1 = (await (await fetch(`${base}/sessions/${sessionId}`)).json()).latent as number[]
    for (const i of [0, 1, 2, 3]) t.ok(z1[i]! > z0[i]!, `z[${i}] pushed up (${z0[i]!.toFixed(2)} -> ${z1[i]!.toFixed(2)})`)
    t.ok(z1[12]! < z0[12]!, `z[12] pushed down with Shift (${z0[12]!.toFixed(2)} -> ${z1[12]!.toFixed(2)})`)
    t.equal(maxInFlight, 1, 'still one request in flight at most')
  })

  t.test('the wheel darkens / lightens under the brush', async (t) => {
    const p = await onOutput(crop.x + crop.size / 2, crop.y + crop.size / 3)
    const callsBefore = calls.length
    await page.mouse.move(p.x, p.y)
    await page.mouse.wheel(0, -120)
    await idle()
    await page.mouse.wheel(0, 120)
    await idle()
    const modes = calls.slice(callsBefore).filter((c) => c.path === '/edit').map((c) => c.body.mode)
    t.same([...new Set(modes)], ['lighten', 'darken'], 'wheel up lightens, wheel down darkens')
  })

  t.test('download PNG, Reset and Update', async (t) => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')])
    const file = await download.path()
    const meta = await sharp(await readFile(file)).metadata()
    t.same([meta.format, meta.width, meta.height], ['png', W, H], `downloaded ${download.suggestedFilename()}`)
    await page.click('#reset')
    await idle()
    t.equal(diffIn((await sessionImage(sessionId)).data, before.data, W, { x0: 0, y0: 0, x1: W, y1: H }), 0, 'reset: the photo again')
    const version = Number(await page.evaluate(() => document.body.dataset.version))
    await page.click('#commit')
    await idle()
    t.ok(calls.some((c) => c.path === `/sessions/${sessionId}/commit`), 'POST /sessions/{id}/commit')
    t.ok(Number(await page.evaluate(() => document.body.dataset.version)) > version, 'version moved on')
    t.ok(await page.locator('#error').isHidden(), 'no error')
    await page.click('#pin-a')
    t.ok(await page.locator('#pin-a-img').isVisible(), 'pinned A')
  })

  t.test('sample shows a face; interpolation between two pinned sessions', async (t) => {
    await page.fill('#seed', '7')
    await page.click('#sample')
    await page.waitForFunction((old) => document.body.dataset.session !== old, sessionId)
    await idle()
    const sample = calls.find((c) => c.path === '/sample')
    t.ok(sample, 'GET /sample sent')
    const out = await canvasPixels()
    t.same([out.width, out.height], [16, 16], 'the sample at model resolution')
    const shown = (await page.locator('#output').boundingBox())!
    t.ok(shown.width >= 8 * 16 && Math.abs(shown.width - shown.height) < 1, `shown large and square (${Math.round(shown.width)} px)`)
    let min = 255
    let max = 0
    for (const v of out.data) {
      min = Math.min(min, v)
      max = Math.max(max, v)
    }
    t.ok(max - min > 20, 'an image, not a blank')
    t.match(await page.locator('#session-info').textContent(), /seed 7/)
    await page.click('#pin-b')
    await page.fill('#steps', '5')
    await page.click('#interpolate')
    await idle()
    const frames = page.locator('#interp-frames img')
    t.equal(await frames.count(), 5, 'five frames')
    const sizes = await frames.evaluateAll((imgs) => imgs.map((i) => [(i as HTMLImageElement).naturalWidth, (i as HTMLImageElement).naturalHeight]))
    t.same(sizes, new Array(5).fill([16, 16]), 'frames at model resolution')
    const interp = calls.find((c) => c.path === '/interpolate' && c.body?.from?.sessionId)
    t.ok(interp && interp.body.from.sessionId === sessionId && interp.body.to.sessionId !== sessionId, 'from A (the photo) to B (the sample)')
    await shot('3-sample-interpolation')
  })

  t.test('a bad file (text named .png) dropped on the page shows the API error in #error', async (t) => {
    const text = 'this is not an image, whatever its name says\n'
    const form = new FormData()
    form.append('image', new Blob([text], { type: 'image/png' }), 'bad.png')
    const direct = await fetch(`${base}/encode`, { method: 'POST', body: form })
    const problem = await direct.json()
    t.equal(direct.status, 415)
    const dataTransfer = await page.evaluateHandle((content) => {
      const dt = new DataTransfer()
      dt.items.add(new File([content], 'bad.png', { type: 'image/png' }))
      return dt
    }, text)
    await page.dispatchEvent('#drop', 'drop', { dataTransfer })
    await page.locator('#error').waitFor({ state: 'visible' })
    await idle()
    const shown = await page.locator('#error').textContent()
    t.ok(shown?.includes(problem.detail), `shows the API's detail: ${shown}`)
    t.match(shown, /image_unsupported_type/)
    await shot('4-error')
    await page.click('#error-close')
    t.ok(await page.locator('#error').isHidden(), 'dismissed')
  })

  t.test('narrow screens: one column, nothing wider than the screen', async (t) => {
    await page.setViewportSize({ width: 390, height: 844 })
    await page.waitForTimeout(100)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    t.ok(overflow <= 0, `no horizontal scroll (${overflow})`)
    const out = (await page.locator('#output').boundingBox())!
    t.ok(out.width >= 4 * 16 && out.width <= 390, `output fits (${Math.round(out.width)} px)`)
    await shot('5-narrow')
    t.same(pageErrors, [], 'no script errors in the page')
  })
}
